// Package jmx is the "jmx" counter source: it reads one attribute of a JVM's
// MBean — optionally one item inside a composite value, such as the used part
// of java.lang:type=Memory's HeapMemoryUsage — over HTTP, in one of two
// protocols:
//
//   - jolokia: a Jolokia agent's REST API, GET <url>/read/<mbean>/<attribute>[/<path>]
//     answered with JSON {"value": …, "status": 200}
//     (https://jolokia.org/reference/html/protocol.html);
//   - jmxproxy: Tomcat's manager JMX proxy servlet,
//     GET <url>?get=<mbean>&att=<attribute>[&key=<item>], answered with a line
//     "OK - Attribute get '<mbean>' - <attribute> = <value>"; the user needs
//     Tomcat's manager-jmx role.
//
// One HTTP client with a few idle connections per host serves every reading
// of a counter. An unknown MBean, attribute or item, a value that is not a
// number, an authentication failure or a refused connection is an error that
// says so (unknown names match ErrNotFound), never a zero.
package jmx

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"strings"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/secret"
)

// Protocols.
const (
	Jolokia  = "jolokia"
	JMXProxy = "jmxproxy"
)

// MaxBody is the largest response a reading accepts.
const MaxBody = 1 << 20

// ErrNotFound is matched by the error of a reading whose MBean, attribute or
// item inside the attribute's value does not exist.
var ErrNotFound = errors.New("not found")

func init() {
	counter.Registry.Register("jmx", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "jmx" counter source.
type Config struct {
	// Protocol is jolokia or jmxproxy.
	Protocol string `yaml:"protocol" json:"protocol"`
	// URL is the Jolokia agent's base URL ("http://{{.Host}}:8778/jolokia")
	// or the JMX proxy servlet's ("http://{{.Address}}/manager/jmxproxy"); a
	// template over the target vars.
	URL string `yaml:"url" json:"url"`
	// MBean is the MBean's object name ("java.lang:type=Memory"); a template,
	// for names that hold a node's port such as
	// `Catalina:type=ThreadPool,name="http-nio-{{.Port}}"`.
	MBean string `yaml:"mbean" json:"mbean"`
	// Attribute is the attribute's name ("HeapMemoryUsage").
	Attribute string `yaml:"attribute" json:"attribute"`
	// Path picks an item inside a composite value, keys separated by dots
	// ("used"); jmxproxy reads one level only.
	Path string `yaml:"path" json:"path"`
	// User is the HTTP basic-auth user; its password comes from the
	// environment variable PasswordEnv or the file PasswordFile.
	User         string `yaml:"user" json:"user"`
	PasswordEnv  string `yaml:"password_env" json:"password_env"`
	PasswordFile string `yaml:"password_file" json:"password_file"`
}

// DefaultScope is ScopeNode when the URL or the MBean uses {{.Address}},
// {{.Host}} or {{.Port}}, ScopeCluster otherwise.
func (c *Config) DefaultScope() counter.Scope {
	if plugin.UsesNodeVars(c.URL) || plugin.UsesNodeVars(c.MBean) {
		return counter.ScopeNode
	}
	return counter.ScopeCluster
}

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c *Config) compile() (*Source, error) {
	var errs []error
	s := &Source{protocol: c.Protocol, attribute: c.Attribute, pathText: c.Path}
	switch c.Protocol {
	case Jolokia, JMXProxy:
	case "":
		errs = append(errs, errors.New("protocol: required: jolokia (a Jolokia agent) or jmxproxy (Tomcat's /manager/jmxproxy)"))
	default:
		errs = append(errs, fmt.Errorf("protocol: %q is not supported, use jolokia or jmxproxy", c.Protocol))
	}
	if strings.TrimSpace(c.URL) == "" {
		example := "http://{{.Host}}:8778/jolokia"
		if c.Protocol == JMXProxy {
			example = "http://{{.Address}}/manager/jmxproxy"
		}
		errs = append(errs, fmt.Errorf("url: required, such as %q", example))
	} else if t, err := plugin.ParseTemplate(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	} else {
		s.url = t
		if !strings.Contains(c.URL, "{{") {
			if _, err := httpget.CheckURL(c.URL); err != nil {
				errs = append(errs, fmt.Errorf("url: %w", err))
			}
		}
	}
	if strings.TrimSpace(c.MBean) == "" {
		errs = append(errs, errors.New(`mbean: required, an MBean's object name such as "java.lang:type=Memory"`))
	} else if t, err := plugin.ParseTemplate(c.MBean); err != nil {
		errs = append(errs, fmt.Errorf("mbean: %w", err))
	} else {
		s.mbean = t
		if !strings.Contains(c.MBean, "{{") {
			if err := checkObjectName(c.MBean); err != nil {
				errs = append(errs, fmt.Errorf("mbean: %w", err))
			}
		}
	}
	switch {
	case strings.TrimSpace(c.Attribute) == "":
		errs = append(errs, errors.New(`attribute: required, such as "HeapMemoryUsage"`))
	case strings.ContainsAny(c.Attribute, ",\n"):
		errs = append(errs, fmt.Errorf("attribute: %q names more than one attribute; a counter reads one", c.Attribute))
	}
	if c.Path != "" {
		s.path = strings.Split(c.Path, ".")
		switch {
		case slices.Contains(s.path, ""):
			errs = append(errs, fmt.Errorf("path: %q has an empty segment; write keys separated by single dots, such as used", c.Path))
		case c.Protocol == JMXProxy && len(s.path) > 1:
			errs = append(errs, fmt.Errorf("path: %q has %d levels; jmxproxy reads one item of a composite value (such as used)", c.Path, len(s.path)))
		}
	}
	if err := secret.Validate("password", c.PasswordEnv, c.PasswordFile); err != nil {
		errs = append(errs, err)
	}
	hasPassword := c.PasswordEnv != "" || c.PasswordFile != ""
	switch {
	case c.User == "" && hasPassword:
		errs = append(errs, errors.New("user: required with a password"))
	case c.User != "" && !hasPassword:
		errs = append(errs, fmt.Errorf("password_env: the password of user %q is required: set password_env or password_file", c.User))
	case strings.Contains(c.User, ":"):
		errs = append(errs, errors.New("user: must not contain a colon (HTTP basic authentication)"))
	}
	return s, errors.Join(errs...)
}

// checkObjectName checks the shape of a JMX object name: domain:key=value[,…].
func checkObjectName(name string) error {
	domain, props, ok := strings.Cut(name, ":")
	if !ok || props == "" || !strings.Contains(props, "=") {
		return fmt.Errorf("%q is not an MBean object name: write domain:key=value[,key=value…], such as java.lang:type=Memory", name)
	}
	if strings.ContainsAny(domain, "\n") {
		return fmt.Errorf("%q: the domain must be on one line", name)
	}
	return nil
}

// New builds the source and its HTTP client, reading the password.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("jmx counter: %w", err)
	}
	pw, err := secret.Read("password", c.PasswordEnv, c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("jmx counter: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("counter", env.Counter, "cluster", env.Cluster)
	s.client = httpget.New(c.User, pw)
	return s, nil
}

// Source reads the attribute at each reading. It is safe for concurrent use.
type Source struct {
	protocol  string
	url       *plugin.Template
	mbean     *plugin.Template
	attribute string
	path      []string // nil: the attribute's whole value
	pathText  string
	client    *httpget.Client
	log       *slog.Logger
}

var _ counter.Source = (*Source)(nil)

// Close releases the idle connections.
func (s *Source) Close() error { return s.client.Close() }

// Read requests the attribute and returns its value.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	vars := t.TemplateVars()
	raw, err := s.url.Render(vars)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	base, err := httpget.CheckURL(raw)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	mbean, err := s.mbean.Render(vars)
	if err != nil {
		return 0, fmt.Errorf("mbean: %w", err)
	}
	if s.protocol == JMXProxy {
		return s.readJMXProxy(ctx, base, mbean)
	}
	return s.readJolokia(ctx, base, mbean)
}

// what names the value read, for messages: `java.lang:type=Memory HeapMemoryUsage.used`.
func (s *Source) what(mbean string) string {
	w := mbean + " " + s.attribute
	if s.pathText != "" {
		w += "." + s.pathText
	}
	return w
}

// ---------------------------------------------------------------------------
// Jolokia

// JolokiaEscape escapes one part of a Jolokia GET URL: "!" becomes "!!", "/"
// becomes "!/" and `"` becomes `!"` (Jolokia's own escapes, since servlet
// containers refuse %2F in a path), then the part is percent-encoded.
func JolokiaEscape(part string) string {
	var b strings.Builder
	for _, r := range part {
		if r == '!' || r == '/' || r == '"' {
			b.WriteByte('!')
		}
		b.WriteRune(r)
	}
	return url.PathEscape(b.String())
}

// JolokiaReadURL is the GET URL that reads mbean's attribute (and the item
// at path) from the agent at base.
func JolokiaReadURL(base *url.URL, mbean, attribute string, path []string) *url.URL {
	u := *base
	parts := []string{strings.TrimSuffix(base.EscapedPath(), "/"), "read", JolokiaEscape(mbean), JolokiaEscape(attribute)}
	for _, p := range path {
		parts = append(parts, JolokiaEscape(p))
	}
	u.RawPath = strings.Join(parts, "/")
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = ""
	return &u
}

// jolokiaResponse is the JSON answer of a Jolokia read request.
type jolokiaResponse struct {
	Status    *int            `json:"status"`
	Value     json.RawMessage `json:"value"`
	Error     string          `json:"error"`
	ErrorType string          `json:"error_type"`
}

func (s *Source) readJolokia(ctx context.Context, base *url.URL, mbean string) (float64, error) {
	u := JolokiaReadURL(base, mbean, s.attribute, s.path)
	what := s.what(mbean)
	body, err := s.client.Get(ctx, u, "application/json", MaxBody)
	if err != nil {
		// An agent may answer an error with its HTTP status too; its JSON
		// says more than the status line.
		var se *httpget.StatusError
		if errors.As(err, &se) && !errors.Is(err, httpget.ErrAuth) {
			var r jolokiaResponse
			if json.Unmarshal(se.Body, &r) == nil && r.Status != nil && *r.Status != 200 {
				return 0, jolokiaError(u, what, mbean, s.attribute, s.pathText, r)
			}
		}
		return 0, fmt.Errorf("jolokia %s: %w", what, err)
	}
	var r jolokiaResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("jolokia %s: GET %s: the answer is not Jolokia's JSON: %q", what, u.Redacted(), counter.Short(httpget.OneLine(string(body))))
	}
	if r.Status == nil {
		return 0, fmt.Errorf("jolokia %s: GET %s: the answer has no status: %q", what, u.Redacted(), counter.Short(httpget.OneLine(string(body))))
	}
	if *r.Status != 200 {
		return 0, jolokiaError(u, what, mbean, s.attribute, s.pathText, r)
	}
	v, err := jsonNumber(r.Value)
	if err != nil {
		return 0, fmt.Errorf("jolokia %s: %w", what, err)
	}
	return v, nil
}

// jolokiaError explains an error answer by its Java exception type.
func jolokiaError(u *url.URL, what, mbean, attribute, path string, r jolokiaResponse) error {
	typ := r.ErrorType[strings.LastIndex(r.ErrorType, ".")+1:]
	msg := r.Error
	if msg == "" {
		msg = r.ErrorType
	}
	switch typ {
	case "InstanceNotFoundException":
		return counter.Mark(fmt.Errorf("jolokia %s: no MBean %q on %s", what, mbean, u.Host), ErrNotFound)
	case "AttributeNotFoundException":
		if path != "" {
			return counter.Mark(fmt.Errorf("jolokia %s: MBean %q has no attribute %q with the item %q (%s)", what, mbean, attribute, path, counter.Short(httpget.OneLine(msg))), ErrNotFound)
		}
		return counter.Mark(fmt.Errorf("jolokia %s: MBean %q has no attribute %q", what, mbean, attribute), ErrNotFound)
	case "MalformedObjectNameException":
		return fmt.Errorf("jolokia %s: %q is not a valid MBean name: %s", what, mbean, counter.Short(httpget.OneLine(msg)))
	}
	return fmt.Errorf("jolokia %s: error %d from %s: %s", what, *r.Status, u.Host, counter.Short(httpget.OneLine(msg)))
}

// jsonNumber reads a number from a JSON value: a number, or a string holding one.
func jsonNumber(raw json.RawMessage) (float64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if len(bytes.TrimSpace(raw)) == 0 {
		return 0, errors.New("the answer has no value")
	}
	if err := dec.Decode(&v); err != nil {
		return 0, fmt.Errorf("the value is not valid JSON: %w", err)
	}
	switch x := v.(type) {
	case json.Number:
		return counter.ParseNumber(x.String())
	case string:
		f, err := counter.ParseNumber(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("the value is a string: %w", err)
		}
		return f, nil
	case map[string]any:
		keys := slices.Sorted(maps.Keys(x))
		return 0, counter.Mark(fmt.Errorf("the value is a composite with the items %s, not a number; set path to one of them", strings.Join(keys, ", ")), counter.ErrNotANumber)
	case []any:
		return 0, counter.Mark(fmt.Errorf("the value is a list of %d items, not a number", len(x)), counter.ErrNotANumber)
	case bool:
		return 0, counter.Mark(fmt.Errorf("the value is a boolean (%t), not a number", x), counter.ErrNotANumber)
	case nil:
		return 0, counter.Mark(errors.New("the value is null, not a number"), counter.ErrNotANumber)
	}
	return 0, counter.Mark(fmt.Errorf("the value is a %T, not a number", v), counter.ErrNotANumber)
}

// ---------------------------------------------------------------------------
// Tomcat's JMX proxy

// JMXProxyURL is the GET URL that reads mbean's attribute (and the item key,
// if not empty) from Tomcat's JMX proxy servlet at base.
func JMXProxyURL(base *url.URL, mbean, attribute, key string) *url.URL {
	u := *base
	q := url.Values{"get": {mbean}, "att": {attribute}}
	if key != "" {
		q.Set("key", key)
	}
	u.RawQuery = q.Encode()
	return &u
}

func (s *Source) readJMXProxy(ctx context.Context, base *url.URL, mbean string) (float64, error) {
	key := ""
	if len(s.path) == 1 {
		key = s.path[0]
	}
	u := JMXProxyURL(base, mbean, s.attribute, key)
	what := s.what(mbean)
	body, err := s.client.Get(ctx, u, "text/plain", MaxBody)
	if err != nil {
		return 0, fmt.Errorf("jmxproxy %s: %w", what, err)
	}
	v, err := parseJMXProxy(body, mbean, s.attribute, key)
	if err != nil {
		return 0, fmt.Errorf("jmxproxy %s: %w", what, err)
	}
	return v, nil
}

// parseJMXProxy reads the value from the servlet's answer:
//
//	OK - Attribute get 'java.lang:type=Memory' - HeapMemoryUsage - key 'used' = 13927424
//	Error - javax.management.InstanceNotFoundException: java.lang:type=Nope
func parseJMXProxy(body []byte, mbean, attribute, key string) (float64, error) {
	line, _, _ := bufio.NewReader(bytes.NewReader(body)).ReadLine()
	first := strings.TrimSpace(string(line))
	if rest, ok := strings.CutPrefix(first, "Error - "); ok {
		exc, msg, _ := strings.Cut(rest, ": ")
		switch exc[strings.LastIndex(exc, ".")+1:] {
		case "InstanceNotFoundException":
			return 0, counter.Mark(fmt.Errorf("no MBean %q", mbean), ErrNotFound)
		case "AttributeNotFoundException":
			return 0, counter.Mark(fmt.Errorf("MBean %q has no attribute %q", mbean, attribute), ErrNotFound)
		case "InvalidKeyException":
			return 0, counter.Mark(fmt.Errorf("attribute %q of %q has no item %q", attribute, mbean, key), ErrNotFound)
		case "MalformedObjectNameException":
			return 0, fmt.Errorf("%q is not a valid MBean name: %s", mbean, counter.Short(msg))
		}
		return 0, fmt.Errorf("the servlet answered %q", counter.Short(first))
	}
	prefix := "OK - Attribute get '" + mbean + "' - " + attribute
	if key != "" {
		prefix += " - key '" + key + "'"
	}
	prefix += " = "
	value, ok := strings.CutPrefix(first, prefix)
	if !ok {
		if first == "" {
			first = httpget.OneLine(string(body))
		}
		return 0, fmt.Errorf("unexpected answer %q (is the URL Tomcat's /manager/jmxproxy?)", counter.Short(first))
	}
	if strings.HasPrefix(value, "javax.management.openmbean.CompositeDataSupport(") {
		// The rest of the value may span lines; its items are in contents={…}.
		all := string(body)[strings.Index(string(body), " = ")+3:]
		items := compositeItems(all)
		return 0, counter.Mark(fmt.Errorf("the value is a composite with the items %s, not a number; set path to one of them", strings.Join(items, ", ")), counter.ErrNotANumber)
	}
	v, err := counter.ParseNumber(strings.TrimSpace(value))
	if err != nil {
		return 0, fmt.Errorf("the value: %w", err)
	}
	return v, nil
}

// compositeItems lists the item names in a CompositeDataSupport's toString:
// "…,contents={committed=83886080, init=398458880, max=…, used=…})".
func compositeItems(s string) []string {
	_, contents, ok := strings.Cut(s, "contents={")
	if !ok {
		return []string{"(unknown)"}
	}
	contents, _, _ = strings.Cut(contents, "}")
	var items []string
	for _, kv := range strings.Split(contents, ", ") {
		if k, _, ok := strings.Cut(kv, "="); ok {
			items = append(items, k)
		}
	}
	return items
}

var _ io.Closer = (*Source)(nil)
