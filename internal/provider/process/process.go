// Package process is the "process" provider: each node is a local OS process,
// started from a command line on a free TCP port of the local host.
//
// A node process runs in its own process group, so that a Ctrl-C in the
// server's terminal does not reach it and a server that is killed leaves it
// running. Every node process is tagged through its environment
// (GOSCALER_OWNER, GOSCALER_CLUSTER, GOSCALER_NODE, GOSCALER_ADDRESS), which
// /proc/<pid>/environ exposes for as long as the process lives: that is how
// List finds the nodes again after a server restart. A machine ID is
// "<pid>:<start time>", the start time (field 22 of /proc/<pid>/stat) telling
// a node apart from an unrelated process that got its PID later.
//
// The provider works on Linux only: it reads /proc.
package process

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider"
)

// Environment tags of a node process.
const (
	TagOwner   = "GOSCALER_OWNER"
	TagCluster = "GOSCALER_CLUSTER"
	TagNode    = "GOSCALER_NODE"
	TagAddress = "GOSCALER_ADDRESS"
)

const (
	// DefaultHost is the address nodes bind to when the config sets none.
	DefaultHost = "127.0.0.1"
	// DefaultStopTimeout is how long Delete waits after SIGTERM before SIGKILL.
	DefaultStopTimeout = 10 * time.Second

	pollInterval = 20 * time.Millisecond
)

func init() {
	provider.Registry.Register("process", func() provider.Config { return &Config{} })
}

// Config is the configuration of the "process" provider.
type Config struct {
	// Command is the argv of a node; each element is a template over the node
	// vars ({{.Cluster}}, {{.NodeID}}, {{.Port}}, {{.Address}}, {{.Host}},
	// {{.Executable}} — the goscaler binary — and the cluster's vars).
	Command []string `yaml:"command" json:"command"`
	// Env is extra environment for the node; values are templates.
	Env map[string]string `yaml:"env" json:"env"`
	// Dir is the working directory (a template); default the provider's data dir.
	Dir string `yaml:"dir" json:"dir"`
	// Host is the IP address nodes bind to; default 127.0.0.1.
	Host string `yaml:"host" json:"host"`
	// StopTimeout is how long Delete waits after SIGTERM before it sends
	// SIGKILL; default 10s.
	StopTimeout plugin.Duration `yaml:"stop_timeout" json:"stop_timeout"`
}

// compiled is a Config with its templates parsed and its defaults applied.
type compiled struct {
	argv []*plugin.Template
	env  map[string]*plugin.Template
	dir  *plugin.Template // nil: the data dir
	host string
	stop time.Duration
}

var reservedEnv = []string{TagOwner, TagCluster, TagNode, TagAddress}

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	_, err := c.compile()
	return err
}

func (c *Config) compile() (compiled, error) {
	var errs []error
	out := compiled{host: DefaultHost, stop: DefaultStopTimeout}
	if len(c.Command) == 0 {
		errs = append(errs, errors.New("command: must not be empty: give the program and its arguments as a list"))
	}
	for i, s := range c.Command {
		if i == 0 && strings.TrimSpace(s) == "" {
			errs = append(errs, errors.New("command[0]: the program must not be empty"))
			continue
		}
		t, err := plugin.ParseTemplate(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("command[%d]: %w", i, err))
			continue
		}
		out.argv = append(out.argv, t)
	}
	out.env = make(map[string]*plugin.Template, len(c.Env))
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			errs = append(errs, fmt.Errorf("env: %q is not a valid variable name", k))
			continue
		case slices.Contains(reservedEnv, k):
			errs = append(errs, fmt.Errorf("env.%s: reserved, goscaler sets it itself", k))
			continue
		}
		t, err := plugin.ParseTemplate(c.Env[k])
		if err != nil {
			errs = append(errs, fmt.Errorf("env.%s: %w", k, err))
			continue
		}
		out.env[k] = t
	}
	if c.Dir != "" {
		t, err := plugin.ParseTemplate(c.Dir)
		if err != nil {
			errs = append(errs, fmt.Errorf("dir: %w", err))
		}
		out.dir = t
	}
	if c.Host != "" {
		if net.ParseIP(c.Host) == nil {
			errs = append(errs, fmt.Errorf("host: %q is not an IP address", c.Host))
		}
		out.host = c.Host
	}
	switch {
	case c.StopTimeout < 0:
		errs = append(errs, fmt.Errorf("stop_timeout: %s is negative", c.StopTimeout))
	case c.StopTimeout > 0:
		out.stop = c.StopTimeout.D()
	}
	return out, errors.Join(errs...)
}

// New builds the provider. env.Owner and env.DataDir are required.
func (c *Config) New(env provider.Env) (provider.Provider, error) {
	cfg, err := c.compile()
	if err != nil {
		return nil, fmt.Errorf("%w: process provider: %w", provider.ErrConfig, err)
	}
	if env.Owner == "" || strings.ContainsRune(env.Owner, 0) {
		return nil, fmt.Errorf("%w: process provider: the owner tag must be a non-empty string", provider.ErrConfig)
	}
	if env.DataDir == "" {
		return nil, fmt.Errorf("%w: process provider: no data directory", provider.ErrConfig)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Provider{
		cfg:      cfg,
		owner:    env.Owner,
		dataDir:  env.DataDir,
		log:      log.With("provider", "process"),
		children: map[string]*child{},
	}
	if exe, err := os.Executable(); err == nil {
		p.executable = exe
	} else {
		// Left out of the vars: a template that uses it fails to render.
		p.log.Warn("cannot find the goscaler executable; {{.Executable}} is not available", "err", err)
	}
	return p, nil
}

// Provider runs nodes as local processes. It is safe for concurrent use.
type Provider struct {
	cfg        compiled
	owner      string
	dataDir    string
	executable string
	log        *slog.Logger

	// createMu serialises Create, so that two calls for one node start one
	// process.
	createMu sync.Mutex

	mu sync.Mutex
	// children are the processes this provider started, by machine ID, until
	// Delete forgets them.
	children map[string]*child
}

// child is a process started by this provider; a goroutine reaps it.
type child struct {
	machine provider.Machine // as returned by Create
	done    chan struct{}    // closed once the process is reaped
	reason  string           // how it ended; written before done is closed
}

// exited returns the exit reason once the child has been reaped.
func (c *child) exited() (string, bool) {
	select {
	case <-c.done:
		return c.reason, true
	default:
		return "", false
	}
}

var _ provider.Provider = (*Provider)(nil)

// Create starts the process of spec.NodeID, or returns the live one that is
// already tagged with it.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	if err := checkName("cluster", spec.Cluster); err != nil {
		return provider.Machine{}, err
	}
	if err := checkName("node ID", spec.NodeID); err != nil {
		return provider.Machine{}, err
	}
	p.createMu.Lock()
	defer p.createMu.Unlock()
	if err := ctx.Err(); err != nil {
		return provider.Machine{}, fmt.Errorf("creating node %s: %w", spec.NodeID, err)
	}

	existing, err := p.list(spec.Cluster, spec.NodeID)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: %w", provider.ErrTransient, spec.NodeID, err)
	}
	if len(existing) > 0 {
		m := existing[0]
		p.log.Info("node process already running", "cluster", spec.Cluster, "node", spec.NodeID, "id", m.ID, "address", m.Address)
		return m, nil
	}

	port, err := freePort(p.cfg.host)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: %w", provider.ErrTransient, spec.NodeID, err)
	}
	vars := make(map[string]string, len(spec.Vars)+6)
	maps.Copy(vars, spec.Vars)
	vars["Cluster"] = spec.Cluster
	vars["NodeID"] = spec.NodeID
	vars["Host"] = p.cfg.host
	vars["Port"] = strconv.Itoa(port)
	vars["Address"] = net.JoinHostPort(p.cfg.host, vars["Port"])
	if p.executable != "" {
		vars["Executable"] = p.executable
	}
	address := vars["Address"]

	argv, environ, dir, err := p.render(vars)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: %w", provider.ErrConfig, spec.NodeID, err)
	}
	environ = append(environ,
		TagOwner+"="+p.owner,
		TagCluster+"="+spec.Cluster,
		TagNode+"="+spec.NodeID,
		TagAddress+"="+address,
	)

	logPath := p.logPath(spec.Cluster, spec.NodeID)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: log directory: %w", provider.ErrTransient, spec.NodeID, err)
	}
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: log file: %w", provider.ErrTransient, spec.NodeID, err)
	}
	// The child gets its own descriptor of the file: no pipe through the
	// server, so the node keeps logging if the server dies.
	defer func() { _ = logFile.Close() }()
	fmt.Fprintf(logFile, "goscaler %s: starting node %s of cluster %s on %s: %q in %s\n",
		time.Now().Format(time.RFC3339), spec.NodeID, spec.Cluster, address, argv, dir)

	cmd, err := command(argv)
	if err != nil {
		fmt.Fprintf(logFile, "goscaler: cannot start: %v\n", err)
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: %w", provider.ErrConfig, spec.NodeID, err)
	}
	cmd.Dir = dir
	cmd.Env = environ
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logFile, "goscaler: cannot start: %v\n", err)
		kind := provider.ErrTransient
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, exec.ErrNotFound) {
			kind = provider.ErrConfig
		}
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: %w", kind, spec.NodeID, err)
	}
	pid := cmd.Process.Pid
	st, err := readStat(pid) // the child is not reaped before Wait: this cannot miss
	if err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
		return provider.Machine{}, fmt.Errorf("%w: creating node %s: reading the start time of process %d: %w",
			provider.ErrTransient, spec.NodeID, pid, err)
	}

	m := provider.Machine{
		ID:      fmt.Sprintf("%d:%s", pid, st.StartTime),
		Cluster: spec.Cluster,
		NodeID:  spec.NodeID,
		Address: address,
		State:   provider.MachineRunning,
		Meta:    p.meta(pid, st.StartTime, logPath),
	}
	c := &child{machine: m, done: make(chan struct{})}
	m.Meta = maps.Clone(m.Meta)
	p.mu.Lock()
	p.children[m.ID] = c
	p.mu.Unlock()
	go p.reap(cmd, c)

	p.log.Info("node process started", "cluster", spec.Cluster, "node", spec.NodeID, "id", m.ID, "address", address, "log", logPath)
	return m, nil
}

// reap waits for a child and records how it ended.
func (p *Provider) reap(cmd *exec.Cmd, c *child) {
	_ = cmd.Wait() // the exit status is in ProcessState
	c.reason = exitReason(cmd.ProcessState)
	close(c.done)
	p.log.Info("node process ended", "cluster", c.machine.Cluster, "node", c.machine.NodeID, "id", c.machine.ID, "reason", c.reason)
}

// exitReason says how a process ended: "exited: exit status 2" or "killed by
// signal 9".
func exitReason(ps *os.ProcessState) string {
	if ps == nil {
		return "ended (status unknown)"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		if ws.Signaled() {
			return fmt.Sprintf("killed by signal %d", int(ws.Signal()))
		}
		return fmt.Sprintf("exited: exit status %d", ws.ExitStatus())
	}
	return "exited: " + ps.String()
}

// command builds the Cmd of argv. A program name without a slash is looked up
// in the server's PATH; one with a slash is used as is (relative to the
// working directory of the node).
func command(argv []string) (*exec.Cmd, error) {
	if strings.ContainsRune(argv[0], '/') {
		return &exec.Cmd{Path: argv[0], Args: argv}, nil
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, err
	}
	return &exec.Cmd{Path: path, Args: argv}, nil
}

// render renders the command, the environment and the working directory.
func (p *Provider) render(vars map[string]string) (argv, environ []string, dir string, err error) {
	var errs []error
	for i, t := range p.cfg.argv {
		s, err := t.Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("command[%d]: %w", i, err))
		}
		argv = append(argv, s)
	}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(reservedEnv, k) {
			environ = append(environ, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(p.cfg.env)) {
		s, err := p.cfg.env[k].Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("env.%s: %w", k, err))
		}
		if strings.ContainsRune(s, 0) {
			errs = append(errs, fmt.Errorf("env.%s: the value holds a NUL byte", k))
		}
		environ = append(environ, k+"="+s)
	}
	dir = p.dataDir
	if p.cfg.dir != nil {
		s, err := p.cfg.dir.Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("dir: %w", err))
		}
		dir = s
	}
	if len(argv) > 0 && argv[0] == "" {
		errs = append(errs, errors.New("command[0]: the program renders empty"))
	}
	for i, a := range argv {
		if strings.ContainsRune(a, 0) {
			errs = append(errs, fmt.Errorf("command[%d]: holds a NUL byte", i))
		}
	}
	return argv, environ, dir, errors.Join(errs...)
}

// Get returns the machine with the given ID: running if its process lives,
// stopped (with the exit reason) if this provider started it and it ended,
// ErrNotFound otherwise.
func (p *Provider) Get(ctx context.Context, id string) (provider.Machine, error) {
	pid, start, err := parseID(id)
	if err != nil {
		return provider.Machine{}, err
	}
	if err := ctx.Err(); err != nil {
		return provider.Machine{}, fmt.Errorf("getting process %s: %w", id, err)
	}
	c := p.child(id)
	if c != nil {
		if reason, ok := c.exited(); ok {
			return stopped(c, reason), nil
		}
	}
	_, m, err := p.inspect(pid, start, c)
	if err != nil {
		if c != nil && errors.Is(err, provider.ErrNotFound) {
			// Our child has exited: the reaper is recording its status.
			if reason, ok := c.waitExited(ctx); ok {
				return stopped(c, reason), nil
			}
		}
		return provider.Machine{}, err
	}
	return m, nil
}

// waitExited waits a little for the reaper of a child that /proc shows as
// gone or a zombie (only this process can reap it, so that is imminent).
func (c *child) waitExited(ctx context.Context) (string, bool) {
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.done:
		return c.reason, true
	case <-t.C:
	case <-ctx.Done():
	}
	return "", false
}

func stopped(c *child, reason string) provider.Machine {
	m := c.machine
	m.Meta = maps.Clone(m.Meta)
	m.State = provider.MachineStopped
	m.Reason = reason
	return m
}

// Delete sends SIGTERM to the process group of the machine, SIGKILL after the
// stop timeout, and returns once the process is gone. Whatever is left in the
// group once its leader has gone is killed. A machine that was gone already is
// ErrNotFound.
func (p *Provider) Delete(ctx context.Context, id string) error {
	pid, start, err := parseID(id)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting process %s: %w", id, err)
	}
	c := p.child(id)
	if c != nil {
		if reason, ok := c.exited(); ok {
			p.forget(id)
			return fmt.Errorf("deleting process %s: it has %s already: %w", id, reason, provider.ErrNotFound)
		}
	}
	st, m, err := p.inspect(pid, start, c)
	if err != nil {
		if c != nil && errors.Is(err, provider.ErrNotFound) {
			if reason, ok := c.waitExited(ctx); ok {
				p.forget(id)
				return fmt.Errorf("deleting process %s: it has %s already: %w", id, reason, provider.ErrNotFound)
			}
		}
		return fmt.Errorf("deleting: %w", err)
	}
	log := p.log.With("cluster", m.Cluster, "node", m.NodeID, "id", id)

	group := st.PGRP == pid // our nodes lead their own group
	signal := func(sig syscall.Signal) error {
		target := pid
		if group {
			target = -pid
		}
		return syscall.Kill(target, sig)
	}
	if err := signal(syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("deleting process %s: %w", id, provider.ErrNotFound)
		}
		return fmt.Errorf("%w: deleting process %s: SIGTERM: %w", provider.ErrTransient, id, err)
	}
	log.Info("stopping node process", "timeout", p.cfg.stop)

	var reaped <-chan struct{}
	if c != nil {
		reaped = c.done
	}
	gone := func() bool {
		if c != nil {
			_, ok := c.exited()
			return ok
		}
		st, err := readStat(pid)
		return err != nil || st.StartTime != start || st.dead()
	}
	timer := time.NewTimer(p.cfg.stop)
	defer timer.Stop()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for !gone() {
		select {
		case <-ctx.Done():
			return fmt.Errorf("deleting process %s: still running: %w", id, ctx.Err())
		case <-timer.C:
			log.Warn("node process did not stop in time; killing it", "timeout", p.cfg.stop)
			if err := signal(syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("%w: deleting process %s: SIGKILL: %w", provider.ErrTransient, id, err)
			}
		case <-reaped:
		case <-tick.C:
		}
	}
	if group {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // stragglers; ESRCH when there are none
	}
	if c != nil {
		log.Info("node process stopped", "reason", c.reason)
		p.forget(id)
	} else {
		log.Info("node process stopped")
	}
	return nil
}

// List returns the live processes tagged with the provider's owner and cluster.
func (p *Provider) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing processes of cluster %s: %w", cluster, err)
	}
	ms, err := p.list(cluster, "")
	if err != nil {
		return nil, fmt.Errorf("%w: listing processes of cluster %s: %w", provider.ErrTransient, cluster, err)
	}
	return ms, nil
}

// list scans /proc for live node processes of cluster (and of node, if set).
func (p *Provider) list(cluster, node string) ([]provider.Machine, error) {
	pids, err := listPIDs()
	if err != nil {
		return nil, err
	}
	type candidate struct {
		pid int
		st  procStat
		env map[string]string
	}
	byPID := map[int]candidate{}
	for _, pid := range pids {
		env, err := readEnviron(pid)
		if err != nil || env[TagOwner] != p.owner || env[TagCluster] != cluster || env[TagNode] == "" {
			continue // gone, another user's, or not ours
		}
		if node != "" && env[TagNode] != node {
			continue
		}
		st, err := readStat(pid)
		if err != nil || st.dead() {
			continue
		}
		// The node's children inherit its tags; the node leads its own group.
		if st.PGRP != pid {
			continue
		}
		byPID[pid] = candidate{pid: pid, st: st, env: env}
	}
	var out []provider.Machine
	found := map[string]bool{}
	for _, c := range byPID {
		// A descendant that made its own group still carries the tags.
		if parent, ok := byPID[c.st.PPID]; ok && parent.env[TagNode] == c.env[TagNode] {
			continue
		}
		m := p.machine(c.pid, c.st, c.env)
		found[m.ID] = true
		out = append(out, m)
	}
	// A child that was just started may not show its environment yet: the
	// kernel publishes it a moment after the exec that Start waits for.
	for _, c := range p.liveChildren(cluster, node) {
		if found[c.machine.ID] {
			continue
		}
		pid, start, _ := parseID(c.machine.ID)
		if _, m, err := p.inspect(pid, start, c); err == nil {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b provider.Machine) int {
		if c := strings.Compare(a.NodeID, b.NodeID); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// errExited marks a process that has exited but was not reaped yet.
var errExited = errors.New("the process has exited")

// inspect checks that the process pid started at start still runs and is a
// node of this owner, and returns its stat and machine. Otherwise the error
// wraps ErrNotFound. c is the child record of the process if this provider
// started it (nil otherwise): then its tags are known without reading them.
func (p *Provider) inspect(pid int, start string, c *child) (procStat, provider.Machine, error) {
	var none provider.Machine
	st, err := readStat(pid)
	if errors.Is(err, fs.ErrNotExist) {
		return st, none, fmt.Errorf("process %d: no such process: %w", pid, provider.ErrNotFound)
	}
	if err != nil {
		return st, none, fmt.Errorf("%w: process %d: %w", provider.ErrTransient, pid, err)
	}
	if st.StartTime != start {
		return st, none, fmt.Errorf("process %d started at tick %s, not %s: the PID belongs to another process now: %w",
			pid, st.StartTime, start, provider.ErrNotFound)
	}
	if st.dead() {
		return st, none, fmt.Errorf("process %d: %w: %w", pid, errExited, provider.ErrNotFound)
	}
	if c != nil {
		m := c.machine
		m.Meta = maps.Clone(m.Meta)
		return st, m, nil
	}
	env, err := readEnviron(pid)
	if err != nil {
		return st, none, fmt.Errorf("process %d: not a goscaler node (%w): %w", pid, err, provider.ErrNotFound)
	}
	if env[TagOwner] != p.owner || env[TagNode] == "" {
		return st, none, fmt.Errorf("process %d is not a node of %q: %w", pid, p.owner, provider.ErrNotFound)
	}
	// The environment was read after the stat: make sure it is the same process.
	if st2, err := readStat(pid); err != nil || st2.StartTime != start || st2.dead() {
		return st, none, fmt.Errorf("process %d: %w: %w", pid, errExited, provider.ErrNotFound)
	}
	return st, p.machine(pid, st, env), nil
}

// machine describes a live node process.
func (p *Provider) machine(pid int, st procStat, env map[string]string) provider.Machine {
	return provider.Machine{
		ID:      fmt.Sprintf("%d:%s", pid, st.StartTime),
		Cluster: env[TagCluster],
		NodeID:  env[TagNode],
		Address: env[TagAddress],
		State:   provider.MachineRunning,
		Meta:    p.meta(pid, st.StartTime, p.logPath(env[TagCluster], env[TagNode])),
	}
}

func (p *Provider) meta(pid int, start, logPath string) map[string]string {
	return map[string]string{"pid": strconv.Itoa(pid), "start_time": start, "log": logPath}
}

// logPath is where a node's output goes: <DataDir>/nodes/<cluster>/<node>.log.
func (p *Provider) logPath(cluster, node string) string {
	return filepath.Join(p.dataDir, "nodes", cluster, node+".log")
}

func (p *Provider) child(id string) *child {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.children[id]
}

// liveChildren returns the children of cluster (and of node, if set) that
// were not reaped.
func (p *Provider) liveChildren(cluster, node string) []*child {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*child
	for _, c := range p.children {
		if _, exited := c.exited(); exited || c.machine.Cluster != cluster || (node != "" && c.machine.NodeID != node) {
			continue
		}
		out = append(out, c)
	}
	return out
}

func (p *Provider) forget(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.children, id)
}

// parseID splits "<pid>:<start time>"; a malformed ID names no machine.
func parseID(id string) (int, string, error) {
	ps, start, ok := strings.Cut(id, ":")
	pid, err := strconv.Atoi(ps)
	if ok && err == nil && pid > 0 {
		if _, err := strconv.ParseUint(start, 10, 64); err == nil {
			return pid, start, nil
		}
	}
	return 0, "", fmt.Errorf("%q is not a process machine ID (<pid>:<start time>): %w", id, provider.ErrNotFound)
}

// checkName rejects names that cannot be a tag or a file name.
func checkName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
		return fmt.Errorf("%w: %s %q is not usable as a file name", provider.ErrConfig, what, s)
	}
	return nil
}

// freePort returns a TCP port of host that was free a moment ago.
func freePort(host string) (int, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", host, err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
