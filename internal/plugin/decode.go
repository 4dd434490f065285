package plugin

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// LineError is a configuration problem at a line of the YAML source.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string {
	if e.Line <= 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
	typeErrLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	// yaml.v3's messages, rewritten by explain.
	unmarshalMsg = regexp.MustCompile("^cannot unmarshal (\\S+?)(?: `(.*)`)? into (.+)$")
	dupKeyMsg    = regexp.MustCompile(`^mapping key "(.*)" already defined at line (\d+)$`)
	// keyedMsg is a message that already starts with the key it is about.
	keyedMsg = regexp.MustCompile(`^[A-Za-z_][\w-]*(\[\d+\])*: `)
)

// DecodeStrict decodes node into out (a pointer) and rejects keys that out's
// type does not declare. Unlike yaml.Decoder.KnownFields, it keeps going after
// the first problem and returns all of them as *LineError values joined with
// errors.Join, sorted by line. Each message names the key it is about, such as
// `max: expected a whole number, got "many"`. Types that implement
// yaml.Unmarshaler check their own keys.
//
// A list item that is not a mapping where a struct is expected is reported and
// decoded as an empty item, and a key set twice in a mapping is reported and
// its first value kept: yaml.v3 would drop the whole item or mapping, hiding
// its other problems and shifting the items after it.
func DecodeStrict(node *yaml.Node, out any) error {
	if node == nil {
		return nil
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	st := &decodeState{items: map[*yaml.Node]*yaml.Node{}, dupKeys: map[*yaml.Node]bool{}}
	st.checkKeys(node, reflect.TypeOf(out), "")
	if err := st.without(node).Decode(out); err != nil {
		st.errs = append(st.errs, st.splitTypeError(err)...)
	}
	sortByLine(st.errs)
	return errors.Join(st.errs...)
}

// TypeError turns errors (typically from DecodeStrict) into a *yaml.TypeError, so
// that a custom UnmarshalYAML can report them without stopping the surrounding
// decode: yaml.v3 collects TypeErrors and aborts on any other error. Beware that
// yaml.v3 drops a list item whose UnmarshalYAML fails.
func TypeError(err error) error {
	if err == nil {
		return nil
	}
	var msgs []string
	for _, e := range Flatten(err) {
		msgs = append(msgs, e.Error())
	}
	return &yaml.TypeError{Errors: msgs}
}

// Flatten returns the leaves of a tree of errors.Join errors.
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // walking a join tree, not matching
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// UnknownKeyError is a mapping key that the type decoded into does not declare.
type UnknownKeyError struct {
	Key string
	// Valid are the keys allowed in that mapping, sorted.
	Valid []string
}

func (e *UnknownKeyError) Error() string {
	return fmt.Sprintf("unknown key %q; valid keys here: %s", e.Key, strings.Join(e.Valid, ", "))
}

// site is a value node of the document with the key it is under and the Go
// type it decodes into.
type site struct {
	key  string
	node *yaml.Node
	t    reflect.Type
}

type decodeState struct {
	errs  []error
	sites []site
	// items maps the list items that yaml.v3 would drop to what is decoded
	// instead; dupKeys holds the keys set twice, left out with their value.
	items   map[*yaml.Node]*yaml.Node
	dupKeys map[*yaml.Node]bool
}

func (st *decodeState) splitTypeError(err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{err}
	}
	out := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := typeErrLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, &LineError{Line: n, Err: errors.New(st.explain(n, m[2]))})
			continue
		}
		out = append(out, errors.New(msg))
	}
	return out
}

// explain rewrites a yaml.v3 message about line into an operator's words,
// naming the key: "cannot unmarshal !!str `many` into int" becomes
// `max: expected a whole number, got "many"`.
func (st *decodeState) explain(line int, msg string) string {
	if keyedMsg.MatchString(msg) {
		return msg // from a nested DecodeStrict
	}
	if m := dupKeyMsg.FindStringSubmatch(msg); m != nil {
		return fmt.Sprintf("%s: set twice in the same mapping (first at line %s): keep one", m[1], m[2])
	}
	if m := unmarshalMsg.FindStringSubmatch(msg); m != nil {
		tag, value, goType := m[1], m[2], m[3]
		s := st.find(line, func(s site) bool {
			return s.t.String() == goType && tagMatches(s.node, tag) && valueMatches(s.node, value)
		})
		if s == nil {
			s = st.find(line, func(s site) bool { return tagMatches(s.node, tag) && valueMatches(s.node, value) })
		}
		if s == nil {
			return fmt.Sprintf("expected %s, got %s", describeGoType(goType), describeTag(tag, value))
		}
		return withKey(s.key, fmt.Sprintf("expected %s, got %s", describeType(s.t), describeNode(s.node)))
	}
	// A message of a type's own UnmarshalYAML (a duration, …).
	s := st.find(line, func(s site) bool {
		return isUnmarshaler(s.t) && (s.node.Kind != yaml.ScalarNode || strings.Contains(msg, strconv.Quote(s.node.Value)))
	})
	if s == nil {
		return msg
	}
	return withKey(s.key, msg)
}

func withKey(key, msg string) string {
	if key == "" {
		return msg
	}
	return key + ": " + msg
}

// find returns the one site at line that keep accepts, or nil if there is
// none or the candidates are under different keys.
func (st *decodeState) find(line int, keep func(site) bool) *site {
	var found *site
	for i := range st.sites {
		s := &st.sites[i]
		if s.node.Line != line || !keep(*s) {
			continue
		}
		if found != nil && found.key != s.key {
			return nil
		}
		if found == nil {
			found = s
		}
	}
	return found
}

func tagMatches(n *yaml.Node, tag string) bool {
	switch tag {
	case "!!map":
		return n.Kind == yaml.MappingNode
	case "!!seq":
		return n.Kind == yaml.SequenceNode
	default:
		return n.Kind == yaml.ScalarNode
	}
}

// valueMatches compares a node's value with the one in a yaml.v3 message,
// which cuts values longer than 10 bytes to 7 and "...".
func valueMatches(n *yaml.Node, v string) bool {
	if n.Kind != yaml.ScalarNode {
		return v == ""
	}
	return n.Value == v || (len(n.Value) > 10 && v == n.Value[:7]+"...")
}

func isUnmarshaler(t reflect.Type) bool {
	return t.Implements(unmarshalerType) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(unmarshalerType))
}

// describeType says in words what a value of type t is written as.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "a whole number"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a whole number, 0 or more"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "true or false"
	case reflect.String:
		return "a string"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a mapping (key: value lines)"
	default:
		return "a value of type " + t.String()
	}
}

// describeGoType is describeType from the type's name in a yaml.v3 message.
func describeGoType(name string) string {
	name = strings.TrimLeft(name, "*")
	switch {
	case strings.HasPrefix(name, "[]"):
		return "a list"
	case strings.HasPrefix(name, "map["):
		return "a mapping (key: value lines)"
	case strings.HasPrefix(name, "uint"):
		return "a whole number, 0 or more"
	case strings.HasPrefix(name, "int"):
		return "a whole number"
	case strings.HasPrefix(name, "float"):
		return "a number"
	case name == "bool":
		return "true or false"
	case name == "string":
		return "a string"
	default:
		return "a value of type " + name
	}
}

// describeNode says what the document holds at n.
func describeNode(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return describeTag(n.ShortTag(), n.Value)
	}
}

func describeTag(tag, value string) string {
	switch tag {
	case "!!map":
		return "a mapping"
	case "!!seq":
		return "a list"
	case "!!null":
		return "nothing"
	case "!!str":
		return strconv.Quote(value)
	default:
		return value
	}
}

func sortByLine(errs []error) {
	line := func(e error) int {
		var le *LineError
		if errors.As(e, &le) {
			return le.Line
		}
		return 0
	}
	sort.SliceStable(errs, func(i, j int) bool { return line(errs[i]) < line(errs[j]) })
}

// structElem reports whether t (a list's item type) decodes from a mapping
// only: a struct, or a pointer to one (ptr), that is not a yaml.Unmarshaler.
func structElem(t reflect.Type) (ptr, ok bool) {
	for t.Kind() == reflect.Pointer && !isUnmarshaler(t) {
		t, ptr = t.Elem(), true
	}
	return ptr, t.Kind() == reflect.Struct && !isUnmarshaler(t)
}

// checkKeys walks node alongside t, records the sites and reports mapping keys
// that t does not declare.
func (st *decodeState) checkKeys(node *yaml.Node, t reflect.Type, key string) {
	if node == nil || t == nil {
		return
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
		if node == nil {
			return
		}
	}
	for t.Kind() == reflect.Pointer && t != nodeType && !isUnmarshaler(t) {
		t = t.Elem()
	}
	st.sites = append(st.sites, site{key: key, node: node, t: t})
	if t == nodeType || isUnmarshaler(t) {
		return
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		// yaml.v3 would silently cut 1.5 to 1.
		if node.Kind == yaml.ScalarNode && node.ShortTag() == "!!float" {
			if f, err := strconv.ParseFloat(node.Value, 64); err == nil && f != math.Trunc(f) {
				st.errs = append(st.errs, &LineError{Line: node.Line,
					Err: errors.New(withKey(key, fmt.Sprintf("expected %s, got %s", describeType(t), node.Value)))})
			}
		}
	case reflect.Slice, reflect.Array:
		if node.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range node.Content {
			item := fmt.Sprintf("%s[%d]", key, i)
			if c.Kind == yaml.AliasNode && c.Alias != nil {
				c = c.Alias
			}
			if ptr, ok := structElem(t.Elem()); ok && c.Kind != yaml.MappingNode {
				null := c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null"
				if null && ptr {
					continue // a nil item: for the caller to judge
				}
				if !null {
					st.errs = append(st.errs, &LineError{Line: c.Line,
						Err: fmt.Errorf("%s: expected a mapping (key: value lines), got %s", item, describeNode(c))})
				}
				// Decoded as nil, or as the zero struct.
				st.items[c] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: c.Line, Column: c.Column}
				if !ptr {
					st.items[c] = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: c.Line, Column: c.Column}
				}
				continue
			}
			st.checkKeys(c, t.Elem(), item)
		}
	case reflect.Map:
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				if !st.duplicate(node, i) {
					st.checkKeys(node.Content[i+1], t.Elem(), strings.TrimPrefix(key+"."+node.Content[i].Value, "."))
				}
			}
		}
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return
		}
		fields, open := structFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			if st.duplicate(node, i) {
				continue
			}
			k, v := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				if !open {
					st.errs = append(st.errs, &LineError{Line: k.Line, Err: &UnknownKeyError{Key: k.Value, Valid: sortedKeys(fields)}})
				}
				continue
			}
			st.checkKeys(v, ft, k.Value)
		}
	default:
	}
}

// duplicate reports (and marks to drop) the i-th key of mapping n if an
// earlier key of n is the same, as yaml.v3 compares them.
func (st *decodeState) duplicate(n *yaml.Node, i int) bool {
	k := n.Content[i]
	for j := 0; j < i; j += 2 {
		if f := n.Content[j]; f.Kind == k.Kind && f.Value == k.Value {
			st.errs = append(st.errs, &LineError{Line: k.Line,
				Err: fmt.Errorf("%s: set twice in the same mapping (first at line %d): keep one", k.Value, f.Line)})
			st.dupKeys[k] = true
			return true
		}
	}
	return false
}

// without returns n with st.items replaced and st.dupKeys left out with their
// values, copying only what changes.
func (st *decodeState) without(n *yaml.Node) *yaml.Node {
	if (len(st.items) == 0 && len(st.dupKeys) == 0) || n == nil {
		return n
	}
	if r, ok := st.items[n]; ok {
		return r
	}
	var content []*yaml.Node
	changed := false
	for i := 0; i < len(n.Content); i++ {
		c := n.Content[i]
		if n.Kind == yaml.MappingNode && i%2 == 0 && st.dupKeys[c] {
			i++ // and its value
			changed = true
			continue
		}
		nc := st.without(c)
		changed = changed || nc != c
		content = append(content, nc)
	}
	if !changed {
		return n
	}
	cp := *n
	cp.Content = content
	return &cp
}

// structFields returns the YAML keys of t (following ",inline") and their
// types; open reports an inline map, which takes any other key.
func structFields(t reflect.Type) (fields map[string]reflect.Type, open bool) {
	fields = map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch ft.Kind() {
			case reflect.Struct:
				sub, subOpen := structFields(ft)
				for k, v := range sub {
					fields[k] = v
				}
				open = open || subOpen
			case reflect.Map:
				open = true
			default:
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, open
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Duration is a time.Duration written in configuration as a Go duration string
// ("30s", "1m30s", "250ms"). A bare number is refused: its unit would be a guess.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats the duration like time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML parses a duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a duration such as 30s or 2m, got %s", n.Line, describeNode(n))}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration: write it with a unit, such as 30s, 1m30s or 500ms", n.Line, n.Value)}}
	}
	if v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration %q is negative: use 0 or more, such as 30s", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(d.String())), nil }

// UnmarshalJSON parses a duration string ("30s"), as written by MarshalJSON.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil // the encoding/json convention: null leaves the value as it is
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}
