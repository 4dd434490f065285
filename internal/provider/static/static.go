// Package static is the "static" provider: a cluster whose nodes are existing
// machines listed in the configuration, reached over SSH. goscaler creates
// and destroys nothing: Create hands out a listed host that no other node of
// the cluster uses, and Delete gives it back.
//
// Which host serves which node is recorded in a small state file,
// <data dir>/static/<cluster>.json (written atomically, under an flock), so
// that a restarted server finds its nodes' hosts again and never gives one
// host to two nodes. A machine ID is the host's SSH address (host:port).
//
// A host that is removed from the configuration while a node uses it is
// reported as stopped, so that its node is failed and replaced by one on a
// listed host. A freed host goes to the back of the line: Create prefers the
// host that has been free the longest, so a host whose node just failed is
// not handed out again at once while another one is free.
package static

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/sshx"
)

func init() {
	provider.Registry.Register("static", func() provider.Config { return &Config{} })
}

// Meta keys of a static machine, besides the sshx ones.
const (
	// MetaStaticHost is the machine ID: the host's SSH address.
	MetaStaticHost = "static_host"
)

// Host is one listed machine.
type Host struct {
	// Address is the host name or IP address to connect to.
	Address string `yaml:"address" json:"address"`
	// Port is its SSH port; default the cluster's ssh.port (22).
	Port int `yaml:"port" json:"port,omitempty"`
	// User is the SSH login; default the cluster's ssh.user.
	User string `yaml:"user" json:"user,omitempty"`
	// ServicePort is where the node's service listens (its address is
	// Address:ServicePort, used by health checks and the load balancer);
	// default the provider's service_port, else the SSH port.
	ServicePort int `yaml:"service_port" json:"service_port,omitempty"`
}

// Config is the configuration of the "static" provider.
type Config struct {
	// Hosts are the machines nodes may run on, in order of preference.
	Hosts []Host `yaml:"hosts" json:"hosts"`
	// ServicePort is the default service port of the hosts.
	ServicePort int `yaml:"service_port" json:"service_port,omitempty"`
}

// MaxMachines is the number of listed hosts: the cluster's max cannot be higher.
func (c *Config) MaxMachines() int { return len(c.Hosts) }

// Validate checks the config and returns every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if len(c.Hosts) == 0 {
		errs = append(errs, errors.New("hosts: list at least one host (address:, and port: and user: if not the cluster's ssh settings)"))
	}
	if c.ServicePort < 0 || c.ServicePort > 65535 {
		errs = append(errs, fmt.Errorf("service_port: %d is not a TCP port", c.ServicePort))
	}
	seen := map[string]int{}
	for i, h := range c.Hosts {
		k := fmt.Sprintf("hosts[%d]", i)
		switch {
		case strings.TrimSpace(h.Address) == "":
			errs = append(errs, fmt.Errorf("%s: address: required (a host name or IP address)", k))
		case strings.ContainsAny(h.Address, " \t\n/@") || strings.Count(h.Address, ":") == 1:
			errs = append(errs, fmt.Errorf("%s: address: %q is not a host name or IP address (give the SSH port as port:)", k, h.Address))
		}
		if h.Port < 0 || h.Port > 65535 {
			errs = append(errs, fmt.Errorf("%s: port: %d is not a TCP port", k, h.Port))
		}
		if h.ServicePort < 0 || h.ServicePort > 65535 {
			errs = append(errs, fmt.Errorf("%s: service_port: %d is not a TCP port", k, h.ServicePort))
		}
		if strings.ContainsAny(h.User, " \t\n@:") {
			errs = append(errs, fmt.Errorf("%s: user: %q is not a login name", k, h.User))
		}
		id := h.Address + " port " + strconv.Itoa(h.Port)
		if j, dup := seen[id]; dup && h.Address != "" {
			errs = append(errs, fmt.Errorf("%s: host %s is listed twice (also hosts[%d])", k, describe(h), j))
		}
		seen[id] = i
	}
	return errors.Join(errs...)
}

func describe(h Host) string {
	if h.Port == 0 {
		return h.Address
	}
	return net.JoinHostPort(h.Address, strconv.Itoa(h.Port))
}

// New builds the provider. env.DataDir is required; env.SSH gives the
// default SSH port and user.
func (c *Config) New(env provider.Env) (provider.Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%w: static provider: %w", provider.ErrConfig, err)
	}
	if env.DataDir == "" {
		return nil, fmt.Errorf("%w: static provider: no data directory", provider.ErrConfig)
	}
	if err := checkName("cluster", env.Cluster); err != nil {
		return nil, err
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	defPort := sshx.DefaultPort
	if env.SSH != nil {
		defPort = env.SSH.Resolve(sshx.Endpoint{}).Port
	}
	p := &Provider{cluster: env.Cluster, owner: env.Owner, dir: filepath.Join(env.DataDir, "static"), log: log.With("provider", "static"),
		now: time.Now, byID: map[string]Host{}}
	for _, h := range c.Hosts {
		port := h.Port
		if port == 0 {
			port = defPort
		}
		svc := h.ServicePort
		if svc == 0 {
			svc = c.ServicePort
		}
		if svc == 0 {
			svc = port
		}
		h.ServicePort = svc
		id := net.JoinHostPort(h.Address, strconv.Itoa(port))
		if _, dup := p.byID[id]; dup {
			return nil, fmt.Errorf("%w: static provider: host %s is listed twice", provider.ErrConfig, id)
		}
		p.byID[id] = h
		p.order = append(p.order, id)
	}
	return p, nil
}

// Provider hands out listed hosts. It is safe for concurrent use.
type Provider struct {
	cluster string
	owner   string
	dir     string
	log     *slog.Logger
	now     func() time.Time
	// byID are the listed hosts by machine ID (ServicePort resolved), in
	// configuration order.
	byID  map[string]Host
	order []string

	mu sync.Mutex
}

var _ provider.Provider = (*Provider)(nil)

// state is the content of a cluster's state file.
type state struct {
	Owner string `json:"owner"`
	// Used maps a machine ID to the node using it.
	Used map[string]use `json:"used"`
	// Freed is when each host was last given back.
	Freed map[string]time.Time `json:"freed,omitempty"`
}

type use struct {
	Node  string    `json:"node"`
	Since time.Time `json:"since"`
	// Host is the entry as it was when handed out, so that a host removed
	// from the configuration can still be described.
	Host Host `json:"host"`
}

// Create hands out the host of spec.NodeID: the one it already has, else
// the listed host free the longest. ErrCapacity when every host is in use.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	if err := checkName("cluster", spec.Cluster); err != nil {
		return provider.Machine{}, err
	}
	if spec.NodeID == "" {
		return provider.Machine{}, fmt.Errorf("%w: static provider: empty node ID", provider.ErrConfig)
	}
	var m provider.Machine
	err := p.update(ctx, spec.Cluster, func(st *state) (bool, error) {
		for id, u := range st.Used {
			if u.Node == spec.NodeID {
				m = p.machine(spec.Cluster, id, u)
				p.log.Info("node already has its host", "cluster", spec.Cluster, "node", spec.NodeID, "host", id)
				return false, nil
			}
		}
		var free []string
		for _, id := range p.order {
			if _, used := st.Used[id]; !used {
				free = append(free, id)
			}
		}
		if len(free) == 0 {
			var users []string
			for id, u := range st.Used {
				users = append(users, u.Node+" on "+id)
			}
			slices.Sort(users)
			return false, fmt.Errorf("%w: static provider: all %d listed hosts are in use (%s): list more hosts",
				provider.ErrCapacity, len(p.order), strings.Join(users, ", "))
		}
		// Never freed first (in configuration order), then freed the longest ago.
		slices.SortStableFunc(free, func(a, b string) int { return st.Freed[a].Compare(st.Freed[b]) })
		id := free[0]
		u := use{Node: spec.NodeID, Since: p.now().UTC(), Host: p.byID[id]}
		st.Used[id] = u
		m = p.machine(spec.Cluster, id, u)
		p.log.Info("host handed out", "cluster", spec.Cluster, "node", spec.NodeID, "host", id)
		return true, nil
	})
	return m, err
}

// Get returns the machine with the given ID if a node of the provider's
// cluster uses it: running while the host is listed, stopped once it is not.
func (p *Provider) Get(ctx context.Context, id string) (provider.Machine, error) {
	if err := ctx.Err(); err != nil {
		return provider.Machine{}, fmt.Errorf("getting host %s: %w", id, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.read(p.path(p.cluster))
	if err != nil {
		return provider.Machine{}, err
	}
	if u, ok := st.Used[id]; ok {
		return p.machine(p.cluster, id, u), nil
	}
	return provider.Machine{}, fmt.Errorf("host %s is not used by any node of cluster %s: %w", id, p.cluster, provider.ErrNotFound)
}

// Delete gives the host back. Nothing runs on it: what the node's software
// needs to stop is for the cluster's actions to do. ErrNotFound if no node
// used it.
func (p *Provider) Delete(ctx context.Context, id string) error {
	return p.update(ctx, p.cluster, func(st *state) (bool, error) {
		u, ok := st.Used[id]
		if !ok {
			return false, fmt.Errorf("releasing host %s: no node of cluster %s uses it: %w", id, p.cluster, provider.ErrNotFound)
		}
		delete(st.Used, id)
		st.Freed[id] = p.now().UTC()
		p.log.Info("host released", "cluster", p.cluster, "node", u.Node, "host", id)
		return true, nil
	})
}

// List returns the hosts in use by nodes of cluster.
func (p *Provider) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing hosts of cluster %s: %w", cluster, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.read(p.path(cluster))
	if err != nil {
		return nil, err
	}
	out := make([]provider.Machine, 0, len(st.Used))
	for id, u := range st.Used {
		out = append(out, p.machine(cluster, id, u))
	}
	slices.SortFunc(out, func(a, b provider.Machine) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out, nil
}

// machine describes host id used by u.
func (p *Provider) machine(cluster, id string, u use) provider.Machine {
	h, listed := p.byID[id]
	if !listed {
		h = u.Host
	}
	sshHost, sshPort, _ := net.SplitHostPort(id)
	meta := map[string]string{MetaStaticHost: id, sshx.MetaHost: sshHost, sshx.MetaPort: sshPort}
	if h.User != "" {
		meta[sshx.MetaUser] = h.User
	}
	m := provider.Machine{
		ID:      id,
		Cluster: cluster,
		NodeID:  u.Node,
		Address: net.JoinHostPort(h.Address, strconv.Itoa(h.ServicePort)),
		State:   provider.MachineRunning,
		Meta:    meta,
	}
	if !listed {
		m.State = provider.MachineStopped
		m.Reason = "the host is no longer listed in the static provider's hosts"
	}
	return m
}

// path is the state file of cluster.
func (p *Provider) path(cluster string) string { return filepath.Join(p.dir, cluster+".json") }

// read loads a state file; a missing file is an empty state. The caller
// holds p.mu.
func (p *Provider) read(path string) (*state, error) {
	st := &state{Owner: p.owner, Used: map[string]use{}, Freed: map[string]time.Time{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: static provider: reading %s: %w", provider.ErrTransient, path, err)
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("static provider: %s is damaged (%w): fix or remove it — it records which host each node uses", path, err)
	}
	if st.Used == nil {
		st.Used = map[string]use{}
	}
	if st.Freed == nil {
		st.Freed = map[string]time.Time{}
	}
	return st, nil
}

// update changes a cluster's state under the process lock and an flock of
// the state file's directory, and writes it back if fn says it changed.
func (p *Provider) update(ctx context.Context, cluster string, fn func(*state) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := os.MkdirAll(p.dir, 0o750); err != nil {
		return fmt.Errorf("%w: static provider: %w", provider.ErrTransient, err)
	}
	lock, err := os.OpenFile(filepath.Join(p.dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("%w: static provider: %w", provider.ErrTransient, err)
	}
	defer func() { _ = lock.Close() }()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("%w: static provider: locking %s: %w", provider.ErrTransient, p.dir, err)
	}
	path := p.path(cluster)
	st, err := p.read(path)
	if err != nil {
		return err
	}
	changed, err := fn(st)
	if err != nil || !changed {
		return err
	}
	if err := writeAtomic(path, st); err != nil {
		return fmt.Errorf("%w: static provider: writing %s: %w", provider.ErrTransient, path, err)
	}
	return nil
}

// writeAtomic writes st to path through a synced temporary file and a rename.
func writeAtomic(path string, st *state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".state-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// checkName rejects names that cannot be a file name.
func checkName(what, s string) error {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || strings.HasPrefix(s, ".") {
		return fmt.Errorf("%w: static provider: %s %q is not usable as a file name", provider.ErrConfig, what, s)
	}
	return nil
}
