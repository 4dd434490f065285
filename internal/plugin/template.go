package plugin

import (
	"fmt"
	"strings"
	"text/template"
)

// Template is a text/template over a node's variables ({{.Cluster}},
// {{.NodeID}}, {{.Address}}, …), parsed once at load. A variable that is not
// defined is an error when rendered, never an empty string.
type Template struct {
	src string
	t   *template.Template
}

// ParseTemplate parses src.
func ParseTemplate(src string) (*Template, error) {
	t, err := template.New("").Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("template %q: %w", src, err)
	}
	return &Template{src: src, t: t}, nil
}

// MustParseTemplate is ParseTemplate for sources known to be valid; it panics otherwise.
func MustParseTemplate(src string) *Template {
	t, err := ParseTemplate(src)
	if err != nil {
		panic(err)
	}
	return t
}

// Render executes the template with vars.
func (t *Template) Render(vars map[string]string) (string, error) {
	var b strings.Builder
	if err := t.t.Execute(&b, vars); err != nil {
		return "", fmt.Errorf("rendering %q: %w", t.src, err)
	}
	return b.String(), nil
}

// String returns the template's source.
func (t *Template) String() string { return t.src }

// Render parses and renders src in one go.
func Render(src string, vars map[string]string) (string, error) {
	t, err := ParseTemplate(src)
	if err != nil {
		return "", err
	}
	return t.Render(vars)
}
