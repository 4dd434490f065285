package builtin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync/atomic"
	"syscall"
)

// attempt is the backend a request is being sent to. The handler picks it (and
// counts the request in flight) before proxying and releases it when the
// response is done; the transport moves it to another backend on a retry. Both
// run on the handler's goroutine, so it needs no lock.
type attempt struct {
	be   *backend
	addr string
}

type attemptKey struct{}

func attemptFrom(ctx context.Context) (*attempt, bool) {
	at, ok := ctx.Value(attemptKey{}).(*attempt)
	return at, ok
}

// serve is the proxy's HTTP handler.
func (b *Balancer) serve(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		http.Error(w, "load balancer is shutting down", http.StatusServiceUnavailable)
		return
	}
	b.handlers.Add(1)
	be, addr := b.pickLocked(nil)
	b.mu.Unlock()
	defer b.handlers.Done()

	if be == nil {
		http.Error(w, fmt.Sprintf("no backend in service for cluster %s", b.cluster), http.StatusServiceUnavailable)
		return
	}
	at := &attempt{be: be, addr: addr}
	defer func() { b.release(at.be) }()

	// The request ends when the client goes away or the balancer closes
	// (hijacked, upgraded connections included).
	ctx, cancel := context.WithCancel(context.WithValue(r.Context(), attemptKey{}, at))
	defer cancel()
	stop := context.AfterFunc(b.ctx, cancel)
	defer stop()

	b.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// rewrite points the outgoing request at the picked backend. The Host header
// of the incoming request is kept; X-Forwarded-* are set.
func (b *Balancer) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	if at, ok := attemptFrom(pr.In.Context()); ok {
		pr.Out.URL.Host = at.addr
	}
	pr.SetXForwarded()
}

// proxyError answers a request that no backend answered.
func (b *Balancer) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	node := ""
	if at, ok := attemptFrom(r.Context()); ok {
		node = at.be.id
	}
	if r.Context().Err() != nil {
		// The client went away or the balancer is closing: nobody reads this.
		b.log.Debug("request aborted", "node", node, "method", r.Method, "path", r.URL.Path, "error", err)
		w.WriteHeader(http.StatusBadGateway)
		return
	}
	b.log.Warn("backend request failed", "node", node, "method", r.Method, "path", r.URL.Path, "error", err)
	http.Error(w, fmt.Sprintf("bad gateway: backend of cluster %s failed", b.cluster), http.StatusBadGateway)
}

// retryTransport sends a request to the backend its attempt names and, if the
// connection fails before any response and the request can be sent again,
// once more to the next backend in rotation. It marks responses with
// NodeHeader.
type retryTransport struct {
	b    *Balancer
	base http.RoundTripper
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	at, ok := attemptFrom(req.Context())
	if !ok {
		return nil, errors.New("builtin load balancer: request without a picked backend")
	}

	first := req
	var body *countingBody
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		// Count what the transport reads, to know whether the body can be
		// sent again, and keep the transport's Close of a failed attempt
		// from ending it.
		body = &countingBody{ReadCloser: req.Body}
		first = req.WithContext(req.Context())
		first.Body = body
	}
	res, err := t.base.RoundTrip(first)
	if err == nil {
		return t.done(at, res), nil
	}
	if !canRetry(req, body, err) {
		return nil, err
	}
	next, addr := t.b.pick(at.be)
	if next == nil {
		return nil, err
	}
	failed := at.be
	t.b.release(failed)
	at.be, at.addr = next, addr
	// Debug: without health checks a dead backend fails every turn; the
	// request itself is not lost.
	t.b.log.Debug("retrying request on another backend", "failed_node", failed.id, "node", next.id,
		"method", req.Method, "path", req.URL.Path, "error", err)

	retry := req.Clone(req.Context())
	retry.URL.Host = addr
	switch {
	case req.GetBody != nil:
		rb, gerr := req.GetBody()
		if gerr != nil {
			return nil, fmt.Errorf("retry on node %s after %w: request body: %w", next.id, err, gerr)
		}
		retry.Body = rb
	case body != nil:
		retry.Body = body
	}
	res, rerr := t.base.RoundTrip(retry)
	if rerr != nil {
		return nil, fmt.Errorf("node %s: %w; retry on node %s: %w", failed.id, err, next.id, rerr)
	}
	return t.done(at, res), nil
}

func (t *retryTransport) done(at *attempt, res *http.Response) *http.Response {
	t.b.served(at.be)
	res.Header.Set(NodeHeader, at.be.id)
	return res
}

// canRetry reports whether a request that failed with err can be sent to
// another backend: the failure happened while connecting or before any
// response, the client is still waiting, and the body can be sent again (there
// is none, GetBody makes a new one, or the connection was never made and not a
// byte of it was read).
func canRetry(req *http.Request, body *countingBody, err error) bool {
	if req.Context().Err() != nil {
		return false
	}
	if body != nil {
		return isDialError(err) && body.n.Load() == 0
	}
	return isDialError(err) || isConnError(err)
}

// isDialError reports whether err says the connection could not be made: the
// request never reached the backend.
func isDialError(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// isConnError reports whether err says the connection broke before a response
// came: reset, closed or half written.
func isConnError(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		strings.Contains(err.Error(), "server closed idle connection")
}

// countingBody counts the bytes read from a request body. Its Close does
// nothing: http.Transport closes the body of a failed attempt, which must stay
// readable for the retry; ReverseProxy closes the body it owns when the request
// ends.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// Close leaves the body open; see countingBody.
func (c *countingBody) Close() error { return nil }
