package webhook_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/notify"
	"github.com/goscaler/goscaler/internal/action/webhook"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/store"
)

const key = "whsec-Very-Secret-Key-123"

// receiver answers with the given statuses in turn (the last one repeats)
// and keeps each request.
type receiver struct {
	mu       sync.Mutex
	statuses []int
	bodies   [][]byte
	sigs     []string
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	n := len(rc.bodies)
	rc.bodies = append(rc.bodies, b)
	rc.sigs = append(rc.sigs, r.Header.Get(webhook.SignatureHeader))
	status := rc.statuses[min(n, len(rc.statuses)-1)]
	rc.mu.Unlock()
	w.WriteHeader(status)
	_, _ = io.WriteString(w, http.StatusText(status))
}

func runOf() action.Run {
	return action.Run{Cluster: "web", Trigger: "busy",
		Activity: store.Activity{ID: 21, ParentID: 20, Cause: "load 9 > 8"},
		Vars:     map[string]string{"Cluster": "web", "Trigger": "busy", "Cause": "load 9 > 8", "Counter_load": "9"},
		Steps:    []store.Activity{{Step: 0, Kind: "deploy_node", Status: store.ActivitySucceeded, Output: "node-4 in service"}}}
}

func TestWebhook(t *testing.T) {
	t.Parallel()
	keyFile := filepath.Join(t.TempDir(), "webhook-key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	two := 2
	for _, tc := range []struct {
		name     string
		format   string
		statuses []int
		wantErr  string
		attempts int
	}{
		{name: "json", statuses: []int{200}, attempts: 1},
		{name: "retried on 5xx", statuses: []int{503, 502, 204}, attempts: 3},
		{name: "429 retried", statuses: []int{429, 200}, attempts: 2},
		{name: "4xx not retried", statuses: []int{400}, attempts: 1, wantErr: "HTTP 400: Bad Request (a client error: not retried)"},
		{name: "retries bounded", statuses: []int{500}, attempts: 3, wantErr: "failed 3 time(s); last: attempt 3: HTTP 500"},
		{name: "slack", format: webhook.FormatSlack, statuses: []int{200}, attempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rc := &receiver{statuses: tc.statuses}
			srv := httptest.NewServer(rc)
			defer srv.Close()
			c := &webhook.Config{URL: srv.URL + "/hooks/T0/B0/token-in-path", Format: tc.format, SecretFile: keyFile,
				Retries: &two, Backoff: plugin.Duration(time.Millisecond)}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			// As a stored step is: decoded from JSON and validated again.
			stored, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := action.Registry.DecodeJSON("webhook", stored)
			if err != nil {
				t.Fatal(err)
			}
			a, err := cfg.New(action.Env{Cluster: "web"})
			if err != nil {
				t.Fatal(err)
			}
			out, err := a.Run(context.Background(), runOf())
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("err = %v, want %q\n%s", err, tc.wantErr, out)
			}
			if len(rc.bodies) != tc.attempts {
				t.Errorf("%d requests, want %d", len(rc.bodies), tc.attempts)
			}
			for _, s := range []string{out, errString(err)} {
				if strings.Contains(s, key) || strings.Contains(s, "token-in-path") {
					t.Errorf("a secret shows: %s", s)
				}
			}
			body := rc.bodies[len(rc.bodies)-1]
			if sig := rc.sigs[len(rc.sigs)-1]; !hmac.Equal([]byte(sig), []byte(webhook.Sign(key, body))) || !strings.HasPrefix(sig, "sha256=") {
				t.Errorf("signature %q does not match the body", sig)
			}
			if tc.format == webhook.FormatSlack {
				var msg map[string]string
				if err := json.Unmarshal(body, &msg); err != nil || len(msg) != 1 ||
					!strings.Contains(msg["text"], "cluster web: trigger busy fired") || !strings.Contains(msg["text"], "load=9") {
					t.Errorf("slack body %s (%v)", body, err)
				}
				return
			}
			var ev notify.Event
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Cluster != "web" || ev.Trigger != "busy" || ev.Cause != "load 9 > 8" || ev.ActivityID != 21 || ev.FiringID != 20 ||
				ev.Counters["load"] != "9" || len(ev.Steps) != 1 || ev.Steps[0].Status != "succeeded" || ev.Outcome != "step 1 (deploy_node) succeeded" {
				t.Errorf("event %+v", ev)
			}
		})
	}
}

func TestWebhookNetworkErrorHidesURL(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	one := 1
	c := &webhook.Config{URL: "http://" + addr + "/hook?token=query-secret", Retries: &one, Backoff: plugin.Duration(time.Millisecond)}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := c.New(action.Env{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Run(context.Background(), runOf())
	if err == nil || !strings.Contains(err.Error(), "failed 2 time(s)") || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(out+err.Error(), "query-secret") {
		t.Errorf("the URL's token shows: %v\n%s", err, out)
	}
}

func TestWebhookValidate(t *testing.T) {
	t.Parallel()
	eleven := 11
	for _, tc := range []struct {
		name string
		c    webhook.Config
		want []string
	}{
		{"ok", webhook.Config{URL: "https://hooks.example/x"}, nil},
		{"no url", webhook.Config{}, []string{"url: set exactly one"}},
		{"bad", webhook.Config{URL: "ftp://x", Format: "xml", Text: "{{", SecretEnv: "A", SecretFile: "/b", Retries: &eleven,
			Headers: map[string]string{webhook.SignatureHeader: "x"}},
			[]string{"url: not an http", "format:", "text:", "secret_file:", "retries:", "headers:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil || *tc.c.Retries != webhook.DefaultRetries || tc.c.Format != webhook.FormatJSON {
					t.Fatalf("err %v, config %+v", err, tc.c)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
