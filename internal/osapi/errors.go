package osapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gophercloud/gophercloud/v2"
)

// APIError is an OpenStack API answer that is not a success, with what
// goscaler needs from it: the HTTP status, the message the service put in
// the body (Nova, Neutron, Octavia, Keystone and Glance each have their own
// format), and how long the service asked the client to wait.
type APIError struct {
	Method string
	// Path is the request path without the service's base URL and query.
	Path       string
	Status     int
	Message    string
	RetryAfter time.Duration
	err        error
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	s := fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, msg)
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %s)", e.RetryAfter)
	}
	return s
}

// Unwrap returns gophercloud's error.
func (e *APIError) Unwrap() error { return e.err }

// AsAPIError returns the API error in err's chain, rebuilt from gophercloud's
// ErrUnexpectedResponseCode if that is what the chain holds.
func AsAPIError(err error) (*APIError, bool) {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae, true
	}
	var code gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &code) {
		return fromResponse(code, err), true
	}
	var pcode *gophercloud.ErrUnexpectedResponseCode
	if errors.As(err, &pcode) && pcode != nil {
		return fromResponse(*pcode, err), true
	}
	return nil, false
}

func fromResponse(code gophercloud.ErrUnexpectedResponseCode, err error) *APIError {
	path := code.URL
	if u, perr := url.Parse(code.URL); perr == nil {
		path = u.Path
	}
	return &APIError{
		Method:     code.Method,
		Path:       path,
		Status:     code.Actual,
		Message:    bodyMessage(code.Body),
		RetryAfter: retryAfter(code.ResponseHeader),
		err:        err,
	}
}

// Status returns the HTTP status of an API error in err's chain, 0 if there
// is none.
func Status(err error) int {
	if ae, ok := AsAPIError(err); ok {
		return ae.Status
	}
	return 0
}

// Message returns the service's message of an API error in err's chain.
func Message(err error) string {
	if ae, ok := AsAPIError(err); ok {
		return ae.Message
	}
	return ""
}

// Clean replaces gophercloud's long error text by an APIError when err is
// an unexpected HTTP answer (possibly after a re-authentication), so that
// messages stay short and readable. Errors that wrap one keep their text.
func Clean(err error) error {
	switch err.(type) { //nolint:errorlint // only the error itself is replaced, not what wraps it
	case gophercloud.ErrUnexpectedResponseCode, *gophercloud.ErrUnexpectedResponseCode,
		gophercloud.ErrErrorAfterReauthentication, *gophercloud.ErrErrorAfterReauthentication:
		if ae, ok := AsAPIError(err); ok {
			return ae
		}
	}
	return err
}

const maxMessage = 300

// bodyMessage extracts the human message of an OpenStack error body:
//
//	Nova:     {"forbidden": {"code": 403, "message": "Quota exceeded …"}}
//	Neutron:  {"NeutronError": {"type": "…", "message": "…", "detail": ""}}
//	Octavia:  {"faultcode": "Client", "faultstring": "…", "debuginfo": null}
//	Keystone: {"error": {"code": 401, "message": "…", "title": "…"}}
//	Glance and proxies: plain text or HTML.
func bodyMessage(body []byte) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) == nil {
		var s string
		if raw, ok := top["faultstring"]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return shorten(s)
		}
		if raw, ok := top["message"]; ok && json.Unmarshal(raw, &s) == nil && s != "" {
			return shorten(s)
		}
		for _, raw := range top {
			var inner struct {
				Message string `json:"message"`
			}
			if json.Unmarshal(raw, &inner) == nil && inner.Message != "" {
				return shorten(inner.Message)
			}
		}
	}
	text := string(body)
	if strings.Contains(text, "<") { // HTML: keep the text of the title or first heading
		for _, tag := range []string{"h1", "title"} {
			if i := strings.Index(text, "<"+tag+">"); i >= 0 {
				rest := text[i+len(tag)+2:]
				if j := strings.Index(rest, "</"); j >= 0 {
					return shorten(rest[:j])
				}
			}
		}
	}
	return shorten(text)
}

func shorten(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > maxMessage {
		s = s[:maxMessage] + "…"
	}
	return s
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// IsTransient reports whether err is worth another try: throttling (429,
// 503), another 5xx, a timeout, or a connection that failed or broke. The
// caller's own cancellation is not transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	if ae, ok := AsAPIError(err); ok {
		switch {
		case ae.Status == http.StatusTooManyRequests, ae.Status == 498: // 498: gophercloud's "token expired" retry code
			return true
		case ae.Status == http.StatusRequestEntityTooLarge && ae.RetryAfter > 0: // old Nova rate limits
			return true
		case ae.Status >= 500 && ae.Status != http.StatusNotImplemented:
			return true
		}
		return false
	}
	var timeout gophercloud.ErrTimeOut
	if errors.As(err, &timeout) {
		return true
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	var ue *url.Error
	return errors.As(err, &ue)
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool {
	if Status(err) == http.StatusNotFound {
		return true
	}
	var nf gophercloud.ErrResourceNotFound
	return errors.As(err, &nf)
}

// IsAuthFailure reports whether err says the credentials were refused.
func IsAuthFailure(err error) bool {
	if Status(err) == http.StatusUnauthorized {
		return true
	}
	var reauth *gophercloud.ErrUnableToReauthenticate
	if errors.As(err, &reauth) {
		return true
	}
	var reauthV gophercloud.ErrUnableToReauthenticate
	return errors.As(err, &reauthV)
}

// IsQuota reports whether err is a quota refusal: Nova answers 403 (413 on
// old releases) "Quota exceeded …", Neutron 409 "Quota exceeded for resources".
func IsQuota(err error) bool {
	ae, ok := AsAPIError(err)
	if !ok {
		return false
	}
	msg := strings.ToLower(ae.Message)
	switch ae.Status {
	case http.StatusForbidden, http.StatusConflict:
		return strings.Contains(msg, "quota") || strings.Contains(msg, "limit exceeded")
	case http.StatusRequestEntityTooLarge:
		return ae.RetryAfter == 0
	}
	return false
}
