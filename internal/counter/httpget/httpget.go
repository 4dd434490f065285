// Package httpget is the HTTP GET that counter sources built on an HTTP API
// share (jmx, prometheus, rabbitmq's management API): basic authentication
// with a password that never shows, a bounded body, and errors that say what
// failed — timed out, refused, authentication failed, HTTP status with the
// start of the body — never as a zero.
package httpget

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/secret"
)

const (
	// MaxIdleConnsPerHost is how many idle connections to one host are kept.
	MaxIdleConnsPerHost = 4
	// maxErrorBody is how much of a non-2xx body is kept in a StatusError.
	maxErrorBody = 4 << 10
)

// ErrAuth is wrapped by the error of a request answered 401 or 403.
var ErrAuth = errors.New("authentication failed")

// ErrTooLarge is wrapped when a body is larger than the caller's limit.
var ErrTooLarge = errors.New("response body too large")

// Client sends GET requests with optional basic authentication. It is safe
// for concurrent use and keeps a few idle connections per host.
type Client struct {
	http     *http.Client
	user     string
	password secret.Secret
}

// New returns a client; with an empty user, no Authorization header is sent.
func New(user string, password secret.Secret) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = MaxIdleConnsPerHost
	return &Client{http: &http.Client{Transport: tr}, user: user, password: password}
}

// Close releases the idle connections.
func (c *Client) Close() error {
	c.http.CloseIdleConnections()
	return nil
}

// StatusError is a response with a status other than 2xx.
type StatusError struct {
	Code int
	// URL is the request's URL without its password.
	URL string
	// Body is the start of the response body.
	Body []byte
}

// Error says the status and the first line of the body.
func (e *StatusError) Error() string {
	msg := OneLine(string(e.Body))
	if e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden {
		return fmt.Sprintf("HTTP %d from %s: %s (check user and password_env or password_file)", e.Code, e.URL, ErrAuth)
	}
	if msg == "" {
		msg = http.StatusText(e.Code)
	}
	return fmt.Sprintf("HTTP %d from %s: %s", e.Code, e.URL, msg)
}

// Unwrap makes a 401 or 403 match ErrAuth.
func (e *StatusError) Unwrap() error {
	if e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden {
		return ErrAuth
	}
	return nil
}

// Get requests u and returns the body of a 2xx answer, at most maxBody
// bytes. accept is the Accept header ("" for none). A non-2xx answer is a
// *StatusError. When ctx is done the request stops and the error wraps ctx's.
func (c *Client) Get(ctx context.Context, u *url.URL, accept string, maxBody int64) ([]byte, error) {
	desc := "GET " + u.Redacted()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", desc, err)
	}
	req.Header.Set("User-Agent", "goscaler")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password.Reveal())
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, RequestError(ctx, desc, start, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return nil, &StatusError{Code: resp.StatusCode, URL: u.Redacted(), Body: b}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, RequestError(ctx, desc, start, fmt.Errorf("reading the body: %w", err))
	}
	if int64(len(body)) > maxBody {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", desc, ErrTooLarge, maxBody)
	}
	return body, nil
}

// RequestError describes a failed request (desc is "GET <url>"); a done
// context is wrapped as such, saying how long the request ran.
func RequestError(ctx context.Context, desc string, start time.Time, err error) error {
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

// OneLine squeezes text (an error body) into one short line.
func OneLine(s string) string {
	return counter.Short(strings.Join(strings.Fields(s), " "))
}

// CheckURL parses an absolute http(s) URL without a password in it: a
// password belongs in password_env or password_file.
func CheckURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse's error quotes the URL, password included.
		return nil, errors.New("not a valid URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q is not an http or https URL", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q has no host", u.Redacted())
	}
	if u.User != nil {
		return nil, fmt.Errorf("%q holds credentials; set user: and password_env: or password_file: instead", u.Redacted())
	}
	return u, nil
}
