package plugin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/plugin"
)

// widget is the config interface of the test registry.
type widget interface{ Name() string }

type webConfig struct {
	URL   string          `yaml:"url" json:"url"`
	Count int             `yaml:"count" json:"count"`
	Every plugin.Duration `yaml:"every" json:"every"`
}

func (c *webConfig) Name() string { return "web" }

// Validate reports every problem, each naming its key, and fills a default.
func (c *webConfig) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("url: required"))
	}
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("count: %d is negative", c.Count))
	}
	if c.Every < 0 {
		errs = append(errs, errors.New("must not be negative"))
	}
	if c.Count == 0 {
		c.Count = 1
	}
	return errors.Join(errs...)
}

// plainConfig has no Validate.
type plainConfig struct {
	X int `yaml:"x" json:"x"`
}

func (*plainConfig) Name() string { return "plain" }

func newRegistry() *plugin.Registry[widget] {
	r := plugin.NewRegistry[widget]("widget")
	r.Register("web", func() widget { return &webConfig{} })
	r.Register("plain", func() widget { return &plainConfig{} })
	return r
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	if r.Kind() != "widget" {
		t.Errorf("Kind() = %q", r.Kind())
	}
	if got := r.Names(); !slices.Equal(got, []string{"plain", "web"}) {
		t.Errorf("Names() = %q, want sorted", got)
	}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), `widget type "web" registered twice`) {
			t.Errorf("second Register: panic %v", p)
		}
	}()
	r.Register("web", func() widget { return &webConfig{} })
}

func TestRegistryDecode(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	tests := []struct {
		name string
		typ  string
		src  string // "" means no keys (a nil node)
		want []string
		ok   func(widget) bool
	}{
		{name: "valid", typ: "web", src: "url: http://x\ncount: 3\nevery: 2s\n",
			ok: func(w widget) bool {
				c := w.(*webConfig)
				return c.URL == "http://x" && c.Count == 3 && c.Every.D() == 2*time.Second
			}},
		{name: "validate fills a default", typ: "web", src: "url: http://x\n",
			ok: func(w widget) bool { return w.(*webConfig).Count == 1 }},
		{name: "no Validate, no keys", typ: "plain", ok: func(w widget) bool { return w.(*plainConfig).X == 0 }},
		{name: "unknown type", typ: "gadget", src: "\n\nurl: x\n",
			want: []string{`line 3: unknown widget type "gadget"; known types: plain, web`}},
		{name: "unknown type without keys", typ: "gadget",
			want: []string{`unknown widget type "gadget"; known types: plain, web`}},
		{name: "no type", typ: "", want: []string{`widget has no type: add type: with one of plain, web`}},
		{name: "decode problems, Validate not run", typ: "web", src: "urll: x\ncount: lots\nevery: 5\n",
			want: []string{`line 1: unknown key "urll"; valid keys here: count, every, url`,
				`line 2: count: expected a whole number, got "lots"`, `line 3: every: "5" is not a duration`}},
		// Each problem of Validate is at the line of the key it names, else
		// at the mapping's line.
		{name: "validate problems", typ: "web", src: "every: 1s\ncount: -2\n",
			want: []string{`line 1: url: required`, `line 2: count: -2 is negative`}},
		{name: "validate problem without a key", typ: "web", src: "\nurl: x\nevery: -1s\n",
			want: []string{`line 3: every: duration "-1s" is negative`}},
		{name: "validate without keys", typ: "web", want: []string{`url: required`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var w widget
			var err error
			if tt.src == "" {
				w, err = r.Decode(tt.typ, nil)
			} else {
				w, err = r.Decode(tt.typ, parse(t, tt.src))
			}
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				if !tt.ok(w) {
					t.Errorf("Decode = %+v", w)
				}
				return
			}
			if w != nil {
				t.Errorf("Decode returned %+v with its error", w)
			}
			got := messages(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Decode = %q, want %q", got, tt.want)
			}
			for i, want := range tt.want {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("problem %d = %q, want prefix %q", i+1, got[i], want)
				}
			}
			if strings.Contains(tt.name, "type") && !errors.Is(err, plugin.ErrUnknownType) {
				t.Errorf("errors.Is(%v, ErrUnknownType) = false", err)
			}
		})
	}
}

func TestRegistryDecodeValidateLines(t *testing.T) {
	t.Parallel()
	r := plugin.NewRegistry[widget]("widget")
	r.Register("web", func() widget { return &webConfig{} })
	// "every" has no key prefix in its message: it gets the mapping's line.
	_, err := r.Decode("web", parse(t, "count: 1\nevery: 0s\n"))
	if got := messages(err); len(got) != 1 || got[0] != "line 1: url: required" {
		t.Errorf("Decode = %q", got)
	}
	// A document node is looked into.
	_, err = r.Decode("web", parse(t, "\ncount: -1\nurl: x\n"))
	if got := messages(err); len(got) != 1 || got[0] != "line 2: count: -1 is negative" {
		t.Errorf("Decode = %q", got)
	}
}

func TestRegistryDecodeJSON(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	w, err := r.DecodeJSON("web", []byte(`{"url":"http://x","count":4,"every":"1m"}`))
	if err != nil {
		t.Fatal(err)
	}
	if c := w.(*webConfig); c.URL != "http://x" || c.Count != 4 || c.Every.D() != time.Minute {
		t.Errorf("DecodeJSON = %+v", c)
	}
	// No data: the zero config, validated.
	if w, err := r.DecodeJSON("plain", nil); err != nil || w.(*plainConfig).X != 0 {
		t.Errorf("DecodeJSON(plain, nil) = %+v, %v", w, err)
	}
	tests := []struct {
		typ, data, want string
		unknown         bool
	}{
		{"gadget", `{}`, `unknown plugin type: widget type "gadget"`, true},
		{"web", `{"url":`, `widget "web": decoding stored config`, false},
		{"web", `{"url":"x","every":30}`, `widget "web": decoding stored config`, false},
		{"web", `{"count":1}`, `widget "web": url: required`, false},
	}
	for _, tt := range tests {
		_, err := r.DecodeJSON(tt.typ, []byte(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeJSON(%s, %s) = %v, want %q", tt.typ, tt.data, err, tt.want)
		}
		if errors.Is(err, plugin.ErrUnknownType) != tt.unknown {
			t.Errorf("DecodeJSON(%s, %s): errors.Is(ErrUnknownType) = %t", tt.typ, tt.data, !tt.unknown)
		}
	}
}

// A config written as JSON with an activity comes back the same.
func TestRegistryJSONRoundTrip(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	w, err := r.Decode("web", parse(t, "url: http://x\nevery: 1m30s\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := jsonMarshal(w)
	if err != nil {
		t.Fatal(err)
	}
	back, err := r.DecodeJSON("web", b)
	if err != nil {
		t.Fatalf("DecodeJSON(%s): %v", b, err)
	}
	if *back.(*webConfig) != *w.(*webConfig) {
		t.Errorf("round trip = %+v, want %+v", back, w)
	}
}

func TestRegistryConcurrent(t *testing.T) {
	t.Parallel()
	r := newRegistry()
	done := make(chan struct{})
	for i := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			if i == 0 {
				r.Register("extra", func() widget { return &plainConfig{} })
				return
			}
			for range 50 {
				_ = r.Names()
				_, _ = r.Decode("plain", nil)
			}
		}()
	}
	for range 4 {
		<-done
	}
	if !slices.Contains(r.Names(), "extra") {
		t.Error("extra not registered")
	}
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
