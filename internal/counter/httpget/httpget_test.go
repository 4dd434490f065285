package httpget

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/secret"
)

func TestGet(t *testing.T) {
	t.Parallel()
	const pw = "Pa55-word-xyz"
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "mon" || p != pw {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(r.Header.Get("Accept") + "|" + r.Header.Get("User-Agent")))
	})
	mux.HandleFunc("/forbidden", func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusForbidden) })
	mux.HandleFunc("/500", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database\n  down", http.StatusInternalServerError)
	})
	mux.HandleFunc("/empty503", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(make([]byte, 2000)) })
	mux.HandleFunc("/slow", func(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	u := func(p string) *url.URL { x, _ := url.Parse(srv.URL + p); return x }

	c := New("mon", secret.New(pw))
	t.Cleanup(func() { _ = c.Close() })
	body, err := c.Get(t.Context(), u("/ok"), "text/plain", 100)
	if err != nil || string(body) != "text/plain|goscaler" {
		t.Fatalf("Get = %q, %v", body, err)
	}
	tests := []struct {
		client  *Client
		path    string
		wantErr string
		auth    bool
	}{
		{New("mon", secret.New("wrong")), "/ok", "HTTP 401 from " + srv.URL + "/ok: authentication failed (check user and password_env or password_file)", true},
		{New("", secret.Secret{}), "/ok", "HTTP 401", true},
		{c, "/forbidden", "HTTP 403 from", true},
		{c, "/500", "HTTP 500 from " + srv.URL + "/500: database down", false},
		{c, "/empty503", "HTTP 503 from " + srv.URL + "/empty503: Service Unavailable", false},
		{c, "/big", "GET " + srv.URL + "/big: response body too large: more than 100 bytes", false},
	}
	for _, tt := range tests {
		_, err := tt.client.Get(t.Context(), u(tt.path), "", 100)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("Get(%s) = %v; want %q", tt.path, err, tt.wantErr)
			continue
		}
		if errors.Is(err, ErrAuth) != tt.auth {
			t.Errorf("Get(%s): errors.Is(ErrAuth) = %t", tt.path, !tt.auth)
		}
		if strings.Contains(err.Error(), pw) {
			t.Errorf("Get(%s) shows the password: %v", tt.path, err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Get(ctx, u("/slow"), "", 100); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "GET "+srv.URL+"/slow: timed out after") {
		t.Errorf("Get(slow) = %v", err)
	}
}

func TestCheckURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, wantErr string }{
		{"http://h:8080/x", ""},
		{"https://h", ""},
		{"ftp://h", `"ftp://h" is not an http or https URL`},
		{"http:///x", `"http:///x" has no host`},
		{"http://u:pw-123@h/", `"http://u:xxxxx@h/" holds credentials`},
		{"http://u@h/", `"http://u@h/" holds credentials`},
		{"http://h:pw-123@%zz", "not a valid URL"},
	}
	for _, tt := range tests {
		_, err := CheckURL(tt.in)
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("CheckURL(%q) = %v", tt.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "pw-123") {
			t.Errorf("CheckURL(%q) = %v; want %q, without the password", tt.in, err, tt.wantErr)
		}
	}
}
