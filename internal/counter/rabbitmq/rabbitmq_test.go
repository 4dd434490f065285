package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/testsvc"
)

func newSource(t *testing.T, cfg *Config) *Source {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s, err := cfg.New(counter.Env{Cluster: "work", Counter: "depth"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.(*Source).Close() })
	return s.(*Source)
}

func passwordFile(t *testing.T, pw string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// broker is a test's private vhost with an admin connection to fill queues.
type broker struct {
	*testsvc.RabbitMQ
	vhost  string
	conn   *amqp.Connection
	ch     *amqp.Channel
	pwFile string
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	r := testsvc.StartRabbitMQ(t)
	b := &broker{RabbitMQ: r, vhost: r.NewVHost(t), pwFile: passwordFile(t, r.Password)}
	var err error
	if b.conn, err = amqp.Dial(r.AMQPURL(b.vhost)); err != nil {
		t.Fatalf("dialling RabbitMQ: %v", err)
	}
	t.Cleanup(func() { _ = b.conn.Close() })
	if b.ch, err = b.conn.Channel(); err != nil {
		t.Fatal(err)
	}
	return b
}

// queue declares a queue and publishes n messages to it.
func (b *broker) queue(t *testing.T, name string, n int) {
	t.Helper()
	if _, err := b.ch.QueueDeclare(name, false, false, false, false, nil); err != nil {
		t.Fatalf("declaring %s: %v", name, err)
	}
	if err := b.ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		dc, err := b.ch.PublishWithDeferredConfirmWithContext(t.Context(), "", name, false, false,
			amqp.Publishing{Body: []byte(fmt.Sprintf("job %d", i))})
		if err != nil {
			t.Fatalf("publishing: %v", err)
		}
		if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
			t.Fatalf("publish not confirmed: %v", err)
		}
	}
}

// consumeWithoutAck starts a consumer that receives n messages and holds
// them unacknowledged until the test ends.
func (b *broker) consumeWithoutAck(t *testing.T, name string, n int) {
	t.Helper()
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Qos(n, 0, false); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		select {
		case <-deliveries:
		case <-time.After(20 * time.Second):
			t.Fatal("no delivery in 20 s")
		}
	}
}

func (b *broker) config(amqpProto bool, queue, measure string) Config {
	u := b.API.String()
	if amqpProto {
		u = b.AMQP.String()
	}
	return Config{URL: u, VHost: b.vhost, Queue: queue, Measure: measure, User: b.User, PasswordFile: b.pwFile}
}

// eventually polls read until it returns want: the management API's
// statistics lag behind the queue by a few seconds.
func eventually(t *testing.T, what string, want float64, read func() (float64, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := read()
		if err == nil && v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: last read %v, %v; want %v", what, v, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQueueDepth publishes messages, holds some unacknowledged by a consumer
// and reads every measure over AMQP and over the management API, with and
// without per_node.
func TestQueueDepth(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	const published, held = 25, 10
	b.queue(t, "work-jobs", published)
	cluster := counter.Target{Cluster: "work", Vars: map[string]string{"Cluster": "work"}}

	t.Run("amqp", func(t *testing.T) {
		src := newSource(t, ptr(b.config(true, "{{.Cluster}}-jobs", "")))
		if v, err := src.Read(t.Context(), cluster); err != nil || v != published {
			t.Fatalf("messages_ready = %v, %v; want %d", v, err, published)
		}
	})
	t.Run("api", func(t *testing.T) {
		src := newSource(t, ptr(b.config(false, "{{.Cluster}}-jobs", "")))
		eventually(t, "messages_ready", published, func() (float64, error) { return src.Read(t.Context(), cluster) })
	})

	b.consumeWithoutAck(t, "work-jobs", held)
	tests := []struct {
		amqp      bool
		measure   string
		inService int
		perNode   bool
		want      float64
	}{
		{amqp: true, measure: MessagesReady, want: published - held},
		{amqp: true, measure: Consumers, want: 1},
		{amqp: true, measure: MessagesReady, perNode: true, inService: 5, want: (published - held) / 5.0},
		{amqp: true, measure: MessagesReady, perNode: true, inService: 0, want: published - held},
		{measure: MessagesReady, want: published - held},
		{measure: MessagesUnacknowledged, want: held},
		{measure: Messages, want: published},
		{measure: Consumers, want: 1},
		{measure: Messages, perNode: true, inService: 4, want: published / 4.0},
	}
	for _, tt := range tests {
		proto := "api"
		if tt.amqp {
			proto = "amqp"
		}
		t.Run(fmt.Sprintf("%s %s per_node=%t in_service=%d", proto, tt.measure, tt.perNode, tt.inService), func(t *testing.T) {
			t.Parallel()
			cfg := b.config(tt.amqp, "work-jobs", tt.measure)
			cfg.PerNode = tt.perNode
			src := newSource(t, &cfg)
			target := counter.Target{Cluster: "work", InService: tt.inService}
			eventually(t, tt.measure, tt.want, func() (float64, error) { return src.Read(t.Context(), target) })
		})
	}
}

// Failures are errors with their reason, never zeros, and never show the
// password.
func TestQueueErrors(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	b.queue(t, "present", 3)
	wrong := passwordFile(t, "wrong-password-x7")
	// A port where nothing listens.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := l.Addr().String()
	_ = l.Close()

	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
		is      error
	}{
		{name: "amqp missing queue", cfg: b.config(true, "absent", ""),
			wantErr: fmt.Sprintf(`vhost %q queue "absent": no such queue (NOT_FOUND - no queue 'absent' in vhost '%s')`, b.vhost, b.vhost), is: ErrQueueNotFound},
		{name: "api missing queue", cfg: b.config(false, "absent", ""), wantErr: "no such queue or vhost (HTTP 404 from", is: ErrQueueNotFound},
		{name: "amqp missing vhost", cfg: with(b.config(true, "present", ""), func(c *Config) { c.VHost = b.vhost + "-nope" }),
			wantErr: fmt.Sprintf("connecting: NOT_ALLOWED - vhost %s-nope not found", b.vhost), is: ErrQueueNotFound},
		{name: "api missing vhost", cfg: with(b.config(false, "present", ""), func(c *Config) { c.VHost = b.vhost + "-nope" }), is: ErrQueueNotFound},
		{name: "amqp wrong password", cfg: with(b.config(true, "present", ""), func(c *Config) { c.PasswordFile = wrong }),
			wantErr: fmt.Sprintf("connecting: user %q", b.User), is: httpget.ErrAuth},
		{name: "api wrong password", cfg: with(b.config(false, "present", ""), func(c *Config) { c.PasswordFile = wrong }),
			wantErr: "HTTP 401 from", is: httpget.ErrAuth},
		{name: "amqp refused", cfg: with(b.config(true, "present", ""), func(c *Config) { c.URL = "amqp://" + closedPort }), wantErr: "connection refused"},
		{name: "api refused", cfg: with(b.config(false, "present", ""), func(c *Config) { c.URL = "http://" + closedPort }), wantErr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			v, err := newSource(t, &tt.cfg).Read(ctx, counter.Target{Cluster: "work"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read = %v, %v; want an error with %q", v, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			if !strings.HasPrefix(err.Error(), "rabbitmq ") {
				t.Errorf("the error does not say where: %v", err)
			}
			for _, pw := range []string{"wrong-password-x7", b.Password} {
				if strings.Contains(err.Error(), ":"+pw+"@") || (len(pw) > 5 && strings.Contains(err.Error(), pw)) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
		})
	}
}

// One AMQP connection serves every reading, survives a missing queue (whose
// channel the broker closes), and is dialled anew when the broker drops it.
func TestAMQPConnectionReuse(t *testing.T) {
	t.Parallel()
	b := newBroker(t)
	b.queue(t, "reuse", 4)
	present := newSource(t, ptr(b.config(true, "{{.Queue}}", "")))
	read := func(queue string) (float64, error) {
		return present.Read(t.Context(), counter.Target{Cluster: "work", Vars: map[string]string{"Queue": queue}})
	}
	for range 5 {
		if v, err := read("reuse"); err != nil || v != 4 {
			t.Fatalf("Read = %v, %v; want 4", v, err)
		}
		if _, err := read("absent"); !errors.Is(err, ErrQueueNotFound) {
			t.Fatalf("Read(absent) = %v; want ErrQueueNotFound", err)
		}
	}
	if d := present.Dials(); d != 1 {
		t.Fatalf("10 readings dialled %d connections, want 1", d)
	}
	// The management API lists a new connection after a moment.
	eventually(t, "closing the counter's connection through the management API", 1, func() (float64, error) {
		return float64(b.CloseConnections(t, b.vhost, "goscaler counter")), nil
	})
	// The broker's close reaches the client asynchronously; a reading may
	// still see the old connection close under it: an error, then a redial.
	eventually(t, "a reading after the broker closed the connection", 4, func() (float64, error) { return read("reuse") })
	if d := present.Dials(); d != 2 {
		t.Errorf("dials after the drop = %d, want 2", d)
	}
}

// A broker that accepts the TCP connection and never answers: the reading
// ends at its deadline.
func TestAMQPTimeout(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	src := newSource(t, &Config{URL: "amqp://" + l.Addr().String(), Queue: "jobs"})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = src.Read(ctx, counter.Target{Cluster: "work"})
	if err == nil || !strings.Contains(err.Error(), "connecting: timed out after") || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read = %v; want a connection timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Read took %s", d)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "amqp", yaml: "url: amqp://127.0.0.1:5672\nqueue: jobs\n"},
		{name: "api with everything", yaml: "url: http://127.0.0.1:15672\nvhost: prod\nqueue: '{{.Cluster}}-jobs'\nmeasure: messages\nper_node: true\nuser: mon\npassword_file: /run/secrets/rabbit\n"},
		{name: "nothing", yaml: "{}\n", want: []string{"url: required: amqp://host:5672 (AMQP) or http://host:15672", "queue: required"}},
		{name: "bad url and measure", yaml: "url: redis://h\nqueue: '{{'\nmeasure: depth\n", want: []string{
			`url: "redis://h": use amqp:// or amqps://`, `queue: template "{{"`, `measure: "depth" is not one of`}},
		{name: "credentials and vhost in the URL", yaml: "url: amqp://guest:s3cret@h:5672/prod\nqueue: q\n", want: []string{
			`url: "amqp://guest:xxxxx@h:5672/prod" holds credentials`, `url: "amqp://guest:xxxxx@h:5672/prod" has a path; put the vhost in vhost`}},
		{name: "unacked over AMQP", yaml: "url: amqp://h\nqueue: q\nmeasure: messages_unacknowledged\n", want: []string{
			"measure: messages_unacknowledged is known to the management API only"}},
		{name: "user without password", yaml: "url: amqp://h\nqueue: q\nuser: bob\n", want: []string{`password_env: the password of user "bob" is required`}},
		{name: "password key", yaml: "url: amqp://h\nqueue: q\npassword: s3cret\n", want: []string{`unknown key "password"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &node); err != nil {
				t.Fatal(err)
			}
			_, err := counter.Registry.Decode("rabbitmq", &node)
			got := plugin.Flatten(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Decode = %q; want %d problems %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Error(), w) {
					t.Errorf("problem %d = %q; want %q", i+1, got[i], w)
				}
				if strings.Contains(got[i].Error(), "s3cret") {
					t.Errorf("problem %d shows the password: %v", i+1, got[i])
				}
			}
		})
	}
}

func TestQueueURL(t *testing.T) {
	t.Parallel()
	base, _ := url.Parse("http://h:15672/rabbit/")
	tests := []struct{ vhost, queue, want string }{
		{"/", "jobs", "http://h:15672/rabbit/api/queues/%2F/jobs"},
		{"prod", "a/b c", "http://h:15672/rabbit/api/queues/prod/a%2Fb%20c"},
	}
	for _, tt := range tests {
		if got := QueueURL(base, tt.vhost, tt.queue).String(); got != tt.want {
			t.Errorf("QueueURL(%q, %q) = %s, want %s", tt.vhost, tt.queue, got, tt.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
