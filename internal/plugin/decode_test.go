package plugin_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/plugin"
)

func parse(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatalf("yaml.Unmarshal(%q): %v", src, err)
	}
	return &n
}

// messages returns "line N: message" for each problem of err.
func messages(err error) []string {
	var out []string
	for _, e := range plugin.Flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

type Inner struct {
	Name  string          `yaml:"name"`
	Count int             `yaml:"count"`
	Wait  plugin.Duration `yaml:"wait"`
}

type Base struct {
	ID string `yaml:"id"`
}

// custom checks its own keys: DecodeStrict must not look inside.
type custom struct {
	Raw map[string]string
}

func (c *custom) UnmarshalYAML(n *yaml.Node) error {
	c.Raw = map[string]string{}
	return n.Decode(&c.Raw)
}

type Outer struct {
	Base     `yaml:",inline"`
	Title    string            `yaml:"title"`
	Enabled  bool              `yaml:"enabled"`
	Ratio    float64           `yaml:"ratio"`
	Size     uint              `yaml:"size"`
	Inner    Inner             `yaml:"inner"`
	Ptr      *Inner            `yaml:"ptr"`
	Items    []Inner           `yaml:"items"`
	PtrItems []*Inner          `yaml:"ptr_items"`
	ByName   map[string]Inner  `yaml:"by_name"`
	Labels   map[string]string `yaml:"labels"`
	Tags     []string          `yaml:"tags"`
	Custom   custom            `yaml:"custom"`
	Node     yaml.Node         `yaml:"node"`
	Default  string            // key "default"
	Skipped  string            `yaml:"-"`
	hidden   string            //nolint:unused // unexported: not a key
}

func TestDecodeStrictValid(t *testing.T) {
	t.Parallel()
	src := `
id: x1
title: hello
enabled: true
ratio: 0.5
size: 3
inner: {name: a, count: 1, wait: 2s}
ptr: {name: b}
items:
  - {name: c}
  - name: d
    count: 4
ptr_items: [{name: e}, ~]
by_name:
  one: {name: f, count: 6}
labels: {a: b}
tags: [x, y]
custom: {anything: goes, here: too}
node: {whatever: [1, 2]}
default: dflt
`
	var out Outer
	if err := plugin.DecodeStrict(parse(t, src), &out); err != nil {
		t.Fatalf("DecodeStrict: %v", err)
	}
	if out.ID != "x1" || out.Title != "hello" || !out.Enabled || out.Ratio != 0.5 || out.Size != 3 || out.Default != "dflt" {
		t.Errorf("scalars = %+v", out)
	}
	if out.Inner != (Inner{Name: "a", Count: 1, Wait: plugin.Duration(2 * time.Second)}) || out.Ptr == nil || out.Ptr.Name != "b" {
		t.Errorf("nested = %+v %+v", out.Inner, out.Ptr)
	}
	if len(out.Items) != 2 || out.Items[1].Count != 4 || len(out.PtrItems) != 2 || out.PtrItems[1] != nil {
		t.Errorf("lists = %+v %+v", out.Items, out.PtrItems)
	}
	if out.ByName["one"].Count != 6 || out.Labels["a"] != "b" || len(out.Tags) != 2 {
		t.Errorf("maps = %+v %+v %+v", out.ByName, out.Labels, out.Tags)
	}
	if out.Custom.Raw["anything"] != "goes" || out.Node.Kind != yaml.MappingNode {
		t.Errorf("custom %+v node %v", out.Custom, out.Node.Kind)
	}
	if err := plugin.DecodeStrict(nil, &out); err != nil {
		t.Errorf("DecodeStrict(nil) = %v", err)
	}
}

func TestDecodeStrictProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want []string // every problem, in order
	}{
		{"unknown key at the top", "title: a\ntitel: b\n",
			[]string{`line 2: unknown key "titel"; valid keys here: by_name, custom, default, enabled, id, inner, items, labels, node, ptr, ptr_items, ratio, size, tags, title`}},
		{"unknown keys nested", "inner:\n  nam: a\nptr:\n  cnt: 1\nitems:\n  - {name: a}\n  - {nme: b}\nby_name:\n  x: {wat: 1s}\n",
			[]string{`line 2: unknown key "nam"; valid keys here: count, name, wait`, `line 4: unknown key "cnt"`, `line 7: unknown key "nme"`, `line 9: unknown key "wat"`}},
		{"dash and unexported fields are not keys", "Skipped: a\nskipped: b\nhidden: c\n",
			[]string{`line 1: unknown key "Skipped"`, `line 2: unknown key "skipped"`, `line 3: unknown key "hidden"`}},
		{"int", "inner: {count: many}\n", []string{`line 1: count: expected a whole number, got "many"`}},
		{"int from a float", "inner:\n  count: 2.5\n", []string{`line 2: count: expected a whole number, got 2.5`}},
		{"int from a whole float", "inner: {count: 2.0}\n", nil},
		{"uint", "size: -1\n", []string{`line 1: size: expected a whole number, 0 or more, got -1`}},
		{"bool", "enabled: maybe\n", []string{`line 1: enabled: expected true or false, got "maybe"`}},
		{"float", "ratio: half\n", []string{`line 1: ratio: expected a number, got "half"`}},
		{"string from a list", "title: [a]\n", []string{`line 1: title: expected a string, got a list`}},
		{"list from a scalar", "tags: x\n", []string{`line 1: tags: expected a list, got "x"`}},
		{"map from a list", "labels: [a]\n", []string{`line 1: labels: expected a mapping (key: value lines), got a list`}},
		{"struct from a number", "inner: 3\n", []string{`line 1: inner: expected a mapping (key: value lines), got 3`}},
		{"map value", "labels: {a: [1]}\n", []string{`line 1: labels.a: expected a string, got a list`}},
		{"list item", "tags: [a, {b: c}]\n", []string{`line 1: tags[1]: expected a string, got a mapping`}},
		{"long value is shown whole", "inner: {count: twelve-thousand}\n", []string{`line 1: count: expected a whole number, got "twelve-thousand"`}},
		{"two keys on one line", "inner: {count: x, name: [y]}\n",
			[]string{`line 1: count: expected a whole number, got "x"`, `line 1: name: expected a string, got a list`}},
		{"same value for two keys", "size: -2\ninner: {count: x}\nptr: {count: x}\n",
			[]string{`line 1: size: expected a whole number, 0 or more, got -2`, `line 2: count: expected a whole number, got "x"`, `line 3: count: expected a whole number, got "x"`}},
		{"duration", "inner: {wait: 5}\n", []string{`line 1: wait: "5" is not a duration: write it with a unit, such as 30s, 1m30s or 500ms`}},
		{"negative duration", "inner: {wait: -5s}\n", []string{`line 1: wait: duration "-5s" is negative`}},
		{"duration from a list", "inner:\n  wait: [1s]\n", []string{`line 2: wait: expected a duration such as 30s or 2m, got a list`}},
		{"duplicate key", "title: a\nenabled: true\ntitle: b\n", []string{`line 3: title: set twice in the same mapping (first at line 1): keep one`}},
		{"duplicate map key", "labels:\n  a: b\n  a: c\n", []string{`line 3: a: set twice in the same mapping (first at line 2): keep one`}},
		{"item not a mapping", "items:\n  - x\n  - [y]\n  - {name: z, bad: 1}\n",
			[]string{`line 2: items[0]: expected a mapping (key: value lines), got "x"`, `line 3: items[1]: expected a mapping (key: value lines), got a list`, `line 4: unknown key "bad"`}},
		{"every problem, sorted by line", "zzz: 1\ninner:\n  count: x\n  nope: 2\nenabled: 7\naaa: 3\n",
			[]string{`line 1: unknown key "zzz"`, `line 3: count: expected a whole number, got "x"`, `line 4: unknown key "nope"`, `line 5: enabled: expected true or false, got 7`, `line 6: unknown key "aaa"`}},
		{"root not a mapping", "- a\n", []string{`line 1: expected a mapping (key: value lines), got a list`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out Outer
			err := plugin.DecodeStrict(parse(t, tt.src), &out)
			got := messages(err)
			if len(got) != len(tt.want) {
				t.Fatalf("DecodeStrict(%q) = %d problems, want %d:\n%s", tt.src, len(got), len(tt.want), strings.Join(got, "\n"))
			}
			for i, w := range tt.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q\n          want prefix %q", i+1, got[i], w)
				}
				var le *plugin.LineError
				if !errors.As(plugin.Flatten(err)[i], &le) || le.Line == 0 {
					t.Errorf("problem %d is not a *LineError with a line: %#v", i+1, plugin.Flatten(err)[i])
				}
			}
		})
	}
}

// An item that is not a mapping must not shift the items after it.
func TestDecodeStrictKeepsItems(t *testing.T) {
	t.Parallel()
	src := "items: [x, {name: b}]\nptr_items: [x, {name: c}]\nlabels: {a: b, a: c}\ntitle: t\n"
	var out Outer
	err := plugin.DecodeStrict(parse(t, src), &out)
	if len(plugin.Flatten(err)) != 3 {
		t.Fatalf("DecodeStrict = %v, want 3 problems", err)
	}
	if len(out.Items) != 2 || out.Items[1].Name != "b" {
		t.Errorf("Items = %+v, want the bad item left empty", out.Items)
	}
	if len(out.PtrItems) != 2 || out.PtrItems[0] != nil || out.PtrItems[1].Name != "c" {
		t.Errorf("PtrItems = %+v, want the bad item nil", out.PtrItems)
	}
	// The first value of a duplicate key is kept, and the rest is decoded.
	if out.Labels["a"] != "b" || out.Title != "t" {
		t.Errorf("Labels %v Title %q", out.Labels, out.Title)
	}
}

// yaml.v3 drops a null item of a list of structs (not of pointers): it is
// kept as the zero struct, without a problem.
func TestDecodeStrictNullItems(t *testing.T) {
	t.Parallel()
	var out Outer
	if err := plugin.DecodeStrict(parse(t, "items: [~, {name: b}]\nptr_items: [~, {name: c}]\n"), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 2 || out.Items[0] != (Inner{}) || out.Items[1].Name != "b" {
		t.Errorf("Items = %+v", out.Items)
	}
	if len(out.PtrItems) != 2 || out.PtrItems[0] != nil || out.PtrItems[1].Name != "c" {
		t.Errorf("PtrItems = %+v", out.PtrItems)
	}
}

// The document node is not changed by the repairs of DecodeStrict.
func TestDecodeStrictLeavesNode(t *testing.T) {
	t.Parallel()
	n := parse(t, "items: [x, {name: b}]\nlabels: {a: b, a: c}\n")
	before, _ := yaml.Marshal(n)
	_ = plugin.DecodeStrict(n, &Outer{})
	after, _ := yaml.Marshal(n)
	if string(before) != string(after) {
		t.Errorf("node changed:\n%s\nto\n%s", before, after)
	}
}

type withInlineMap struct {
	Name  string         `yaml:"name"`
	Extra map[string]any `yaml:",inline"`
}

type withInlinePtr struct {
	*Base `yaml:",inline"`
	Other int `yaml:"other"`
}

func TestDecodeStrictInline(t *testing.T) {
	t.Parallel()
	var m withInlineMap
	if err := plugin.DecodeStrict(parse(t, "name: a\nanything: 1\nelse: [x]\n"), &m); err != nil {
		t.Fatalf("inline map: %v", err)
	}
	if m.Extra["anything"] != 1 {
		t.Errorf("inline map Extra = %v", m.Extra)
	}
	var p withInlinePtr
	err := plugin.DecodeStrict(parse(t, "id: a\nother: 2\nnope: 3\n"), &p)
	if got := messages(err); len(got) != 1 || got[0] != `line 3: unknown key "nope"; valid keys here: id, other` {
		t.Errorf("inline pointer: %q", got)
	}
}

func TestUnknownKeyError(t *testing.T) {
	t.Parallel()
	err := plugin.DecodeStrict(parse(t, "inner: {nam: x}\n"), &Outer{})
	var uk *plugin.UnknownKeyError
	if !errors.As(err, &uk) || uk.Key != "nam" || strings.Join(uk.Valid, ",") != "count,name,wait" {
		t.Fatalf("errors.As(UnknownKeyError) = %+v from %v", uk, err)
	}
	uk.Valid = append(uk.Valid, "zz")
	if !strings.Contains(err.Error(), "wait, zz") {
		t.Errorf("Error() does not follow Valid: %v", err)
	}
}

func TestLineError(t *testing.T) {
	t.Parallel()
	inner := errors.New("boom")
	if got := (&plugin.LineError{Line: 3, Err: inner}).Error(); got != "line 3: boom" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&plugin.LineError{Err: inner}).Error(); got != "boom" {
		t.Errorf("Error() without a line = %q", got)
	}
	if !errors.Is(&plugin.LineError{Line: 1, Err: inner}, inner) {
		t.Error("Unwrap does not reach the cause")
	}
}

func TestFlattenAndTypeError(t *testing.T) {
	t.Parallel()
	a, b, c := errors.New("a"), errors.New("b"), errors.New("c")
	got := plugin.Flatten(errors.Join(a, errors.Join(b, fmt.Errorf("wrapped: %w", c))))
	if len(got) != 3 || got[0] != a || got[1] != b || got[2].Error() != "wrapped: c" { //nolint:errorlint // identity, not matching
		t.Errorf("Flatten = %v", got)
	}
	if plugin.Flatten(nil) != nil || plugin.TypeError(nil) != nil {
		t.Error("nil in, not nil out")
	}
	var te *yaml.TypeError
	if err := plugin.TypeError(errors.Join(a, &plugin.LineError{Line: 2, Err: b})); !errors.As(err, &te) ||
		strings.Join(te.Errors, "|") != "a|line 2: b" {
		t.Errorf("TypeError = %#v", err)
	}
}

// A TypeError returned from an UnmarshalYAML is decoded again by the caller's
// DecodeStrict: its messages keep their line and are not keyed twice.
type nested struct{ v Inner }

func (n *nested) UnmarshalYAML(node *yaml.Node) error {
	return plugin.TypeError(plugin.DecodeStrict(node, &n.v))
}

func TestDecodeStrictNested(t *testing.T) {
	t.Parallel()
	var out struct {
		N nested `yaml:"n"`
	}
	err := plugin.DecodeStrict(parse(t, "n:\n  count: x\n  bad: 1\n"), &out)
	got := messages(err)
	want := []string{`line 2: count: expected a whole number, got "x"`, `line 3: unknown key "bad"; valid keys here: count, name, wait`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("nested = %q\nwant %q", got, want)
	}
}

func TestDurationYAML(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want time.Duration
		err  string
	}{
		{"30s", 30 * time.Second, ""},
		{"1m30s", 90 * time.Second, ""},
		{"250ms", 250 * time.Millisecond, ""},
		{"0", 0, ""},
		{"5", 0, `"5" is not a duration: write it with a unit`},
		{"30 seconds", 0, `"30 seconds" is not a duration`},
		{"-1s", 0, `duration "-1s" is negative`},
		{"{a: 1}", 0, "expected a duration such as 30s or 2m, got a mapping"},
	}
	for _, tt := range tests {
		var d plugin.Duration
		err := yaml.Unmarshal([]byte(tt.in), &d)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("Unmarshal(%q) = %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("Unmarshal(%q) = %v, want %q", tt.in, err, tt.err)
		case d.D() != tt.want:
			t.Errorf("Unmarshal(%q) = %s, want %s", tt.in, d, tt.want)
		}
	}
	// Round trip.
	in := struct {
		D plugin.Duration `yaml:"d"`
	}{plugin.Duration(90 * time.Second)}
	b, err := yaml.Marshal(in)
	if err != nil || string(b) != "d: 1m30s\n" {
		t.Fatalf("Marshal = %q, %v", b, err)
	}
	out := in
	out.D = 0
	if err := yaml.Unmarshal(b, &out); err != nil || out != in {
		t.Errorf("round trip = %+v, %v", out, err)
	}
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	type doc struct {
		D plugin.Duration `json:"d"`
	}
	for _, d := range []time.Duration{0, time.Millisecond, 90 * time.Second, 36 * time.Hour} {
		b, err := json.Marshal(doc{plugin.Duration(d)})
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf(`{"d":%q}`, d); string(b) != want {
			t.Errorf("Marshal(%s) = %s, want %s", d, b, want)
		}
		var got doc
		if err := json.Unmarshal(b, &got); err != nil || got.D.D() != d {
			t.Errorf("round trip of %s = %s, %v", d, got.D, err)
		}
	}
	got := doc{D: plugin.Duration(time.Second)}
	if err := json.Unmarshal([]byte(`{"d":null}`), &got); err != nil || got.D.D() != time.Second {
		t.Errorf("null = %s, %v; want it left as it was", got.D, err)
	}
	for _, bad := range []string{`{"d":30}`, `{"d":"30"}`, `{"d":"soon"}`} {
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("Unmarshal(%s) = nil, want an error", bad)
		}
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	tpl, err := plugin.ParseTemplate("http://{{.Address}}/{{.Cluster}}")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.String() != "http://{{.Address}}/{{.Cluster}}" {
		t.Errorf("String() = %q", tpl.String())
	}
	got, err := tpl.Render(map[string]string{"Address": "127.0.0.1:80", "Cluster": "web"})
	if err != nil || got != "http://127.0.0.1:80/web" {
		t.Errorf("Render = %q, %v", got, err)
	}
	// A missing variable is an error, never an empty string.
	if got, err := tpl.Render(map[string]string{"Address": "x"}); err == nil || !strings.Contains(err.Error(), "Cluster") {
		t.Errorf("Render without Cluster = %q, %v", got, err)
	}
	if got, err := tpl.Render(nil); err == nil {
		t.Errorf("Render(nil) = %q, want an error", got)
	}
	if _, err := plugin.ParseTemplate("{{.Address"); err == nil || !strings.Contains(err.Error(), `template "{{.Address"`) {
		t.Errorf("ParseTemplate(unclosed) = %v", err)
	}
	if got, err := plugin.Render("{{.A}}-{{.B}}", map[string]string{"A": "1", "B": "2"}); err != nil || got != "1-2" {
		t.Errorf("Render = %q, %v", got, err)
	}
	if _, err := plugin.Render("{{", nil); err == nil {
		t.Error("Render of a bad template = nil error")
	}
	if _, err := plugin.Render("{{.Nope}}", map[string]string{}); err == nil {
		t.Error("Render with a missing key = nil error")
	}
	defer func() {
		if recover() == nil {
			t.Error("MustParseTemplate of a bad template did not panic")
		}
	}()
	plugin.MustParseTemplate("{{")
}
