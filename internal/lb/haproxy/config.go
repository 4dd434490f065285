// Package haproxy is the "haproxy" load balancer: it puts a cluster's nodes
// into a backend of a running HAProxy (2.4 or later; tested with Debian's
// 2.6) through its runtime API on the admin socket, and writes the same
// servers into a configuration file that HAProxy loads, so that a reload
// keeps them.
//
// Register adds the node as a dynamic server ("add server BACKEND/NODE IP:PORT
// OPTIONS"), turns its health checks on ("enable health", when the options
// hold "check") and puts it into rotation ("enable server"). Deregister
// drains it: "set server … state drain" stops new requests at once, then it
// waits (polling "show stat") until the server's sessions have ended, at most
// DrainTimeout, and removes it: "state maint", "shutdown sessions server",
// "del server". Backends lists the servers of the backend that are in
// rotation ("show servers state").
//
// HAProxy's rules for dynamic servers apply: the backend must use a dynamic
// balance algorithm (roundrobin, leastconn, random, first, or a hash with
// "hash-type consistent"), default-server settings are not inherited (put
// them in server_options), and addresses are IPs (goscaler resolves a node's
// host name before it adds the server).
//
// Dynamic servers live in the running process only; a reload starts from the
// configuration files. With config_file set, goscaler owns the backend's
// section in that file ("backend NAME", the backend_config lines, then one
// "server" line per registered node), rewritten atomically on every change;
// start HAProxy with "-f haproxy.cfg -f CONFIG_FILE" (or put the file in a
// directory given with -f). Without config_file, the backend is defined in
// HAProxy's own configuration and a reload drops the servers until the
// controller's periodic reconciliation registers the in-service nodes again.
package haproxy

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/lb"
	"github.com/goscaler/goscaler/internal/plugin"
)

// TypeName is the `load_balancer.type` of this balancer.
const TypeName = "haproxy"

// Defaults of Config.
const (
	DefaultDrainTimeout   = 30 * time.Second
	DefaultCommandTimeout = 5 * time.Second
	DefaultServerOptions  = "check"
	DefaultBalance        = "balance roundrobin"
)

func init() {
	lb.Registry.Register(TypeName, func() lb.Config { return &Config{} })
}

// Config is the configuration of the haproxy load balancer.
type Config struct {
	// Socket is HAProxy's admin socket: a path (stats socket PATH level
	// admin) or ipv4@HOST:PORT.
	Socket string `yaml:"socket" json:"socket"`
	// Backend is the backend the nodes are added to.
	Backend string `yaml:"backend" json:"backend"`
	// ConfigFile, when set, is the file goscaler writes the backend's section
	// to (see the package doc); HAProxy must load it.
	ConfigFile string `yaml:"config_file" json:"config_file,omitempty"`
	// BackendConfig are the lines of the backend section written to
	// ConfigFile before the servers (default: balance roundrobin).
	BackendConfig []string `yaml:"backend_config" json:"backend_config,omitempty"`
	// ServerOptions are the keywords of every server ("check inter 1s
	// weight 10"); default "check".
	ServerOptions string `yaml:"server_options" json:"server_options,omitempty"`
	// DrainTimeout bounds how long Deregister waits for a server's sessions
	// to end before it cuts them (default 30s).
	DrainTimeout plugin.Duration `yaml:"drain_timeout" json:"drain_timeout,omitempty"`
	// Timeout bounds one runtime API command (default 5s).
	Timeout plugin.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

var _ plugin.Validator = (*Config)(nil)

// sectionKeywords start a new section of HAProxy's configuration: a
// backend_config line must not.
var sectionKeywords = []string{"backend", "frontend", "listen", "defaults", "global", "peers", "resolvers",
	"userlist", "cache", "program", "http-errors", "ring", "mailers"}

// Validate reports every problem, each naming its key.
func (c *Config) Validate() error {
	var errs []error
	if c.Socket == "" {
		errs = append(errs, errors.New(`socket: required: HAProxy's admin socket, a path such as /run/haproxy/admin.sock (stats socket … level admin) or ipv4@127.0.0.1:9999`))
	} else if _, _, err := ParseSocket(c.Socket); err != nil {
		errs = append(errs, fmt.Errorf("socket: %w", err))
	}
	if c.Backend == "" {
		errs = append(errs, errors.New("backend: required: the name of the HAProxy backend the nodes go into"))
	} else if err := checkName("backend", c.Backend); err != nil {
		errs = append(errs, fmt.Errorf("backend: %w", err))
	}
	if c.ConfigFile == "" && len(c.BackendConfig) > 0 {
		errs = append(errs, errors.New("backend_config: only used with config_file (the backend's section goscaler writes); set config_file, or configure the backend in HAProxy's own configuration"))
	}
	for i, line := range c.BackendConfig {
		if err := checkBackendLine(line); err != nil {
			errs = append(errs, fmt.Errorf("backend_config[%d]: %w", i, err))
		}
	}
	if _, err := c.serverOptions(); err != nil {
		errs = append(errs, fmt.Errorf("server_options: %w", err))
	}
	if c.DrainTimeout < 0 {
		errs = append(errs, fmt.Errorf("drain_timeout: must not be negative, got %s", c.DrainTimeout))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must not be negative, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

func checkBackendLine(line string) error {
	f := strings.Fields(line)
	switch {
	case len(f) == 0:
		return errors.New("empty line")
	case strings.ContainsAny(line, "\n\r"):
		return errors.New("one line per item: it holds a line break")
	case f[0] == "server" || f[0] == "server-template":
		return fmt.Errorf("%q: servers are goscaler's: leave them out", line)
	case f[0] == "default-server":
		return fmt.Errorf("%q: HAProxy does not apply default-server to dynamic servers: put the keywords in server_options", line)
	}
	for _, k := range sectionKeywords {
		if f[0] == k {
			return fmt.Errorf("%q would start a new section", line)
		}
	}
	if f[0] == "balance" && len(f) > 1 && f[1] == "static-rr" {
		return errors.New(`"balance static-rr" does not support dynamic servers: use roundrobin, leastconn, random or first`)
	}
	return nil
}

// serverOptions splits ServerOptions (or its default) into keywords.
func (c *Config) serverOptions() ([]string, error) {
	s := c.ServerOptions
	if s == "" {
		s = DefaultServerOptions
	}
	if strings.ContainsAny(s, ";\n\r#") {
		return nil, fmt.Errorf("%q: must not hold ';', '#' or a line break", s)
	}
	return strings.Fields(s), nil
}

// backendConfig returns BackendConfig or its default.
func (c *Config) backendConfig() []string {
	if len(c.BackendConfig) == 0 {
		return []string{DefaultBalance}
	}
	return c.BackendConfig
}

// New builds the balancer of one cluster. It does not need HAProxy to run:
// with config_file it writes the file (keeping the servers it already
// lists), so that HAProxy can start with it.
func (c *Config) New(env lb.Env) (lb.Balancer, error) {
	b, err := newBalancer(*c, env)
	if err != nil {
		return nil, err
	}
	return b, nil
}
