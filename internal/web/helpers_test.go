package web

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

func TestLocalPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"":                        "/",
		"/":                       "/",
		"/clusters/web?x=1":       "/clusters/web?x=1",
		"//evil.example/":         "/",
		"/\\evil.example":         "/",
		"https://evil.example/":   "/",
		"javascript:alert(1)":     "/",
		"clusters/web":            "/",
		"/activities?cluster=web": "/activities?cluster=web",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSecsAndAgo(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0 s"},
		{40 * time.Second, "40 s"},
		{59600 * time.Millisecond, "1 min"},
		{3*time.Minute + 5*time.Second, "3 min 5 s"},
		{2*time.Hour + 10*time.Minute, "2 h 10 min"},
		{5 * time.Hour, "5 h"},
		{72 * time.Hour, "3 days"},
	} {
		if got := secs(tt.d); got != tt.want {
			t.Errorf("secs(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
	if got := ago(now, now.Add(-90*time.Second)); got != "1 min 30 s ago" {
		t.Errorf("ago = %q", got)
	}
	if got := ago(now, now.Add(8*time.Second)); got != "in 8 s" {
		t.Errorf("ago of the future = %q", got)
	}
	if got := ago(now, time.Time{}); got != "never" {
		t.Errorf("ago of zero = %q", got)
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{{250 * time.Millisecond, "250 ms"}, {1234 * time.Millisecond, "1.2 s"}, {75 * time.Second, "1 min 15 s"}} {
		if got := took(now, now.Add(tt.d)); got != tt.want {
			t.Errorf("took(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

func TestRedactJSON(t *testing.T) {
	t.Parallel()
	raw := json.RawMessage(`{"shell":"deploy.sh","env":{"DB_PASSWORD":"p1","API_TOKEN":"p2","REGION":"eu"},
		"smtp":{"auth":{"user":"u","pass":"p3"}},"headers":[{"Authorization":"Bearer p4"}],"aws_secret_access_key":"p5","private_key":"p6"}`)
	got := redactJSON(raw)
	for _, secret := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		if strings.Contains(got, `"`+secret) {
			t.Errorf("redactJSON shows %q:\n%s", secret, got)
		}
	}
	for _, kept := range []string{`"shell": "deploy.sh"`, `"REGION": "eu"`} {
		if !strings.Contains(got, kept) {
			t.Errorf("redactJSON lost %s:\n%s", kept, got)
		}
	}
	if redactJSON(nil) != "" || redactJSON(json.RawMessage("null")) != "" {
		t.Errorf("empty parameters are not empty")
	}
}

func TestTriggerProgress(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name string
		st   store.TriggerState
		want string
		past float64
	}{
		{"idle", store.TriggerState{LastValue: 3.456}, "not past its threshold (last value 3.46)", 0},
		{"past", store.TriggerState{PastSince: now.Add(-40 * time.Second), LastValue: 7}, "past threshold for 40 s of 1 min (last value 7)", 40},
		{"past longer than for", store.TriggerState{PastSince: now.Add(-90 * time.Second), LastValue: 7}, "past threshold for 1 min 30 s of 1 min", 60},
		{"cooling", store.TriggerState{CooldownUntil: now.Add(8 * time.Second), LastFiredAt: now.Add(-52 * time.Second), Firings: 3},
			"cooling down until " + clock(now.Add(8*time.Second)) + " (8 s left)", 0},
	} {
		row := triggerProgress(controllerStatus(tt.st), &configTrigger60s, now)
		if !strings.HasPrefix(row.Progress, tt.want) || row.PastFor != tt.past || row.ForSecs != 60 {
			t.Errorf("%s: %q past %v of %v, want %q past %v", tt.name, row.Progress, row.PastFor, row.ForSecs, tt.want, tt.past)
		}
	}
}

func TestSparkline(t *testing.T) {
	t.Parallel()
	to := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	from := to.Add(-10 * time.Minute)
	sp := newSparkline([]store.Sample{
		{At: from, Value: 0}, {At: from.Add(5 * time.Minute), Err: "down"}, {At: to, Value: 10},
	}, from, to, []threshold{{Label: "up: above 5", Value: 5}})
	if sp.Points != "0.0,27.0 120.0,1.0" || sp.Count != 2 || len(sp.Thresholds) != 1 || sp.Thresholds[0].Y != "14.0" {
		t.Errorf("sparkline %+v", sp)
	}
	if empty := newSparkline([]store.Sample{{At: to, Err: "down"}}, from, to, nil); empty.Points != "" {
		t.Errorf("a sparkline of errors draws %q", empty.Points)
	}
}

func TestCompareNodeIDs(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		a, b string
		less bool
	}{{"web-2", "web-10", true}, {"web-10", "web-2", false}, {"api-9", "web-1", true}, {"a-b-3", "a-b-20", true}, {"x", "y", true}} {
		if got := compareNodeIDs(tt.a, tt.b) < 0; got != tt.less {
			t.Errorf("compareNodeIDs(%q, %q) < 0 = %v", tt.a, tt.b, got)
		}
	}
}

// TestVendoredFiles: the embedded htmx and uPlot are the npm files that
// static/vendor/SHA256SUMS names, unchanged.
func TestVendoredFiles(t *testing.T) {
	t.Parallel()
	sums, err := staticFS.ReadFile("static/vendor/SHA256SUMS")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(sums)), "\n") {
		want, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("bad SHA256SUMS line %q", line)
		}
		b, err := staticFS.ReadFile("static/vendor/" + name)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if got := hex.EncodeToString(sum[:]); got != want {
			t.Errorf("%s: sha256 %s, SHA256SUMS says %s: vendored files are copied from npm, never edited", name, got, want)
		}
		n++
	}
	if n != 3 {
		t.Errorf("%d vendored files checked, want 3", n)
	}
	lock, err := staticFS.ReadFile("static/vendor/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"node_modules/htmx.org"`, `"version": "2.0.11"`, `"node_modules/uplot"`, `"version": "1.6.32"`, `"integrity": "sha512-`} {
		if !strings.Contains(string(lock), want) {
			t.Errorf("package-lock.json has no %s", want)
		}
	}
}

var configTrigger60s = config.Trigger{Name: "up", For: plugin.Duration(time.Minute)}

func controllerStatus(st store.TriggerState) controller.TriggerStatus {
	return controller.TriggerStatus{Name: "up", State: st}
}

// TestSparkCache: each refresh reads only recent rows, and the window slides.
func TestSparkCache(t *testing.T) {
	t.Parallel()
	st, err := sqlstore.Open(t.Context(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	add := func(from, to int) {
		t.Helper()
		var ss []store.Sample
		for i := from; i < to; i++ {
			at := base.Add(time.Duration(i) * 10 * time.Second)
			ss = append(ss, store.Sample{Cluster: "web", Counter: "load", At: at, Value: float64(i)},
				store.Sample{Cluster: "web", Counter: "load", Node: "web-1", At: at, Value: -1})
		}
		if err := st.SampleInsert(t.Context(), ss); err != nil {
			t.Fatal(err)
		}
	}
	c := newSparkCache()
	check := func(now time.Time, first, last int) {
		t.Helper()
		got, err := c.recent(t.Context(), st, "web", "load", now)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != last-first+1 || got[0].Value != float64(first) || got[len(got)-1].Value != float64(last) {
			t.Fatalf("at +%s: %d samples %v … %v, want %d … %d", now.Sub(base), len(got), got[0].Value, got[len(got)-1].Value, first, last)
		}
		for i := 1; i < len(got); i++ {
			if got[i].Value != got[i-1].Value+1 || got[i].Node != "" {
				t.Fatalf("samples out of order, doubled or not aggregates at %d: %v, %v", i, got[i-1], got[i])
			}
		}
	}
	add(0, 100) // 0 … 990 s
	check(base.Add(995*time.Second), 40, 99)
	add(100, 103)
	check(base.Add(1025*time.Second), 43, 102)
	// Nothing new: the same.
	check(base.Add(1026*time.Second), 43, 102)
}
