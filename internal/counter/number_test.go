package counter

import (
	"errors"
	"strings"
	"testing"
)

func TestParseNumber(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    float64
		wantErr string
	}{
		{in: "42", want: 42},
		{in: "-3.5e2", want: -350},
		{in: "abc", wantErr: `"abc" is not a number`},
		{in: "", wantErr: `"" is not a number`},
		{in: "1e999", wantErr: `"1e999" is out of range`},
		{in: "NaN", wantErr: `"NaN" is not a finite number`},
		{in: "-Inf", wantErr: `"-Inf" is not a finite number`},
		{in: strings.Repeat("é", 80), wantErr: "…\" is not a number"},
	}
	for _, tt := range tests {
		got, err := ParseNumber(tt.in)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseNumber(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrNotANumber) {
			t.Errorf("ParseNumber(%q) = %v, %v; want an ErrNotANumber with %q", tt.in, got, err, tt.wantErr)
		}
		if strings.Count(err.Error(), "not a number") > 1 {
			t.Errorf("ParseNumber(%q): %q repeats itself", tt.in, err)
		}
	}
}

func TestMark(t *testing.T) {
	t.Parallel()
	cause := errors.New("NOT_FOUND - no queue 'x'")
	kind := errors.New("queue not found")
	err := Mark(cause, kind)
	if err.Error() != cause.Error() || !errors.Is(err, cause) || !errors.Is(err, kind) || errors.Is(err, ErrNotANumber) {
		t.Errorf("Mark = %q; Is(cause) %t, Is(kind) %t", err, errors.Is(err, cause), errors.Is(err, kind))
	}
}

func TestShort(t *testing.T) {
	t.Parallel()
	if got := Short("abc"); got != "abc" {
		t.Errorf("Short(abc) = %q", got)
	}
	long := strings.Repeat("a", 99) + "éé"
	got := Short(long)
	if !strings.HasSuffix(got, "…") || len(got) > 104 || !strings.HasPrefix(long, strings.TrimSuffix(got, "…")) {
		t.Errorf("Short(long) = %q", got)
	}
}

func TestTemplateVars(t *testing.T) {
	t.Parallel()
	tg := Target{Cluster: "web", NodeID: "web-1", Address: "10.0.0.1:80", Vars: map[string]string{"Region": "eu", "Cluster": "from-vars"}}
	got := tg.TemplateVars()
	want := map[string]string{"Region": "eu", "Cluster": "from-vars", "NodeID": "web-1", "Address": "10.0.0.1:80"}
	if len(got) != len(want) {
		t.Fatalf("TemplateVars = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("TemplateVars[%s] = %q, want %q", k, got[k], v)
		}
	}
	got["Region"] = "changed"
	if tg.Vars["Region"] != "eu" {
		t.Error("TemplateVars shares the target's map")
	}
	if v := (Target{Cluster: "web"}).TemplateVars(); len(v) != 1 || v["Cluster"] != "web" {
		t.Errorf("cluster target vars = %v", v)
	}
}
