package haproxy

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/lb/haproxy/haproxytest"
)

func TestParseSocket(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in            string
		network, addr string
		bad           string
	}{
		{in: "/run/haproxy/admin.sock", network: "unix", addr: "/run/haproxy/admin.sock"},
		{in: "unix@/tmp/a.sock", network: "unix", addr: "/tmp/a.sock"},
		{in: "ipv4@127.0.0.1:9999", network: "tcp4", addr: "127.0.0.1:9999"},
		{in: "ipv6@[::1]:9999", network: "tcp6", addr: "[::1]:9999"},
		{in: "127.0.0.1:9999", bad: "neither a socket path"},
		{in: "admin.sock", bad: "neither a socket path"},
		{in: "unix@", bad: "empty socket path"},
		{in: "ipv4@127.0.0.1", bad: "missing port"},
		{in: "ipv4@127.0.0.1:0", bad: "port \"0\""},
		{in: "ipv4@127.0.0.1:http", bad: "port \"http\""},
		{in: "ipv4@:9999", bad: "no host"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			network, addr, err := ParseSocket(tc.in)
			if tc.bad != "" {
				if err == nil || !strings.Contains(err.Error(), tc.bad) {
					t.Fatalf("ParseSocket(%q) = %q %q, %v; want an error with %q", tc.in, network, addr, err, tc.bad)
				}
				return
			}
			if err != nil || network != tc.network || addr != tc.addr {
				t.Fatalf("ParseSocket(%q) = %q %q, %v; want %q %q", tc.in, network, addr, err, tc.network, tc.addr)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		reply string
		want  error
	}{
		{"No such backend.\n", ErrNoSuchBackend},
		{"No such server.\n", ErrNoSuchServer},
		{"Already exists a server with the same name in backend.\n", ErrServerExists},
		{"Only servers in maintenance mode can be deleted.\n", ErrNotInMaintenance},
		{"Server still has connections attached to it, cannot remove it.\n", ErrServerBusy},
		{"Backend must use a dynamic load balancing to support dynamic servers.\n", ErrStaticBackend},
		{"Permission denied\n", ErrPermission},
		{"Unknown command, but maybe one of the following ones is a better match:\n  show fd\n", ErrUnknownCommand},
		{"[3]: No such server.\n", ErrNoSuchServer},
		{"Can't find backend.\n", ErrNoSuchBackend},
		{"'server' expects <name> and <addr>[:<port>] as arguments.\n", ErrRejected},
	}
	for _, tc := range tests {
		if got := classify(tc.reply); !errors.Is(got, tc.want) {
			t.Errorf("classify(%q) = %v, want %v", tc.reply, got, tc.want)
		}
	}
}

// fakeSocket serves canned answers on a unix socket: reply(command) is
// written back and the connection closed.
func fakeSocket(t *testing.T, reply func(cmd string) string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hxf-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				n, _ := conn.Read(buf)
				_, _ = conn.Write([]byte(reply(strings.TrimSpace(string(buf[:n])))))
			}()
		}
	}()
	return path
}

func TestClientParsesAnswers(t *testing.T) {
	t.Parallel()
	sock := fakeSocket(t, func(cmd string) string {
		switch cmd {
		case "show servers state be":
			return "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n" +
				"3 be 1 web-1 10.0.0.1 2 0 1 1 5 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n" +
				"3 be 2 web-2 10.0.0.2 0 1 1 1 5 6 3 4 6 0 0 0 - 8080 - 0 0 - - 0\n" +
				"3 be 3 web-3 ::1 2 8 1 1 5 6 3 4 6 0 0 0 - 81 - 0 0 - - 0\n\n"
		case "show servers state broken":
			return "1\n# be_id be_name srv_id srv_name\n3 broken 1 x\n"
		case "show stat be 4 -1":
			return "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,\n" +
				"be,web-1,0,0,3,5,,9,0,0,,0,,0,0,0,0,UP,\n" +
				"be,web-2,2,2,0,0,,0,0,0,,0,,0,0,0,0,MAINT,\n" +
				"be,BACKEND,0,0,3,5,,9,0,0,,0,,0,0,0,0,UP,\n\n"
		case "add server be/web-4 10.0.0.4:80 check":
			return "New server registered.\n"
		case "del server be/web-1":
			return "Server deleted.\n"
		case "enable server be/web-1":
			return "\n"
		case "show servers state nope":
			return "Can't find backend.\n"
		}
		return "Unknown command, but maybe one of the following ones is a better match:\n"
	})
	c, err := NewClient(sock, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	servers, err := c.Servers(ctx, "be")
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Name: "web-1", Address: "10.0.0.1:8080", OpState: OpRunning, AdminState: 0},
		{Name: "web-2", Address: "10.0.0.2:8080", OpState: OpStopped, AdminState: AdminForcedMaint},
		{Name: "web-3", Address: "[::1]:81", OpState: OpRunning, AdminState: AdminForcedDrain},
	}
	if len(servers) != len(want) {
		t.Fatalf("Servers = %+v, want %+v", servers, want)
	}
	for i := range want {
		if servers[i] != want[i] {
			t.Errorf("server %d = %+v, want %+v", i, servers[i], want[i])
		}
	}
	if !servers[0].Ready() || servers[1].Ready() || !servers[1].Maintenance() || !servers[2].Draining() || servers[2].Maintenance() {
		t.Errorf("Ready/Maintenance/Draining wrong for %+v", servers)
	}
	if _, err := c.Servers(ctx, "broken"); err == nil || !strings.Contains(err.Error(), "srv_addr") {
		t.Errorf("Servers of a header without srv_addr: %v, want an error naming the column", err)
	}
	if _, err := c.Servers(ctx, "nope"); !errors.Is(err, ErrNoSuchBackend) {
		t.Errorf("Servers of an unknown backend: %v, want ErrNoSuchBackend", err)
	}
	stats, err := c.Stats(ctx, "be")
	if err != nil {
		t.Fatal(err)
	}
	if len(stats) != 2 || stats[0] != (Stat{Name: "web-1", Sessions: 3, Status: "UP"}) || stats[1] != (Stat{Name: "web-2", Queued: 2, Status: "MAINT"}) {
		t.Errorf("Stats = %+v", stats)
	}
	if err := c.AddServer(ctx, "be", "web-4", "10.0.0.4:80", []string{"check"}); err != nil {
		t.Errorf("AddServer: %v", err)
	}
	if err := c.DelServer(ctx, "be", "web-1"); err != nil {
		t.Errorf("DelServer: %v", err)
	}
	if err := c.EnableServer(ctx, "be", "web-1"); err != nil {
		t.Errorf("EnableServer with a blank answer: %v", err)
	}
	err = c.EnableHealth(ctx, "be", "web-1")
	var ce *CommandError
	if !errors.As(err, &ce) || !errors.Is(err, ErrUnknownCommand) || ce.Command != "enable health be/web-1" {
		t.Errorf("EnableHealth with an unknown-command answer: %v, want a CommandError wrapping ErrUnknownCommand", err)
	}
	for _, bad := range []func() error{
		func() error { return c.AddServer(ctx, "be", "x; shutdown sessions", "1.2.3.4:5", nil) },
		func() error { return c.AddServer(ctx, "be x", "web-1", "1.2.3.4:5", nil) },
		func() error { _, err := c.Servers(ctx, "be\nshow info"); return err },
		func() error { _, err := c.Exec(ctx, "show info\nshow stat"); return err },
	} {
		if err := bad(); err == nil {
			t.Errorf("a name or command that would smuggle a second command was accepted")
		}
	}
}

func TestClientTransportErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, err := NewClient(filepath.Join(t.TempDir(), "none.sock"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "show info"); !errors.Is(err, ErrUnreachable) {
		t.Errorf("Exec on a missing socket: %v, want ErrUnreachable", err)
	}
	// A socket that never answers: the command times out.
	dir, err := os.MkdirTemp("", "hxs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	ln, err := net.Listen("unix", filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // held open, silent
		}
	}()
	slow, err := NewClient(filepath.Join(dir, "s.sock"), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = slow.Exec(ctx, "show info")
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Exec on a silent socket: %v, want ErrUnreachable and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Exec on a silent socket took %s, want about the 200ms timeout", d)
	}
	cctx, cancel := context.WithCancel(ctx)
	time.AfterFunc(50*time.Millisecond, cancel)
	c2, _ := NewClient(filepath.Join(dir, "s.sock"), time.Minute)
	if _, err := c2.Exec(cctx, "show info"); !errors.Is(err, context.Canceled) {
		t.Errorf("Exec cancelled: %v, want context.Canceled", err)
	}
}

// TestClientAgainstHAProxy runs every command against a real HAProxy and
// checks its answers, good and bad.
func TestClientAgainstHAProxy(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be_app", BackendLines: []string{"balance roundrobin"},
		Global: []string{"stats socket {{DIR}}/user.sock level user"}})
	// A backend with a static algorithm, for the refusal.
	ctx := context.Background()
	c, err := NewClient(hx.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	backend := func(b, s string) Server {
		t.Helper()
		ss, err := c.Servers(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range ss {
			if x.Name == s {
				return x
			}
		}
		t.Fatalf("no server %s in %s: %+v", s, b, ss)
		return Server{}
	}
	steps := []struct {
		what string
		do   func() error
		want error // nil: success
	}{
		{"add", func() error { return c.AddServer(ctx, "be_app", "n1", "127.0.0.1:1", []string{"check", "inter", "1s"}) }, nil},
		{"add again", func() error { return c.AddServer(ctx, "be_app", "n1", "127.0.0.1:1", nil) }, ErrServerExists},
		{"add to an unknown backend", func() error { return c.AddServer(ctx, "nope", "n1", "127.0.0.1:1", nil) }, ErrNoSuchBackend},
		{"add with a bad keyword", func() error { return c.AddServer(ctx, "be_app", "n9", "127.0.0.1:1", []string{"no-such-kw"}) }, ErrRejected},
		{"created in maintenance", func() error {
			if s := backend("be_app", "n1"); !s.Maintenance() || s.Address != "127.0.0.1:1" {
				t.Errorf("new server: %+v, want in maintenance at 127.0.0.1:1", s)
			}
			return nil
		}, nil},
		{"enable health", func() error { return c.EnableHealth(ctx, "be_app", "n1") }, nil},
		{"enable server", func() error { return c.EnableServer(ctx, "be_app", "n1") }, nil},
		{"ready", func() error {
			if s := backend("be_app", "n1"); !s.Ready() {
				t.Errorf("enabled server: %+v, want ready", s)
			}
			return nil
		}, nil},
		{"enable an unknown server", func() error { return c.EnableServer(ctx, "be_app", "zz") }, ErrNoSuchServer},
		{"del a live server", func() error { return c.DelServer(ctx, "be_app", "n1") }, ErrNotInMaintenance},
		{"drain", func() error { return c.SetState(ctx, "be_app", "n1", StateDrain) }, nil},
		{"draining", func() error {
			if s := backend("be_app", "n1"); !s.Draining() {
				t.Errorf("drained server: %+v, want draining", s)
			}
			return nil
		}, nil},
		{"maint", func() error { return c.SetState(ctx, "be_app", "n1", StateMaint) }, nil},
		{"shutdown sessions", func() error { return c.ShutdownSessions(ctx, "be_app", "n1") }, nil},
		{"del", func() error { return c.DelServer(ctx, "be_app", "n1") }, nil},
		{"del again", func() error { return c.DelServer(ctx, "be_app", "n1") }, ErrNoSuchServer},
		{"stats of an unknown backend", func() error { _, err := c.Stats(ctx, "nope"); return err }, ErrNoSuchBackend},
		{"servers of an unknown backend", func() error { _, err := c.Servers(ctx, "nope"); return err }, ErrNoSuchBackend},
		{"unknown command", func() error { return c.run(ctx, "frobnicate") }, ErrUnknownCommand},
	}
	for _, s := range steps {
		err := s.do()
		switch {
		case s.want == nil && err != nil:
			t.Fatalf("%s: %v", s.what, err)
		case s.want != nil && !errors.Is(err, s.want):
			t.Fatalf("%s: %v, want %v", s.what, err, s.want)
		}
	}
	if ss, err := c.Servers(ctx, "be_app"); err != nil || len(ss) != 0 {
		t.Errorf("servers at the end: %+v, %v; want none", ss, err)
	}
	user, err := NewClient(filepath.Join(hx.Dir, "user.sock"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := user.AddServer(ctx, "be_app", "n2", "127.0.0.1:2", nil); !errors.Is(err, ErrPermission) {
		t.Errorf("add server on a level-user socket: %v, want ErrPermission", err)
	}
}

func TestClientStaticBackend(t *testing.T) {
	t.Parallel()
	hx := haproxytest.Start(t, haproxytest.Options{Backend: "be_static", BackendLines: []string{"balance static-rr"}})
	c, err := NewClient(hx.Socket, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(context.Background(), "be_static", "n1", "127.0.0.1:1", nil); !errors.Is(err, ErrStaticBackend) {
		t.Errorf("add server to a static-rr backend: %v, want ErrStaticBackend", err)
	}
}
