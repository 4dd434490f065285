// Package prometheus is the "prometheus" counter source, in two forms:
//
//   - query: a PromQL instant query against a Prometheus server (its HTTP
//     API, GET /api/v1/query, decoded into prometheus/common/model values),
//     usually for the whole cluster. It must
//     return one number: a scalar or a vector of exactly one series. No
//     series, several series, NaN, a string, a range vector or an error
//     answer is a counter error with its reason, never a zero.
//   - metric: one series (a metric name and labels) read from a node's
//     /metrics page in Prometheus's text exposition format, usually from each
//     node. A name that is not there, labels that match no series or several,
//     or a page that does not parse is an error.
//
// Each counter keeps one HTTP client with a few idle connections per host.
package prometheus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/secret"
)

const (
	// MaxBody is the largest /metrics page or query answer a reading accepts.
	MaxBody = 16 << 20
	// accept asks for the text exposition format (not protobuf, not
	// OpenMetrics).
	accept = "text/plain;version=0.0.4;q=1,*/*;q=0.1"
	// maxListed is how many series an error about several series lists.
	maxListed = 3
)

// Errors matched by errors.Is.
var (
	// ErrNoSeries: the query or the labels matched no series.
	ErrNoSeries = errors.New("no series")
	// ErrManySeries: the query or the labels matched more than one series.
	ErrManySeries = errors.New("more than one series")
)

func init() {
	counter.Registry.Register("prometheus", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "prometheus" counter source: either
// Server and Query, or URL, Metric and Labels.
type Config struct {
	// Server is the Prometheus server's base URL ("http://prometheus:9090").
	Server string `yaml:"server" json:"server"`
	// Query is a PromQL expression, a template over the target vars
	// (`sum(rate(http_requests_total{job="{{.Cluster}}"}[1m]))`).
	Query string `yaml:"query" json:"query"`

	// URL is the page in text exposition format, a template
	// ("http://{{.Address}}/metrics").
	URL string `yaml:"url" json:"url"`
	// Metric is the series' name. A histogram's or summary's NAME_count and
	// NAME_sum are read too, and NAME_bucket with an le label, or a summary
	// NAME with a quantile label.
	Metric string `yaml:"metric" json:"metric"`
	// Labels pick the series: each must be equal (an empty value: absent).
	// Values are templates.
	Labels map[string]string `yaml:"labels" json:"labels"`

	// User is the HTTP basic-auth user of the server or page; its password
	// comes from the environment variable PasswordEnv or the file
	// PasswordFile.
	User         string `yaml:"user" json:"user"`
	PasswordEnv  string `yaml:"password_env" json:"password_env"`
	PasswordFile string `yaml:"password_file" json:"password_file"`
}

// DefaultScope is ScopeNode when the URL, the labels or the query use
// {{.Address}}, {{.Host}} or {{.Port}}: a /metrics page is usually read
// from each node, a query once for the cluster.
func (c *Config) DefaultScope() counter.Scope {
	if plugin.UsesNodeVars(c.URL) || plugin.UsesNodeVars(c.Query) {
		return counter.ScopeNode
	}
	for _, v := range c.Labels {
		if plugin.UsesNodeVars(v) {
			return counter.ScopeNode
		}
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
	s := &Source{metric: c.Metric, labels: map[string]*plugin.Template{}}
	query, metric := strings.TrimSpace(c.Query) != "", strings.TrimSpace(c.Metric) != ""
	switch {
	case query && metric:
		errs = append(errs, errors.New("query: set either query (with server) or metric (with url), not both"))
	case !query && !metric:
		errs = append(errs, errors.New("query: set query (a PromQL expression, with server:) or metric (a series of a /metrics page, with url:)"))
	case query:
		if c.URL != "" {
			errs = append(errs, errors.New("url: not used with query; put the Prometheus server in server"))
		}
		if len(c.Labels) > 0 {
			errs = append(errs, errors.New("labels: not used with query; write the label matchers in the query"))
		}
		if strings.TrimSpace(c.Server) == "" {
			errs = append(errs, errors.New(`server: required with query, the Prometheus server's URL such as "http://127.0.0.1:9090"`))
		} else if u, err := httpget.CheckURL(c.Server); err != nil {
			errs = append(errs, fmt.Errorf("server: %w", err))
		} else {
			s.server = u
		}
		if t, err := plugin.ParseTemplate(c.Query); err != nil {
			errs = append(errs, fmt.Errorf("query: %w", err))
		} else {
			s.query = t
		}
	default:
		if c.Server != "" {
			errs = append(errs, errors.New("server: not used with metric; put the page in url"))
		}
		if !model.UTF8Validation.IsValidMetricName(c.Metric) {
			errs = append(errs, fmt.Errorf("metric: %q is not a metric name", c.Metric))
		}
		if strings.TrimSpace(c.URL) == "" {
			errs = append(errs, errors.New(`url: required with metric, such as "http://{{.Address}}/metrics"`))
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
		for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
			if !model.UTF8Validation.IsValidLabelName(k) || k == model.MetricNameLabel {
				errs = append(errs, fmt.Errorf("labels: %q is not a label name", k))
				continue
			}
			t, err := plugin.ParseTemplate(c.Labels[k])
			if err != nil {
				errs = append(errs, fmt.Errorf("labels.%s: %w", k, err))
				continue
			}
			s.labels[k] = t
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

// New builds the source and its HTTP client, reading the password.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("prometheus counter: %w", err)
	}
	pw, err := secret.Read("password", c.PasswordEnv, c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("prometheus counter: %w", err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("counter", env.Counter, "cluster", env.Cluster)
	s.client = httpget.New(c.User, pw)
	return s, nil
}

// Source reads the query or the page at each reading. It is safe for
// concurrent use.
type Source struct {
	// query form
	server *url.URL
	query  *plugin.Template
	// metric form
	url    *plugin.Template
	metric string
	labels map[string]*plugin.Template

	client *httpget.Client
	log    *slog.Logger
}

var _ counter.Source = (*Source)(nil)

// Close releases the idle connections.
func (s *Source) Close() error { return s.client.Close() }

// Read runs the query or reads the series.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	vars := t.TemplateVars()
	if s.query != nil {
		q, err := s.query.Render(vars)
		if err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		return s.readQuery(ctx, q)
	}
	raw, err := s.url.Render(vars)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	u, err := httpget.CheckURL(raw)
	if err != nil {
		return 0, fmt.Errorf("url: %w", err)
	}
	want := make(map[string]string, len(s.labels))
	for k, tpl := range s.labels {
		if want[k], err = tpl.Render(vars); err != nil {
			return 0, fmt.Errorf("labels.%s: %w", k, err)
		}
	}
	return s.readPage(ctx, u, want)
}

// ---------------------------------------------------------------------------
// PromQL

// QueryURL is the GET URL of an instant query at the server's current time;
// timeout (if positive) tells the server when to give up.
func QueryURL(server *url.URL, query string, timeout time.Duration) *url.URL {
	u := server.JoinPath("api", "v1", "query")
	q := url.Values{"query": {query}}
	if ms := timeout.Milliseconds(); ms > 0 {
		q.Set("timeout", strconv.FormatInt(ms, 10)+"ms")
	}
	u.RawQuery = q.Encode()
	return u
}

// apiResponse is the envelope of every answer of Prometheus's HTTP API.
type apiResponse struct {
	Status    string   `json:"status"`
	ErrorType string   `json:"errorType"`
	Error     string   `json:"error"`
	Warnings  []string `json:"warnings"`
	Data      *struct {
		ResultType model.ValueType `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

func (s *Source) readQuery(ctx context.Context, q string) (float64, error) {
	what := fmt.Sprintf("query %q on %s", counter.Short(q), s.server.Redacted())
	var timeout time.Duration
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	body, err := s.client.Get(ctx, QueryURL(s.server, q, timeout), "application/json", MaxBody)
	if err != nil {
		// An error answer (400 bad_data, 422 execution, 503 timeout) says
		// why in its JSON.
		var se *httpget.StatusError
		var r apiResponse
		if errors.As(err, &se) && !errors.Is(err, httpget.ErrAuth) && json.Unmarshal(se.Body, &r) == nil && r.Status == "error" {
			return 0, fmt.Errorf("%s: %s: %s", what, r.ErrorType, counter.Short(httpget.OneLine(r.Error)))
		}
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("%s: the answer is not Prometheus's JSON: %q", what, counter.Short(httpget.OneLine(string(body))))
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%s: %s: %s", what, r.ErrorType, counter.Short(httpget.OneLine(r.Error)))
	}
	if len(r.Warnings) > 0 {
		s.log.Debug("prometheus query warnings", "query", q, "warnings", r.Warnings)
	}
	if r.Data == nil {
		return 0, fmt.Errorf("%s: the answer has no data", what)
	}
	val, err := decodeResult(r.Data.ResultType, r.Data.Result)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	v, err := QueryValue(val)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// decodeResult decodes a query's result by its type.
func decodeResult(typ model.ValueType, raw json.RawMessage) (model.Value, error) {
	var v model.Value
	var err error
	switch typ {
	case model.ValScalar:
		var x model.Scalar
		err, v = json.Unmarshal(raw, &x), &x
	case model.ValVector:
		var x model.Vector
		err, v = json.Unmarshal(raw, &x), x
	case model.ValMatrix:
		var x model.Matrix
		err, v = json.Unmarshal(raw, &x), x
	case model.ValString:
		var x model.String
		err, v = json.Unmarshal(raw, &x), &x
	default:
		return nil, fmt.Errorf("the result has the unknown type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("decoding the %s result: %w", typ, err)
	}
	return v, nil
}

// QueryValue is the one number an instant query's result holds: a scalar, or
// a vector of exactly one series with a finite value.
func QueryValue(val model.Value) (float64, error) {
	var v model.SampleValue
	switch x := val.(type) {
	case *model.Scalar:
		v = x.Value
	case model.Vector:
		switch len(x) {
		case 0:
			return 0, counter.Mark(errors.New("the result has no series (the series may not exist, or not have been scraped in the last 5 minutes)"), ErrNoSeries)
		case 1:
			if x[0].Histogram != nil {
				return 0, fmt.Errorf("the result is a native histogram (%s), not a number; use histogram_count(), histogram_sum() or histogram_quantile()", x[0].Metric)
			}
			v = x[0].Value
		default:
			var names []string
			for _, smp := range x[:min(len(x), maxListed)] {
				names = append(names, smp.Metric.String())
			}
			if len(x) > maxListed {
				names = append(names, "…")
			}
			return 0, counter.Mark(fmt.Errorf("the result has %d series: %s; aggregate them in the query (sum, max, avg …) or select one with labels",
				len(x), strings.Join(names, ", ")), ErrManySeries)
		}
	case model.Matrix:
		return 0, fmt.Errorf("the result is a range vector (%d series), not a number; use an instant vector (drop the [range] or wrap it in rate(), avg_over_time() …)", len(x))
	case *model.String:
		return 0, counter.Mark(fmt.Errorf("the result is the string %q, not a number", counter.Short(x.Value)), counter.ErrNotANumber)
	case nil:
		return 0, errors.New("the answer has no result")
	default:
		return 0, fmt.Errorf("the result is a %s, not a number", val.Type())
	}
	f := float64(v)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, counter.Mark(fmt.Errorf("the result is %v, not a finite number (a division by zero, or no data in the range?)", f), counter.ErrNotANumber)
	}
	return f, nil
}

// ---------------------------------------------------------------------------
// /metrics pages

func (s *Source) readPage(ctx context.Context, u *url.URL, want map[string]string) (float64, error) {
	sel := selector(s.metric, want)
	body, err := s.client.Get(ctx, u, accept, MaxBody)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", sel, err)
	}
	v, err := PageValue(body, s.metric, want)
	if err != nil {
		return 0, fmt.Errorf("%s from %s: %w", sel, u.Redacted(), err)
	}
	return v, nil
}

// selector writes name{k="v",…} with sorted labels.
func selector(name string, labels map[string]string) string {
	if len(labels) == 0 {
		return name
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+strconv.Quote(labels[k]))
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// PageValue finds the one series named name whose labels match want in a
// page of text exposition format, and returns its value. want's quantile
// label picks a summary's quantile and its le label a histogram's bucket
// (NAME_bucket); NAME_count and NAME_sum are a histogram's or summary's
// count and sum.
func PageValue(page []byte, name string, want map[string]string) (float64, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(bytes.NewReader(page))
	if err != nil {
		return 0, fmt.Errorf("the page is not in Prometheus's text format: %w", err)
	}
	fam, part := families[name], ""
	if fam == nil {
		for _, suffix := range []string{"_count", "_sum", "_bucket"} {
			base, ok := strings.CutSuffix(name, suffix)
			if f := families[base]; ok && f != nil && isAggregate(f.GetType()) {
				fam, part = f, suffix
				break
			}
		}
	}
	if fam == nil {
		return 0, counter.Mark(fmt.Errorf("the page has no metric %q", name), ErrNoSeries)
	}
	typ := fam.GetType()
	// The labels that pick a part of a summary or histogram are not series labels.
	pick := map[string]string{}
	match := maps.Clone(want)
	switch {
	case typ == dto.MetricType_SUMMARY && part == "":
		pick["quantile"] = want["quantile"]
		delete(match, "quantile")
		if _, ok := want["quantile"]; !ok {
			return 0, fmt.Errorf("%q is a summary: add a quantile label (such as quantile: \"0.99\"), or read %s_count or %s_sum", name, name, name)
		}
	case isAggregate(typ) && part == "_bucket":
		if typ != dto.MetricType_HISTOGRAM && typ != dto.MetricType_GAUGE_HISTOGRAM {
			return 0, fmt.Errorf("%q is a %s, it has no buckets", strings.TrimSuffix(name, "_bucket"), strings.ToLower(typ.String()))
		}
		pick["le"] = want["le"]
		delete(match, "le")
		if _, ok := want["le"]; !ok {
			return 0, fmt.Errorf("%s needs an le label to pick a bucket (such as le: \"0.5\")", name)
		}
	case isAggregate(typ) && part == "":
		return 0, fmt.Errorf("%q is a %s: read %s_count, %s_sum or %s_bucket with an le label", name, strings.ToLower(typ.String()), name, name, name)
	}

	var found []*dto.Metric
	for _, m := range fam.GetMetric() {
		if labelsMatch(m, match) {
			found = append(found, m)
		}
	}
	switch len(found) {
	case 0:
		var some []string
		for _, m := range fam.GetMetric()[:min(len(fam.GetMetric()), maxListed)] {
			some = append(some, labelString(m))
		}
		return 0, counter.Mark(fmt.Errorf("no series of %q has the labels %s; it has %d, such as %s",
			fam.GetName(), labelString2(match), len(fam.GetMetric()), strings.Join(some, ", ")), ErrNoSeries)
	case 1:
	default:
		var some []string
		for _, m := range found[:min(len(found), maxListed)] {
			some = append(some, labelString(m))
		}
		if len(found) > maxListed {
			some = append(some, "…")
		}
		return 0, counter.Mark(fmt.Errorf("%d series of %q have the labels %s: %s; add labels to pick one",
			len(found), fam.GetName(), labelString2(match), strings.Join(some, ", ")), ErrManySeries)
	}
	v, err := metricValue(found[0], typ, part, pick)
	if err != nil {
		return 0, err
	}
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, counter.Mark(fmt.Errorf("the value is %v, not a finite number", v), counter.ErrNotANumber)
	}
	return v, nil
}

func isAggregate(t dto.MetricType) bool {
	return t == dto.MetricType_SUMMARY || t == dto.MetricType_HISTOGRAM || t == dto.MetricType_GAUGE_HISTOGRAM
}

// metricValue reads the value (or the part of a summary or histogram).
func metricValue(m *dto.Metric, typ dto.MetricType, part string, pick map[string]string) (float64, error) {
	switch typ {
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), nil
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), nil
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), nil
	case dto.MetricType_SUMMARY:
		sum := m.GetSummary()
		switch part {
		case "_count":
			return float64(sum.GetSampleCount()), nil
		case "_sum":
			return sum.GetSampleSum(), nil
		}
		q, err := strconv.ParseFloat(pick["quantile"], 64)
		if err != nil {
			return 0, fmt.Errorf("quantile label %q is not a number", pick["quantile"])
		}
		var have []string
		for _, qq := range sum.GetQuantile() {
			if qq.GetQuantile() == q {
				return qq.GetValue(), nil
			}
			have = append(have, strconv.FormatFloat(qq.GetQuantile(), 'g', -1, 64))
		}
		return 0, counter.Mark(fmt.Errorf("the summary has no quantile %s (it has %s)", pick["quantile"], strings.Join(have, ", ")), ErrNoSeries)
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		h := m.GetHistogram()
		switch part {
		case "_count":
			return float64(h.GetSampleCount()), nil
		case "_sum":
			return h.GetSampleSum(), nil
		}
		le, err := strconv.ParseFloat(pick["le"], 64)
		if err != nil {
			return 0, fmt.Errorf("le label %q is not a number", pick["le"])
		}
		if math.IsInf(le, 1) {
			return float64(h.GetSampleCount()), nil
		}
		var have []string
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == le {
				return float64(b.GetCumulativeCount()), nil
			}
			have = append(have, strconv.FormatFloat(b.GetUpperBound(), 'g', -1, 64))
		}
		return 0, counter.Mark(fmt.Errorf("the histogram has no bucket le=%s (it has %s)", pick["le"], strings.Join(have, ", ")), ErrNoSeries)
	}
	return 0, fmt.Errorf("metrics of type %s are not supported", typ)
}

// labelsMatch reports whether every wanted label has its value (an empty
// value: the label is absent).
func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, lp := range m.GetLabel() {
		have[lp.GetName()] = lp.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func labelString(m *dto.Metric) string {
	l := map[string]string{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return labelString2(l)
}

func labelString2(l map[string]string) string {
	s := selector("", l)
	if s == "" {
		return "{}"
	}
	return s
}
