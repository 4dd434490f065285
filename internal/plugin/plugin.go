// Package plugin holds what every plugin kind shares: a registry of built-ins by
// name, strict YAML decoding of a plugin's typed configuration, and the Duration
// type used in configuration files.
//
// Each plugin kind (counter source, provider, load balancer, action) lives in its
// own package and keeps a Registry of config constructors. A plugin's typed config
// struct is its factory: it is decoded strictly from the YAML node, validated at
// load time, and only then asked to build the plugin.
package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Validator is implemented by configs that check their own values after decoding.
// Validate returns every problem it finds (errors.Join), each naming the field.
type Validator interface {
	Validate() error
}

// Registry maps a plugin type name (the `type:` key in configuration) to a
// constructor of its typed config C.
type Registry[C any] struct {
	kind string
	mu   sync.RWMutex
	m    map[string]func() C
}

// NewRegistry returns an empty registry for plugins of the given kind ("counter",
// "provider", …), used in error messages.
func NewRegistry[C any](kind string) *Registry[C] {
	return &Registry[C]{kind: kind, m: map[string]func() C{}}
}

// Register adds a built-in. It panics on a duplicate name: that is a programming
// error caught at init time.
func (r *Registry[C]) Register(name string, newConfig func() C) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.m[name]; ok {
		panic(fmt.Sprintf("plugin: %s type %q registered twice", r.kind, name))
	}
	r.m[name] = newConfig
}

// Names returns the registered type names, sorted.
func (r *Registry[C]) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.m))
	for n := range r.m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Kind is the plugin kind this registry holds.
func (r *Registry[C]) Kind() string { return r.kind }

// ErrUnknownType is wrapped by Decode when the type name is not registered.
var ErrUnknownType = errors.New("unknown plugin type")

// unknownTypeError says which types exist; it matches ErrUnknownType.
type unknownTypeError struct {
	kind, name string
	known      []string
}

func (e *unknownTypeError) Error() string {
	if e.name == "" {
		return fmt.Sprintf("%s has no type: add type: with one of %s", e.kind, strings.Join(e.known, ", "))
	}
	return fmt.Sprintf("unknown %s type %q; known types: %s", e.kind, e.name, strings.Join(e.known, ", "))
}

func (e *unknownTypeError) Is(target error) bool { return target == ErrUnknownType }

// Decode builds the typed config registered under name from node (a YAML mapping
// holding the plugin's own keys; nil means no keys), strictly: unknown keys and
// wrong types are errors that carry their line. If the config implements
// Validator, it is validated too; each of its problems that starts with a key
// present in node ("url: required") carries that key's line. Every problem is
// returned (errors.Join).
func (r *Registry[C]) Decode(name string, node *yaml.Node) (C, error) {
	var zero C
	r.mu.RLock()
	newConfig, ok := r.m[name]
	r.mu.RUnlock()
	if !ok {
		return zero, &LineError{Line: keyLine(node, ""), Err: &unknownTypeError{kind: r.kind, name: name, known: r.Names()}}
	}
	cfg := newConfig()
	if node != nil {
		if err := DecodeStrict(node, cfg); err != nil {
			return zero, err
		}
	}
	if v, ok := any(cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			var errs []error
			for _, e := range Flatten(err) {
				errs = append(errs, &LineError{Line: keyLine(node, e.Error()), Err: e})
			}
			return zero, errors.Join(errs...)
		}
	}
	return cfg, nil
}

// keyLine returns the line of the key msg starts with ("url: …",
// "command[0]: …", "headers.X: …") in mapping node, else node's own line
// (0 for nil).
func keyLine(node *yaml.Node, msg string) int {
	if node == nil {
		return 0
	}
	if node.Kind == yaml.DocumentNode && len(node.Content) == 1 {
		node = node.Content[0]
	}
	key := msg[:strings.IndexFunc(msg+":", func(r rune) bool { return r == ':' || r == '.' || r == '[' || r == ' ' })]
	if key != "" && node.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				return node.Content[i].Line
			}
		}
	}
	return node.Line
}

// DecodeJSON rebuilds the typed config registered under name from its JSON form
// (as stored with an activity) and validates it.
func (r *Registry[C]) DecodeJSON(name string, data []byte) (C, error) {
	var zero C
	r.mu.RLock()
	newConfig, ok := r.m[name]
	r.mu.RUnlock()
	if !ok {
		return zero, fmt.Errorf("%w: %s type %q", ErrUnknownType, r.kind, name)
	}
	cfg := newConfig()
	if len(data) > 0 {
		if err := json.Unmarshal(data, cfg); err != nil {
			return zero, fmt.Errorf("%s %q: decoding stored config: %w", r.kind, name, err)
		}
	}
	if v, ok := any(cfg).(Validator); ok {
		if err := v.Validate(); err != nil {
			return zero, fmt.Errorf("%s %q: %w", r.kind, name, err)
		}
	}
	return cfg, nil
}
