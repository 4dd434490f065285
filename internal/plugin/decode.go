package plugin

import (
	"errors"
	"fmt"
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
)

// DecodeStrict decodes node into out (a pointer) and rejects keys that out's
// type does not declare. Unlike yaml.Decoder.KnownFields, it keeps going after
// the first problem and returns all of them as *LineError values joined with
// errors.Join. Types that implement yaml.Unmarshaler check their own keys.
func DecodeStrict(node *yaml.Node, out any) error {
	if node == nil {
		return nil
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	var errs []error
	checkKeys(node, reflect.TypeOf(out), &errs)
	if err := node.Decode(out); err != nil {
		errs = append(errs, splitTypeError(err)...)
	}
	sortByLine(errs)
	return errors.Join(errs...)
}

// TypeError turns errors (typically from DecodeStrict) into a *yaml.TypeError, so
// that a custom UnmarshalYAML can report them without stopping the surrounding
// decode: yaml.v3 collects TypeErrors and aborts on any other error.
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

func splitTypeError(err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []error{err}
	}
	out := make([]error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		if m := typeErrLine.FindStringSubmatch(msg); m != nil {
			n, _ := strconv.Atoi(m[1])
			out = append(out, &LineError{Line: n, Err: errors.New(friendlier(m[2]))})
			continue
		}
		out = append(out, errors.New(msg))
	}
	return out
}

// friendlier rewrites yaml.v3's Go-centric type messages into the words an
// operator uses.
func friendlier(msg string) string {
	r := strings.NewReplacer(
		"cannot unmarshal !!str", "expected a different type, got the string",
		"cannot unmarshal !!int", "expected a different type, got the number",
		"cannot unmarshal !!float", "expected a different type, got the number",
		"cannot unmarshal !!bool", "expected a different type, got the boolean",
		"cannot unmarshal !!map", "expected a different type, got a mapping",
		"cannot unmarshal !!seq", "expected a different type, got a list",
		"into int", "(want a whole number)",
		"into float64", "(want a number)",
		"into bool", "(want true or false)",
		"into string", "(want a string)",
	)
	return r.Replace(msg)
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

// checkKeys walks node alongside t and reports mapping keys that t does not declare.
func checkKeys(node *yaml.Node, t reflect.Type, errs *[]error) {
	if node == nil || t == nil {
		return
	}
	if node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) || t.Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		checkKeys(node, t.Elem(), errs)
	case reflect.Slice, reflect.Array:
		if node.Kind == yaml.SequenceNode {
			for _, c := range node.Content {
				checkKeys(c, t.Elem(), errs)
			}
		}
	case reflect.Map:
		if node.Kind == yaml.MappingNode {
			for i := 1; i < len(node.Content); i += 2 {
				checkKeys(node.Content[i], t.Elem(), errs)
			}
		}
	case reflect.Struct:
		if node.Kind != yaml.MappingNode {
			return
		}
		fields := structFields(t)
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, &LineError{Line: k.Line, Err: fmt.Errorf("unknown key %q; valid keys here: %s",
					k.Value, strings.Join(sortedKeys(fields), ", "))})
				continue
			}
			checkKeys(v, ft, errs)
		}
	default:
	}
}

// structFields returns the YAML keys of t (following ",inline") and their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
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
			if ft.Kind() == reflect.Struct {
				for k, v := range structFields(ft) {
					out[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = f.Type
	}
	return out
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
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expected a duration such as 30s or 2m", n.Line)}}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration: write it with a unit, such as 30s, 1m30s or 500ms", n.Line, n.Value)}}
	}
	if v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: duration %q is negative", n.Line, n.Value)}}
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
