// Package webhook holds the webhook action: an HTTP POST of the firing's
// event as JSON, signed with an HMAC of the body, retried with backoff on
// server errors and network failures; format: slack sends {"text": "…"}
// for Slack-compatible incoming webhooks.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/template"
	"time"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/notify"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/secret"
)

func init() {
	action.Registry.Register("webhook", func() action.Config { return &Config{} })
}

// Formats.
const (
	FormatJSON  = "json"
	FormatSlack = "slack"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Goscaler-Signature"

// Defaults and bounds.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultRetries  = 3
	MaxRetries      = 10
	DefaultBackoff  = time.Second
	maxBackoff      = 30 * time.Second
	maxResponseKept = 512
)

// Config configures webhook.
type Config struct {
	// URL is where to POST; URLEnv or URLFile read it from the environment
	// or a file instead, for URLs that are secrets themselves (Slack's).
	URL     string `yaml:"url" json:"url,omitempty"`
	URLEnv  string `yaml:"url_env" json:"url_env,omitempty"`
	URLFile string `yaml:"url_file" json:"url_file,omitempty"`
	// Format is json (the event, default) or slack ({"text": Text}).
	Format string `yaml:"format" json:"format,omitempty"`
	// Text is the template of the slack text (default: a summary).
	Text string `yaml:"text" json:"text,omitempty"`
	// SecretEnv or SecretFile hold the HMAC key of X-Goscaler-Signature;
	// without one, the request is not signed.
	SecretEnv  string `yaml:"secret_env" json:"secret_env,omitempty"`
	SecretFile string `yaml:"secret_file" json:"secret_file,omitempty"`
	// Headers are added to the request (not for secrets: they are stored
	// with the activity).
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Timeout bounds each attempt; Retries is how many times a failed
	// attempt (5xx, 429, network) is tried again, after Backoff, then twice
	// that, … (at most 30s).
	Timeout plugin.Duration `yaml:"timeout" json:"timeout,omitempty"`
	Retries *int            `yaml:"retries" json:"retries,omitempty"`
	Backoff plugin.Duration `yaml:"backoff" json:"backoff,omitempty"`
}

// Validate checks every key and fills the defaults.
func (c *Config) Validate() error {
	var errs []error
	set := 0
	for _, s := range []string{c.URL, c.URLEnv, c.URLFile} {
		if s != "" {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, errors.New("url: set exactly one of url, url_env and url_file"))
	}
	if c.URL != "" {
		if err := checkURL(c.URL); err != nil {
			errs = append(errs, fmt.Errorf("url: %w", err))
		}
	}
	if c.URLEnv != "" || c.URLFile != "" {
		if err := secret.Validate("url", c.URLEnv, c.URLFile); err != nil {
			errs = append(errs, err)
		}
	}
	if err := secret.Validate("secret", c.SecretEnv, c.SecretFile); err != nil {
		errs = append(errs, err)
	}
	switch c.Format {
	case "":
		c.Format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		errs = append(errs, fmt.Errorf("format: %q is not json or slack", c.Format))
	}
	if c.Text != "" && c.Format != FormatSlack {
		errs = append(errs, errors.New("text: only applies with format: slack"))
	}
	// No default is filled in for text: the config is validated again when
	// its step runs, and a filled-in text would then look set by hand.
	if _, err := notify.Parse("text", c.textOrDefault()); err != nil {
		errs = append(errs, err)
	}
	for k := range c.Headers {
		if strings.EqualFold(k, SignatureHeader) || strings.EqualFold(k, "Content-Type") || strings.ContainsAny(k, " :\r\n") {
			errs = append(errs, fmt.Errorf("headers: %q cannot be set", k))
		}
	}
	if c.Timeout < 0 || c.Backoff < 0 {
		errs = append(errs, errors.New("timeout, backoff: must not be negative"))
	}
	if c.Timeout == 0 {
		c.Timeout = plugin.Duration(DefaultTimeout)
	}
	if c.Backoff == 0 {
		c.Backoff = plugin.Duration(DefaultBackoff)
	}
	if c.Retries == nil {
		n := DefaultRetries
		c.Retries = &n
	} else if *c.Retries < 0 || *c.Retries > MaxRetries {
		errs = append(errs, fmt.Errorf("retries: %d is not within 0..%d", *c.Retries, MaxRetries))
	}
	return errors.Join(errs...)
}

func (c *Config) textOrDefault() string {
	if c.Text == "" {
		return notify.Summary
	}
	return c.Text
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // the parse error would repeat the URL
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return errors.New("not an http:// or https:// URL")
	}
	return nil
}

// New reads the secrets and builds the action.
func (c *Config) New(action.Env) (action.Action, error) {
	key, err := secret.Read("secret", c.SecretEnv, c.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	target := secret.New(c.URL)
	if c.URL == "" {
		if target, err = secret.Read("url", c.URLEnv, c.URLFile); err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		if err := checkURL(strings.TrimSpace(target.Reveal())); err != nil {
			return nil, fmt.Errorf("webhook: the URL from %s: %w", c.URLEnv+c.URLFile, err)
		}
		target = secret.New(strings.TrimSpace(target.Reveal()))
	}
	text, err := notify.Parse("text", c.textOrDefault())
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(target.Reveal())
	return &hook{c: *c, key: key, url: target, where: u.Scheme + "://" + u.Host, text: text,
		client: &http.Client{Timeout: c.Timeout.D()}, sleep: sleepCtx}, nil
}

type hook struct {
	c   Config
	key secret.Secret
	url secret.Secret
	// where is the URL's scheme and host: what messages show of it.
	where  string
	text   *template.Template
	client *http.Client
	sleep  func(context.Context, time.Duration) error
}

func (h *hook) Run(ctx context.Context, r action.Run) (string, error) {
	ev := notify.NewEvent(r, time.Now())
	var body []byte
	var err error
	if h.c.Format == FormatSlack {
		text, rerr := notify.Render(h.text, notify.Data(r, ev))
		if rerr != nil {
			return "", fmt.Errorf("text: %w", rerr)
		}
		body, err = json.Marshal(map[string]string{"text": text})
	} else {
		body, err = json.Marshal(ev)
	}
	if err != nil {
		return "", fmt.Errorf("%w: encoding the event: %w", action.ErrPermanent, err)
	}
	var log strings.Builder
	wait := h.c.Backoff.D()
	attempts := *h.c.Retries + 1
	for attempt := 1; ; attempt++ {
		status, resp, err := h.post(ctx, body)
		switch {
		case err == nil && status < 300:
			fmt.Fprintf(&log, "attempt %d: HTTP %d\n", attempt, status)
			return fmt.Sprintf("POST %s (%s, %d bytes): HTTP %d after %d attempt(s)\n%s", h.where, h.c.Format, len(body), status, attempt, log.String()), nil
		case err == nil && status != http.StatusTooManyRequests && status < 500:
			fmt.Fprintf(&log, "attempt %d: HTTP %d: %s\n", attempt, status, resp)
			return log.String(), fmt.Errorf("%w: POST %s: HTTP %d: %s (a client error: not retried)", action.ErrPermanent, h.where, status, resp)
		case err != nil:
			fmt.Fprintf(&log, "attempt %d: %v\n", attempt, err)
		default:
			fmt.Fprintf(&log, "attempt %d: HTTP %d: %s\n", attempt, status, resp)
		}
		if attempt >= attempts || ctx.Err() != nil {
			return log.String(), fmt.Errorf("%w: POST %s failed %d time(s); last: %s", action.ErrPermanent, h.where, attempt,
				strings.TrimSpace(lastLine(log.String())))
		}
		if err := h.sleep(ctx, wait); err != nil {
			return log.String(), err
		}
		wait = min(wait*2, maxBackoff)
	}
}

// post sends body once; a transport error never shows the URL (it may
// hold a token).
func (h *hook) post(ctx context.Context, body []byte) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url.Reveal(), bytes.NewReader(body))
	if err != nil {
		return 0, "", errors.New("building the request failed")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "goscaler-webhook")
	for k, v := range h.c.Headers {
		req.Header.Set(k, v)
	}
	if !h.key.IsZero() {
		req.Header.Set(SignatureHeader, Sign(h.key.Reveal(), body))
	}
	resp, err := h.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, "", fmt.Errorf("%s", h.scrub(err.Error()))
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseKept))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(h.scrub(string(b))), nil
}

func (h *hook) scrub(s string) string {
	for _, v := range []string{h.url.Reveal(), h.key.Reveal()} {
		if v != "" {
			s = strings.ReplaceAll(s, v, secret.Redacted)
		}
	}
	return s
}

// Sign returns the X-Goscaler-Signature of body: "sha256=" and the hex
// HMAC-SHA256 of body under key. A receiver recomputes it and compares
// with hmac.Equal.
func Sign(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
