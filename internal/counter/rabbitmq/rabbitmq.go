// Package rabbitmq is the "rabbitmq" counter source: the depth of a RabbitMQ
// queue — messages ready for delivery, messages delivered but not yet
// acknowledged, both, or the number of consumers — read over AMQP 0-9-1 or
// over the management plugin's HTTP API.
//
//   - AMQP (url amqp://… or amqps://): a passive queue.declare on a
//     throwaway channel of one connection per counter, re-dialled when it
//     drops. It knows messages_ready and consumers.
//   - Management API (url http://… or https://, port 15672):
//     GET /api/queues/{vhost}/{queue}. It knows all four measures, refreshed
//     by the broker every few seconds (collect_statistics_interval, 5 s by
//     default).
//
// With per_node, the value is divided by the cluster's in-service nodes
// (at least one), for "messages per worker" policies: a cluster with no
// worker yet reads the whole depth, so that a scale-out from zero fires.
//
// A missing queue or vhost, refused credentials, a refused connection or a
// timeout is an error that says so (a missing queue matches
// ErrQueueNotFound, refused credentials httpget.ErrAuth), never a zero.
package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/secret"
)

// Measures: what a reading counts.
const (
	MessagesReady          = "messages_ready"
	MessagesUnacknowledged = "messages_unacknowledged"
	Messages               = "messages"
	Consumers              = "consumers"
)

const (
	// defaultUser and defaultPassword are RabbitMQ's own default account,
	// which it accepts from loopback only.
	defaultUser     = "guest"
	defaultPassword = "guest"
	// dialTimeout bounds a dial when the reading has no deadline.
	dialTimeout = 30 * time.Second
	maxBody     = 1 << 20
)

// ErrQueueNotFound is matched by the error of a reading whose queue (or
// vhost) does not exist.
var ErrQueueNotFound = errors.New("queue not found")

func init() {
	counter.Registry.Register("rabbitmq", func() counter.Config { return &Config{} })
}

// Config is the configuration of the "rabbitmq" counter source.
type Config struct {
	// URL is the broker: amqp://host:5672 (or amqps://) for AMQP, or
	// http://host:15672 (or https://) for the management API. No
	// credentials and no vhost in it.
	URL string `yaml:"url" json:"url"`
	// VHost is the virtual host, "/" by default.
	VHost string `yaml:"vhost" json:"vhost"`
	// Queue is the queue's name, a template over the target vars.
	Queue string `yaml:"queue" json:"queue"`
	// Measure is messages_ready (the default), messages_unacknowledged,
	// messages (both) or consumers; the AMQP protocol knows only
	// messages_ready and consumers.
	Measure string `yaml:"measure" json:"measure"`
	// PerNode divides the value by the cluster's in-service node count.
	PerNode bool `yaml:"per_node" json:"per_node"`
	// User, and its password from the environment variable PasswordEnv or
	// the file PasswordFile. Without them, RabbitMQ's default guest account
	// (accepted from loopback only).
	User         string `yaml:"user" json:"user"`
	PasswordEnv  string `yaml:"password_env" json:"password_env"`
	PasswordFile string `yaml:"password_file" json:"password_file"`
}

// DefaultScope is ScopeCluster: a queue belongs to the cluster, not a node.
func (c *Config) DefaultScope() counter.Scope { return counter.ScopeCluster }

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c *Config) compile() (*Source, error) {
	var errs []error
	s := &Source{vhost: c.VHost, measure: c.Measure, perNode: c.PerNode}
	if s.vhost == "" {
		s.vhost = "/"
	}
	if s.measure == "" {
		s.measure = MessagesReady
	}
	if strings.TrimSpace(c.URL) == "" {
		errs = append(errs, errors.New(`url: required: amqp://host:5672 (AMQP) or http://host:15672 (the management API)`))
	} else if u, err := url.Parse(c.URL); err != nil {
		errs = append(errs, errors.New("url: not a valid URL")) // url.Parse's error would quote a password
	} else {
		s.url = u
		switch u.Scheme {
		case "amqp", "amqps":
			s.amqp = true
		case "http", "https":
		default:
			errs = append(errs, fmt.Errorf("url: %q: use amqp:// or amqps:// (AMQP), or http:// or https:// (the management API)", u.Redacted()))
		}
		if u.Host == "" {
			errs = append(errs, fmt.Errorf("url: %q has no host", u.Redacted()))
		}
		if u.User != nil {
			errs = append(errs, fmt.Errorf("url: %q holds credentials; set user: and password_env: or password_file: instead", u.Redacted()))
		}
		if p := strings.Trim(u.Path, "/"); p != "" && s.amqp {
			errs = append(errs, fmt.Errorf("url: %q has a path; put the vhost in vhost", u.Redacted()))
		}
		if u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, fmt.Errorf("url: %q: no query or fragment here", u.Redacted()))
		}
	}
	if strings.TrimSpace(c.Queue) == "" {
		errs = append(errs, errors.New(`queue: required, the queue's name such as "jobs"`))
	} else if t, err := plugin.ParseTemplate(c.Queue); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	} else {
		s.queue = t
	}
	switch s.measure {
	case MessagesReady, Consumers:
	case MessagesUnacknowledged, Messages:
		if s.amqp {
			errs = append(errs, fmt.Errorf("measure: %s is known to the management API only (url: http://host:15672); over AMQP use messages_ready or consumers", s.measure))
		}
	default:
		errs = append(errs, fmt.Errorf("measure: %q is not one of messages_ready, messages_unacknowledged, messages, consumers", c.Measure))
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
		errs = append(errs, errors.New("user: must not contain a colon"))
	}
	return s, errors.Join(errs...)
}

// New builds the source, reading the password. The AMQP connection is dialled
// by the first reading.
func (c *Config) New(env counter.Env) (counter.Source, error) {
	s, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq counter: %w", err)
	}
	pw, err := secret.Read("password", c.PasswordEnv, c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("rabbitmq counter: %w", err)
	}
	s.user, s.password = c.User, pw
	if s.user == "" {
		s.user, s.password = defaultUser, secret.New(defaultPassword)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s.log = log.With("counter", env.Counter, "cluster", env.Cluster)
	if !s.amqp {
		s.api = httpget.New(s.user, s.password)
	}
	return s, nil
}

// Source reads the queue at each reading. It is safe for concurrent use.
type Source struct {
	url      *url.URL
	amqp     bool
	vhost    string
	queue    *plugin.Template
	measure  string
	perNode  bool
	user     string
	password secret.Secret
	log      *slog.Logger

	api *httpget.Client

	mu     sync.Mutex
	conn   *amqp.Connection
	closed bool
	dials  int
}

var _ counter.Source = (*Source)(nil)

// Close closes the AMQP connection or the API client's idle connections.
func (s *Source) Close() error {
	if s.api != nil {
		return s.api.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn.Close()
	}
	return nil
}

// Dials is how many AMQP connections the source has opened.
func (s *Source) Dials() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dials
}

// Read reads the measure of the queue, divided by the target's InService
// with per_node.
func (s *Source) Read(ctx context.Context, t counter.Target) (float64, error) {
	name, err := s.queue.Render(t.TemplateVars())
	if err != nil {
		return 0, fmt.Errorf("queue: %w", err)
	}
	where := fmt.Sprintf("rabbitmq %s vhost %q queue %q", s.url.Redacted(), s.vhost, name)
	var v float64
	if s.amqp {
		v, err = s.readAMQP(ctx, name)
	} else {
		v, err = s.readAPI(ctx, name)
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", where, err)
	}
	if s.perNode {
		v /= float64(max(1, t.InService))
	}
	return v, nil
}

// ---------------------------------------------------------------------------
// AMQP

// connection returns the open connection, dialling a new one if there is
// none or it was closed.
func (s *Source) connection(ctx context.Context) (*amqp.Connection, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("the counter is closed")
	}
	if s.conn != nil && !s.conn.IsClosed() {
		return s.conn, nil
	}
	// The handshake ends when ctx does: the connection's deadline is moved
	// to the past, which fails amqp091's pending read.
	var stopWatch func() bool
	cfg := amqp.Config{
		Vhost: s.vhost,
		SASL:  []amqp.Authentication{&amqp.PlainAuth{Username: s.user, Password: s.password.Reveal()}},
		Properties: amqp.Table{
			"connection_name": "goscaler counter",
			"product":         "goscaler",
		},
		Dial: func(network, addr string) (net.Conn, error) {
			var d net.Dialer
			conn, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// A bound for a reading without a deadline; amqp091 clears it
			// once the handshake is done.
			if err := conn.SetDeadline(time.Now().Add(dialTimeout)); err != nil {
				_ = conn.Close()
				return nil, err
			}
			stopWatch = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
			return conn, nil
		},
	}
	// The URL holds no credentials: SASL above does.
	start := time.Now()
	conn, err := amqp.DialConfig(s.url.String(), cfg)
	watched := stopWatch == nil || stopWatch()
	if err != nil {
		return nil, dialError(ctx, start, err, s.user)
	}
	if !watched {
		// ctx ended just as the handshake did: the deadline may have hit
		// the new connection.
		_ = conn.Close()
		return nil, dialError(ctx, start, ctx.Err(), s.user)
	}
	s.conn = conn
	s.dials++
	s.log.Debug("rabbitmq connection opened", "url", s.url.Redacted(), "vhost", s.vhost)
	return conn, nil
}

// dialError explains a failed dial.
func dialError(ctx context.Context, start time.Time, err error, user string) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return fmt.Errorf("connecting: timed out after %s: %w", time.Since(start).Round(time.Millisecond), ctxErr)
		}
		return fmt.Errorf("connecting: %w", ctxErr)
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Code == amqp.NotAllowed && strings.Contains(ae.Reason, "not found"):
			// NOT_ALLOWED - vhost x not found
			return counter.Mark(fmt.Errorf("connecting: %s", ae.Reason), ErrQueueNotFound)
		case ae.Code == amqp.AccessRefused || ae.Code == amqp.NotAllowed:
			// ACCESS_REFUSED, or amqp091's ErrCredentials and ErrVhost.
			return counter.Mark(fmt.Errorf("connecting: user %q: %s (check user and password_env or password_file, and the user's permissions on the vhost)", user, ae.Reason), httpget.ErrAuth)
		}
		return fmt.Errorf("connecting: %s (AMQP %d)", ae.Reason, ae.Code)
	}
	return fmt.Errorf("connecting: %w", err)
}

type declareResult struct {
	q   amqp.Queue
	err error
}

func (s *Source) readAMQP(ctx context.Context, name string) (float64, error) {
	conn, err := s.connection(ctx)
	if err != nil {
		return 0, err
	}
	done := make(chan declareResult, 1)
	go func() {
		// A passive declare of a missing queue closes its channel: one
		// channel per reading.
		ch, err := conn.Channel()
		if err != nil {
			done <- declareResult{err: fmt.Errorf("opening a channel: %w", err)}
			return
		}
		q, err := ch.QueueDeclarePassive(name, false, false, false, false, nil)
		_ = ch.Close()
		done <- declareResult{q: q, err: err}
	}()
	start := time.Now()
	var r declareResult
	select {
	case r = <-done:
	case <-ctx.Done():
		// The broker did not answer in time; the next reading dials anew.
		_ = conn.Close()
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("timed out after %s: %w", time.Since(start).Round(time.Millisecond), ctx.Err())
		}
		return 0, ctx.Err()
	}
	if r.err != nil {
		var ae *amqp.Error
		if errors.As(r.err, &ae) {
			switch ae.Code {
			case amqp.NotFound:
				return 0, counter.Mark(fmt.Errorf("no such queue (%s)", ae.Reason), ErrQueueNotFound)
			case amqp.AccessRefused:
				return 0, counter.Mark(fmt.Errorf("access refused (%s)", ae.Reason), httpget.ErrAuth)
			}
			return 0, fmt.Errorf("%s (AMQP %d)", ae.Reason, ae.Code)
		}
		return 0, r.err
	}
	if s.measure == Consumers {
		return float64(r.q.Consumers), nil
	}
	return float64(r.q.Messages), nil
}

// ---------------------------------------------------------------------------
// Management API

// QueueURL is the management API's URL of a queue.
func QueueURL(base *url.URL, vhost, queue string) *url.URL {
	u := *base
	u.RawPath = strings.TrimSuffix(base.EscapedPath(), "/") + "/api/queues/" + url.PathEscape(vhost) + "/" + url.PathEscape(queue)
	u.Path, _ = url.PathUnescape(u.RawPath)
	return &u
}

func (s *Source) readAPI(ctx context.Context, name string) (float64, error) {
	u := QueueURL(s.url, s.vhost, name)
	body, err := s.api.Get(ctx, u, "application/json", maxBody)
	if err != nil {
		var se *httpget.StatusError
		if errors.As(err, &se) && se.Code == 404 {
			return 0, counter.Mark(fmt.Errorf("no such queue or vhost (HTTP 404 from %s)", u.Redacted()), ErrQueueNotFound)
		}
		return 0, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return 0, fmt.Errorf("GET %s: the answer is not a queue's JSON: %q", u.Redacted(), counter.Short(httpget.OneLine(string(body))))
	}
	raw, ok := fields[s.measure]
	if !ok {
		return 0, fmt.Errorf("GET %s: the queue has no %s yet (the management plugin reports queue statistics every few seconds)", u.Redacted(), s.measure)
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil || math.IsNaN(v) {
		return 0, counter.Mark(fmt.Errorf("GET %s: %s is %s, not a number", u.Redacted(), s.measure, counter.Short(string(raw))), counter.ErrNotANumber)
	}
	return v, nil
}
