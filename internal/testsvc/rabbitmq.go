package testsvc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"
)

// RabbitMQ is the machine's RabbitMQ broker, as tests reach it: AMQP at
// GOSCALER_TEST_RABBITMQ (default amqp://guest:guest@127.0.0.1:5672/) and the
// management API at GOSCALER_TEST_RABBITMQ_API (default
// http://guest:guest@127.0.0.1:15672).
type RabbitMQ struct {
	// AMQP and API are the URLs without credentials.
	AMQP, API *url.URL
	// User and Password are an administrator's.
	User, Password string
}

// StartRabbitMQ returns the broker, after checking that both its AMQP port
// and its management API answer (the test is skipped otherwise, or fails
// with CI set).
func StartRabbitMQ(t testing.TB) *RabbitMQ {
	t.Helper()
	amqpRaw := envOr("GOSCALER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")
	apiRaw := envOr("GOSCALER_TEST_RABBITMQ_API", "http://guest:guest@127.0.0.1:15672")
	au, err := url.Parse(amqpRaw)
	if err != nil {
		t.Fatalf("GOSCALER_TEST_RABBITMQ: not a URL")
	}
	pu, err := url.Parse(apiRaw)
	if err != nil {
		t.Fatalf("GOSCALER_TEST_RABBITMQ_API: not a URL")
	}
	r := &RabbitMQ{User: pu.User.Username()}
	r.Password, _ = pu.User.Password()
	au.User, au.Path, pu.User = nil, "", nil
	r.AMQP, r.API = au, pu
	if c, err := net.DialTimeout("tcp", au.Host, 2*time.Second); err != nil {
		Unavailable(t, "RabbitMQ", fmt.Sprintf("AMQP at %s: %v: apt-get install rabbitmq-server, or set GOSCALER_TEST_RABBITMQ", au.Host, err))
	} else {
		_ = c.Close()
	}
	if err := r.call(http.MethodGet, "/api/overview", nil, nil); err != nil {
		Unavailable(t, "RabbitMQ's management API", fmt.Sprintf("%v: rabbitmq-plugins enable rabbitmq_management, or set GOSCALER_TEST_RABBITMQ_API", err))
	}
	return r
}

// NewVHost creates a virtual host named after the test with a random suffix,
// lets the administrator use it, and deletes it (with its queues) in
// t.Cleanup.
func (r *RabbitMQ) NewVHost(t testing.TB) string {
	t.Helper()
	name := "goscaler-test-" + randomHex(6)
	if err := r.call(http.MethodPut, "/api/vhosts/"+url.PathEscape(name), map[string]any{}, nil); err != nil {
		t.Fatalf("creating vhost %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := r.call(http.MethodDelete, "/api/vhosts/"+url.PathEscape(name), nil, nil); err != nil {
			t.Errorf("deleting vhost %s: %v", name, err)
		}
	})
	perm := map[string]string{"configure": ".*", "write": ".*", "read": ".*"}
	if err := r.call(http.MethodPut, "/api/permissions/"+url.PathEscape(name)+"/"+url.PathEscape(r.User), perm, nil); err != nil {
		t.Fatalf("granting %s on vhost %s: %v", r.User, name, err)
	}
	return name
}

// AMQPURL is the AMQP URL with the administrator's credentials and vhost,
// for the test's own publishing and consuming.
func (r *RabbitMQ) AMQPURL(vhost string) string {
	u := *r.AMQP
	u.User = url.UserPassword(r.User, r.Password)
	u.Path = "/" + vhost
	return u.String()
}

// CloseConnections closes every connection of vhost whose client named
// itself name (connection_name), as an operator or a broker restart would;
// it returns how many it closed.
func (r *RabbitMQ) CloseConnections(t testing.TB, vhost, name string) int {
	t.Helper()
	var conns []struct {
		Name   string `json:"name"`
		VHost  string `json:"vhost"`
		Client struct {
			ConnectionName string `json:"connection_name"`
		} `json:"client_properties"`
	}
	if err := r.call(http.MethodGet, "/api/vhosts/"+url.PathEscape(vhost)+"/connections", nil, &conns); err != nil {
		t.Fatalf("listing connections: %v", err)
	}
	n := 0
	for _, c := range conns {
		if c.Client.ConnectionName != name {
			continue
		}
		if err := r.call(http.MethodDelete, "/api/connections/"+url.PathEscape(c.Name), nil, nil); err != nil {
			t.Fatalf("closing connection %s: %v", c.Name, err)
		}
		n++
	}
	return n
}

// call sends a management API request as the administrator.
func (r *RabbitMQ) call(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	u := *r.API
	u.RawPath = path
	u.Path, _ = url.PathUnescape(path)
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		return err
	}
	req.SetBasicAuth(r.User, r.Password)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
