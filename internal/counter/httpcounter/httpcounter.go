// Package httpcounter is the "http" counter source: it requests a URL and
// reads a number from the response, either the whole body or a value inside a
// JSON body picked by a dotted path ("stats.queue.depth", "items.0.value").
//
// Every http counter shares one HTTP transport: the counters of a node reuse
// the same kept-alive connection, and the idle connections kept over the
// whole fleet are bounded (MaxIdleConns), so that memory stays bounded with
// thousands of nodes.
package httpcounter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

const (
	// MaxBody is the largest response body a reading accepts.
	MaxBody = 1 << 20
	// MaxIdleConns bounds the idle connections kept over every node.
	MaxIdleConns = 1024
	// MaxIdleConnsPerHost is how many idle connections to one host are kept:
	// as many as readings of it may run at once (several nodes behind one
	// address, or a cluster-scoped URL read often), up to MaxIdleConns.
	MaxIdleConnsPerHost = 256

	maxErrorBody = 200
)

func init() {
	counter.Registry.Register("http", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "http" counter source.
type Config struct {
	// URL is a template over the target vars, e.g. "http://{{.Address}}/stats".
	URL string `yaml:"url" json:"url"`
	// Path is an optional dotted path into a JSON body ("inflight",
	// "stats.queue.depth", "items.0.value"); a segment is an object key or an
	// array index. Without it the whole body must be a number.
	Path string `yaml:"path" json:"path"`
	// Headers are sent with the request; values are templates.
	Headers map[string]string `yaml:"headers" json:"headers"`
	// Method is GET (the default) or POST (with no body).
	Method string `yaml:"method" json:"method"`
}

// DefaultScope is ScopeNode when the URL uses {{.Address}}, {{.Host}} or
// {{.Port}} (it asks each node), ScopeCluster otherwise.
func (c *Config) DefaultScope() counter.Scope {
	if plugin.UsesNodeVars(c.URL) {
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
	s := &Source{headers: map[string]*plugin.Template{}, pathText: c.Path}
	if strings.TrimSpace(c.URL) == "" {
		errs = append(errs, errors.New(`url: required, such as "http://{{.Address}}/stats"`))
	} else if t, err := plugin.ParseTemplate(c.URL); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	} else {
		s.url = t
		if !strings.Contains(c.URL, "{{") {
			if _, err := checkURL(c.URL); err != nil {
				errs = append(errs, fmt.Errorf("url: %w", err))
			}
		}
	}
	switch m := strings.ToUpper(c.Method); m {
	case "":
		s.method = http.MethodGet
	case http.MethodGet, http.MethodPost:
		s.method = m
	default:
		errs = append(errs, fmt.Errorf("method: %q is not supported, use GET or POST", c.Method))
	}
	if c.Path != "" {
		s.path = strings.Split(c.Path, ".")
		if slices.Contains(s.path, "") {
			errs = append(errs, fmt.Errorf("path: %q has an empty segment; write keys and indexes separated by single dots, such as stats.queue.depth", c.Path))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		if !validHeaderName(k) {
			errs = append(errs, fmt.Errorf("headers: %q is not a valid header name", k))
			continue
		}
		t, err := plugin.ParseTemplate(c.Headers[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("headers.%s: %w", k, err))
			continue
		}
		s.headers[k] = t
	}
	return s, errors.Join(errs...)
}

// validHeaderName reports whether s is an HTTP token (RFC 9110).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 0x7f || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// checkURL parses an absolute http(s) URL.
func checkURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", u.Redacted())
	}
	return u, nil
}

// New builds the source and its HTTP client.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("http counter: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("counter", env.Counter, "cluster", env.Cluster)
	s.client = &http.Client{Transport: sharedTransport}
	return s, nil
}

// sharedTransport serves every http counter.
var sharedTransport = func() *http.Transport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = MaxIdleConns
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	return tr
}()

// Source requests the URL at each reading. It is safe for concurrent use.
type Source struct {
	url      *plugin.Template
	method   string
	path     []string // nil: the whole body
	pathText string
	headers  map[string]*plugin.Template
	client   *http.Client
	log      *slog.Logger
}

var _ counter.Source = (*Source)(nil)

// Read requests the URL and reads the number from the response.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	vars := targetVars(t)
	raw, err := s.url.Render(vars)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	u, err := checkURL(raw)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	desc := s.method + " " + u.Redacted()
	req, err := http.NewRequestWithContext(ctx, s.method, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", desc, err)
	}
	for k, h := range s.headers {
		v, err := h.Render(vars)
		if err != nil {
			return 0, fmt.Errorf("headers.%s: %w", k, err)
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "goscaler")
	}

	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, requestError(ctx, desc, start, err)
	}
	defer func() { _ = resp.Body.Close() }()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		msg := oneLine(string(b))
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return 0, fmt.Errorf("HTTP %d from %s: %s", resp.StatusCode, u.Redacted(), msg)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return 0, requestError(ctx, desc, start, fmt.Errorf("reading the body: %w", err))
	}
	if len(body) > MaxBody {
		return 0, fmt.Errorf("%s: response body larger than %d MiB", desc, MaxBody>>20)
	}
	v, err := s.parse(body)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", desc, err)
	}
	return v, nil
}

// requestError describes a failed request; a done context is wrapped as such.
func requestError(ctx context.Context, desc string, start time.Time, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("%s: timed out after %s: %w", desc, time.Since(start).Round(time.Millisecond), ctxErr)
		}
		return fmt.Errorf("%s: %w", desc, ctxErr)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // it repeats the method and the URL
	}
	return fmt.Errorf("%s: %w", desc, err)
}

// parse reads the number from a 2xx body.
func (s *Source) parse(body []byte) (float64, error) {
	if s.path == nil {
		text := strings.TrimSpace(string(body))
		if text == "" {
			return 0, errors.New("empty body, expected a number")
		}
		v, err := parseNumber(text)
		if err != nil {
			return 0, fmt.Errorf("body %q %w", short(text), err)
		}
		return v, nil
	}

	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var cur any
	if err := dec.Decode(&cur); err != nil {
		return 0, fmt.Errorf("body is not valid JSON (needed for path %q): %w", s.pathText, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("body is not valid JSON (needed for path %q): data after the first value", s.pathText)
	}
	for i, seg := range s.path {
		at := strings.Join(s.path[:i], ".")
		if at == "" {
			at = "the body"
		} else {
			at = strconv.Quote(at)
		}
		switch x := cur.(type) {
		case map[string]any:
			next, ok := x[seg]
			if !ok {
				return 0, fmt.Errorf("path %q not found: %s has no key %q", s.pathText, at, seg)
			}
			cur = next
		case []any:
			idx, err := strconv.Atoi(seg)
			if err != nil || idx < 0 {
				return 0, fmt.Errorf("path %q not found: %s is an array and %q is not an index", s.pathText, at, seg)
			}
			if idx >= len(x) {
				return 0, fmt.Errorf("path %q not found: %s is an array of %d items, no index %d", s.pathText, at, len(x), idx)
			}
			cur = x[idx]
		default:
			return 0, fmt.Errorf("path %q not found: %s is %s, not an object or an array", s.pathText, at, describe(cur))
		}
	}
	switch x := cur.(type) {
	case json.Number:
		v, err := parseNumber(x.String())
		if err != nil {
			return 0, fmt.Errorf("path %q: %s %w", s.pathText, x, err)
		}
		return v, nil
	case string:
		v, err := parseNumber(strings.TrimSpace(x))
		if err != nil {
			return 0, fmt.Errorf("path %q is the string %q, not a number", s.pathText, short(x))
		}
		return v, nil
	default:
		return 0, fmt.Errorf("path %q is %s, not a number", s.pathText, describe(cur))
	}
}

// describe names the JSON type of v.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return fmt.Sprintf("a boolean (%t)", x)
	case json.Number:
		return "a number"
	case string:
		return fmt.Sprintf("the string %q", short(x))
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	default:
		return fmt.Sprintf("a %T", v)
	}
}

// parseNumber parses a finite float64; its error completes "<text> …".
func parseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("is out of range")
	case err != nil:
		return 0, errors.New("is not a number")
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, errors.New("is not a finite number")
	}
	return v, nil
}

// targetVars are the target's vars, completed with its own fields.
func targetVars(t counter.Target) map[string]string {
	vars := make(map[string]string, len(t.Vars)+3)
	maps.Copy(vars, t.Vars)
	for k, v := range map[string]string{"Cluster": t.Cluster, "NodeID": t.NodeID, "Address": t.Address} {
		if _, ok := vars[k]; !ok && v != "" {
			vars[k] = v
		}
	}
	return vars
}

// oneLine squeezes an error body into one short line.
func oneLine(s string) string {
	return short(strings.Join(strings.Fields(s), " "))
}

// short cuts s to about 100 bytes (on a rune boundary), marking the cut.
func short(s string) string {
	const n = 100
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
