package haproxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Errors of the runtime API, wrapped by *CommandError (test with errors.Is).
var (
	// ErrUnreachable: the socket could not be reached, or the connection
	// broke before HAProxy answered. Worth a retry.
	ErrUnreachable = errors.New("HAProxy runtime API unreachable")
	// ErrNoSuchBackend: the backend does not exist in the running HAProxy.
	ErrNoSuchBackend = errors.New("no such backend")
	// ErrNoSuchServer: the server does not exist in its backend.
	ErrNoSuchServer = errors.New("no such server")
	// ErrServerExists: add server of a name the backend already has.
	ErrServerExists = errors.New("server already exists")
	// ErrNotInMaintenance: del server of a server that is not in maintenance.
	ErrNotInMaintenance = errors.New("server not in maintenance")
	// ErrServerBusy: del server of a server that still has connections.
	ErrServerBusy = errors.New("server still has connections")
	// ErrStaticBackend: the backend's balance algorithm does not support
	// dynamic servers (static-rr, or a map-based hash).
	ErrStaticBackend = errors.New("backend does not support dynamic servers")
	// ErrPermission: the socket is not at level admin.
	ErrPermission = errors.New("permission denied on the runtime API")
	// ErrUnknownCommand: this HAProxy does not know the command (older than 2.4?).
	ErrUnknownCommand = errors.New("unknown runtime API command")
	// ErrRejected is any other refusal: the reply says why.
	ErrRejected = errors.New("command rejected")
)

// CommandError is a runtime API command that did not succeed: HAProxy's reply
// (or the transport error) and the kind of failure.
type CommandError struct {
	Command string
	// Reply is what HAProxy answered (empty for a transport error).
	Reply string
	// Kind is one of the Err… sentinels.
	Kind error
	// Err is the transport error, if any.
	Err error
}

func (e *CommandError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("haproxy %q: %v: %v", e.Command, e.Kind, e.Err)
	}
	return fmt.Sprintf("haproxy %q: %s", e.Command, firstLine(e.Reply))
}

// Unwrap returns the kind and the transport error.
func (e *CommandError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// replyKinds maps the start of HAProxy 2.6's error replies to their kind.
var replyKinds = []struct {
	prefix string
	kind   error
}{
	{"No such backend", ErrNoSuchBackend},
	{"Can't find backend", ErrNoSuchBackend}, // show servers state
	{"No such proxy", ErrNoSuchBackend},      // show stat
	{"No such server", ErrNoSuchServer},
	{"Already exists a server with the same name", ErrServerExists},
	{"Only servers in maintenance mode can be deleted", ErrNotInMaintenance},
	{"Server still has connections attached to it", ErrServerBusy},
	{"Backend must use a dynamic load balancing", ErrStaticBackend},
	{"Permission denied", ErrPermission},
	{"Unknown command", ErrUnknownCommand},
}

func classify(reply string) error {
	r := strings.TrimSpace(reply)
	// With "set severity-output" a reply starts with "[N]: ".
	if strings.HasPrefix(r, "[") {
		if _, rest, ok := strings.Cut(r, "]: "); ok {
			r = rest
		}
	}
	for _, k := range replyKinds {
		if strings.HasPrefix(r, k.prefix) {
			return k.kind
		}
	}
	return ErrRejected
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

// maxReply bounds what is read of one answer.
const maxReply = 16 << 20

// Client speaks HAProxy's runtime API (the "stats socket … level admin"): it
// opens one connection per command, writes the command line and reads the
// answer until HAProxy closes the connection. It is safe for concurrent use.
type Client struct {
	network string
	address string
	timeout time.Duration
}

// ParseSocket reads a socket address as HAProxy writes it: a path
// ("/run/haproxy/admin.sock", or "unix@/run/…") or "ipv4@HOST:PORT" /
// "ipv6@[HOST]:PORT".
func ParseSocket(s string) (network, address string, err error) {
	switch {
	case strings.HasPrefix(s, "unix@"):
		network, address = "unix", strings.TrimPrefix(s, "unix@")
	case strings.HasPrefix(s, "/"):
		network, address = "unix", s
	case strings.HasPrefix(s, "ipv4@"):
		network, address = "tcp4", strings.TrimPrefix(s, "ipv4@")
	case strings.HasPrefix(s, "ipv6@"):
		network, address = "tcp6", strings.TrimPrefix(s, "ipv6@")
	default:
		return "", "", fmt.Errorf("%q is neither a socket path (/run/haproxy/admin.sock) nor ipv4@HOST:PORT or ipv6@[HOST]:PORT", s)
	}
	if network == "unix" {
		if address == "" {
			return "", "", fmt.Errorf("%q: empty socket path", s)
		}
		return network, address, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", "", fmt.Errorf("%q: %w", s, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("%q: port %q is not a number from 1 to 65535", s, port)
	}
	if host == "" {
		return "", "", fmt.Errorf("%q: no host", s)
	}
	return network, address, nil
}

// NewClient returns a client of the runtime API at socket (see ParseSocket);
// timeout bounds each command (connect, write and read).
func NewClient(socket string, timeout time.Duration) (*Client, error) {
	network, address, err := ParseSocket(socket)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultCommandTimeout
	}
	return &Client{network: network, address: address, timeout: timeout}, nil
}

// Exec sends one command and returns HAProxy's raw answer. Only transport
// failures are errors here (wrapping ErrUnreachable or ctx's error); whether
// the answer means success depends on the command.
func (c *Client) Exec(ctx context.Context, command string) (string, error) {
	if strings.ContainsAny(command, "\n\r") {
		return "", &CommandError{Command: command, Kind: ErrRejected, Err: errors.New("a command must be one line")}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return "", c.transportError(ctx, command, err)
	}
	defer func() { _ = conn.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Unblock the read when ctx is cancelled before its deadline.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := io.WriteString(conn, command+"\n"); err != nil {
		return "", c.transportError(ctx, command, err)
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(conn), maxReply))
	if err != nil {
		return "", c.transportError(ctx, command, err)
	}
	return string(b), nil
}

func (c *Client) transportError(ctx context.Context, command string, err error) error {
	ctxErr := ctx.Err()
	if ctxErr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		// The connection's deadline is the context's: it may fire first.
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil {
		err = fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return &CommandError{Command: command, Kind: ErrUnreachable,
		Err: fmt.Errorf("%s %s: %w", c.network, c.address, err)}
}

// run sends command and succeeds when the answer, trimmed, is one of ok
// (an empty answer when ok is empty).
func (c *Client) run(ctx context.Context, command string, ok ...string) error {
	reply, err := c.Exec(ctx, command)
	if err != nil {
		return err
	}
	r := strings.TrimSpace(reply)
	if len(ok) == 0 && r == "" {
		return nil
	}
	for _, want := range ok {
		if r == want {
			return nil
		}
	}
	return &CommandError{Command: command, Reply: reply, Kind: classify(reply)}
}

// nameRE is what a backend or server name may hold here: HAProxy allows
// letters, digits, '-', '_', '.' and ':'.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.:-]+$`)

// checkName rejects a name that HAProxy would refuse or that would change
// the meaning of a command.
func checkName(what, s string) error {
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%s %q: only letters, digits, '-', '_', '.' and ':' are allowed", what, s)
	}
	return nil
}

func ref(backend, server string) string { return backend + "/" + server }

// AddServer adds a dynamic server (HAProxy creates it in maintenance, with
// its health checks off: see EnableHealth and EnableServer). addr is
// IP:port; options are server keywords ("check", "inter", "1s", …).
func (c *Client) AddServer(ctx context.Context, backend, server, addr string, options []string) error {
	if err := checkName("backend", backend); err != nil {
		return err
	}
	if err := checkName("server", server); err != nil {
		return err
	}
	cmd := "add server " + ref(backend, server) + " " + addr
	if len(options) > 0 {
		cmd += " " + strings.Join(options, " ")
	}
	return c.run(ctx, cmd, "New server registered.")
}

// EnableHealth turns the server's health checks on.
func (c *Client) EnableHealth(ctx context.Context, backend, server string) error {
	return c.run(ctx, "enable health "+ref(backend, server))
}

// EnableServer takes the server out of maintenance.
func (c *Client) EnableServer(ctx context.Context, backend, server string) error {
	return c.run(ctx, "enable server "+ref(backend, server))
}

// Server admin states for SetState.
const (
	StateReady = "ready"
	StateDrain = "drain"
	StateMaint = "maint"
)

// SetState sets the server's admin state: ready, drain or maint.
func (c *Client) SetState(ctx context.Context, backend, server, state string) error {
	return c.run(ctx, "set server "+ref(backend, server)+" state "+state)
}

// ShutdownSessions closes every session (stream) on the server.
func (c *Client) ShutdownSessions(ctx context.Context, backend, server string) error {
	return c.run(ctx, "shutdown sessions server "+ref(backend, server))
}

// DelServer deletes a server in maintenance that has no connection left.
func (c *Client) DelServer(ctx context.Context, backend, server string) error {
	return c.run(ctx, "del server "+ref(backend, server), "Server deleted.")
}

// Admin state bits of "show servers state" (srv_admin_state).
const (
	AdminForcedMaint     = 0x01
	AdminInheritedMaint  = 0x02
	AdminConfigMaint     = 0x04
	AdminForcedDrain     = 0x08
	AdminInheritedDrain  = 0x10
	AdminResolutionMaint = 0x20
	AdminHostnameMaint   = 0x40
	maintBits            = AdminForcedMaint | AdminInheritedMaint | AdminConfigMaint | AdminResolutionMaint | AdminHostnameMaint
	drainBits            = AdminForcedDrain | AdminInheritedDrain
)

// Operational states of "show servers state" (srv_op_state).
const (
	OpStopped  = 0
	OpStarting = 1
	OpRunning  = 2
	OpStopping = 3
)

// Server is one server of a backend as "show servers state" and "show stat"
// describe it.
type Server struct {
	Name string `json:"name"`
	// Address is IP:port.
	Address string `json:"address"`
	// OpState is the operational state (Op… constants).
	OpState int `json:"op_state"`
	// AdminState is the admin state bit field (Admin… constants).
	AdminState int `json:"admin_state"`
}

// Maintenance reports whether the server is in maintenance (by any cause).
func (s Server) Maintenance() bool { return s.AdminState&maintBits != 0 }

// Draining reports whether the server is draining.
func (s Server) Draining() bool { return s.AdminState&drainBits != 0 }

// Ready reports whether the server is in rotation as far as its admin state
// goes (its health checks may still hold it down).
func (s Server) Ready() bool { return !s.Maintenance() && !s.Draining() }

// Servers returns the servers of backend ("show servers state BACKEND").
func (c *Client) Servers(ctx context.Context, backend string) ([]Server, error) {
	if err := checkName("backend", backend); err != nil {
		return nil, err
	}
	cmd := "show servers state " + backend
	reply, err := c.Exec(ctx, cmd)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(reply), "\n")
	// The first line is the format version ("1"), then a "# …" header.
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "# ") {
		return nil, &CommandError{Command: cmd, Reply: reply, Kind: classify(reply)}
	}
	col := map[string]int{}
	for i, f := range strings.Fields(strings.TrimPrefix(lines[1], "# ")) {
		col[f] = i
	}
	need := []string{"srv_name", "srv_addr", "srv_op_state", "srv_admin_state", "srv_port"}
	for _, n := range need {
		if _, ok := col[n]; !ok {
			return nil, &CommandError{Command: cmd, Reply: reply, Kind: ErrRejected,
				Err: fmt.Errorf("the header has no %s column", n)}
		}
	}
	var out []Server
	for _, line := range lines[2:] {
		f := strings.Fields(line)
		if len(f) < len(col) {
			continue
		}
		op, err1 := strconv.Atoi(f[col["srv_op_state"]])
		admin, err2 := strconv.Atoi(f[col["srv_admin_state"]])
		if err1 != nil || err2 != nil {
			return nil, &CommandError{Command: cmd, Reply: reply, Kind: ErrRejected,
				Err: fmt.Errorf("cannot read the states of %q", line)}
		}
		out = append(out, Server{Name: f[col["srv_name"]], OpState: op, AdminState: admin,
			Address: net.JoinHostPort(f[col["srv_addr"]], f[col["srv_port"]])})
	}
	return out, nil
}

// Stat is a server's load from "show stat".
type Stat struct {
	Name string
	// Sessions is scur: the sessions (streams) using the server now.
	Sessions int
	// Queued is qcur: the requests waiting for the server.
	Queued int
	// Status is HAProxy's status text: UP, DOWN, MAINT, DRAIN, NOLB, …
	Status string
}

// Stats returns the load of every server of backend ("show stat BACKEND 4 -1").
func (c *Client) Stats(ctx context.Context, backend string) ([]Stat, error) {
	if err := checkName("backend", backend); err != nil {
		return nil, err
	}
	cmd := "show stat " + backend + " 4 -1"
	reply, err := c.Exec(ctx, cmd)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(strings.TrimSpace(reply), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "# ") {
		return nil, &CommandError{Command: cmd, Reply: reply, Kind: classify(reply)}
	}
	col := map[string]int{}
	for i, f := range strings.Split(strings.TrimPrefix(lines[0], "# "), ",") {
		col[f] = i
	}
	for _, n := range []string{"pxname", "svname", "scur", "qcur", "status"} {
		if _, ok := col[n]; !ok {
			return nil, &CommandError{Command: cmd, Reply: reply, Kind: ErrRejected,
				Err: fmt.Errorf("the header has no %s column", n)}
		}
	}
	var out []Stat
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		if len(f) < len(col)-1 || f[col["pxname"]] != backend {
			continue
		}
		name := f[col["svname"]]
		if name == "BACKEND" || name == "FRONTEND" {
			continue
		}
		scur, _ := strconv.Atoi(f[col["scur"]])
		qcur, _ := strconv.Atoi(f[col["qcur"]])
		out = append(out, Stat{Name: name, Sessions: scur, Queued: qcur, Status: f[col["status"]]})
	}
	return out, nil
}
