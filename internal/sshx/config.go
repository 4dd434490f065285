package sshx

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/plugin"
)

// Defaults of Config.
const (
	DefaultPort              = 22
	DefaultConnectTimeout    = 10 * time.Second
	DefaultMaxSessions       = 8 // OpenSSH allows 10 sessions per connection (MaxSessions)
	DefaultKeepaliveInterval = 15 * time.Second
	DefaultIdleTimeout       = 5 * time.Minute
	// MaxMaxSessions bounds max_sessions: far past OpenSSH's default of 10.
	MaxMaxSessions = 64
)

// Config is how goscaler connects to a cluster's hosts over SSH: the
// cluster-level `ssh:` section of the configuration. Every field is optional.
type Config struct {
	// User is the login name; default the user goscaler runs as.
	User string `yaml:"user" json:"user,omitempty"`
	// Port is the SSH port; default 22.
	Port int `yaml:"port" json:"port,omitempty"`
	// IdentityFiles are private key files (a leading ~/ is the home
	// directory). Default: those of ~/.ssh/id_ed25519, ~/.ssh/id_ecdsa and
	// ~/.ssh/id_rsa that exist.
	IdentityFiles []string `yaml:"identity_files" json:"identity_files,omitempty"`
	// PassphraseEnv names the environment variable that holds the passphrase
	// of encrypted identity files. The passphrase itself never goes into the
	// configuration.
	PassphraseEnv string `yaml:"passphrase_env" json:"passphrase_env,omitempty"`
	// Agent uses the ssh-agent at $SSH_AUTH_SOCK too. Default: yes when
	// SSH_AUTH_SOCK is set.
	Agent *bool `yaml:"agent" json:"agent,omitempty"`
	// KnownHosts is the known_hosts file host keys are checked against;
	// default ~/.ssh/known_hosts.
	KnownHosts string `yaml:"known_hosts" json:"known_hosts,omitempty"`
	// TrustOnFirstUse accepts the key of a host that is not in KnownHosts
	// yet and records it there. A host whose key differs from the recorded
	// one is refused all the same.
	TrustOnFirstUse bool `yaml:"trust_on_first_use" json:"trust_on_first_use,omitempty"`
	// ConnectTimeout bounds the TCP connection and the SSH handshake; default 10s.
	ConnectTimeout plugin.Duration `yaml:"connect_timeout" json:"connect_timeout,omitempty"`
	// MaxSessions caps the sessions open at once on one connection; default 8,
	// below OpenSSH's MaxSessions of 10.
	MaxSessions int `yaml:"max_sessions" json:"max_sessions,omitempty"`
	// KeepaliveInterval is how often an idle connection is probed
	// (keepalive@openssh.com); a probe unanswered within the interval closes
	// the connection. Default 15s.
	KeepaliveInterval plugin.Duration `yaml:"keepalive_interval" json:"keepalive_interval,omitempty"`
	// IdleTimeout closes a connection that ran nothing for that long; default 5m.
	IdleTimeout plugin.Duration `yaml:"idle_timeout" json:"idle_timeout,omitempty"`
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Validate checks the values and returns every problem, each naming its key.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port (1-65535)", c.Port))
	}
	if strings.ContainsAny(c.User, " \t\n@:") {
		errs = append(errs, fmt.Errorf("user: %q is not a login name", c.User))
	}
	for i, f := range c.IdentityFiles {
		if strings.TrimSpace(f) == "" {
			errs = append(errs, fmt.Errorf("identity_files[%d]: empty path", i))
		}
	}
	if c.PassphraseEnv != "" && !envName.MatchString(c.PassphraseEnv) {
		errs = append(errs, fmt.Errorf("passphrase_env: %q is not an environment variable name (write the name, not the passphrase)", c.PassphraseEnv))
	}
	if c.MaxSessions < 0 || c.MaxSessions > MaxMaxSessions {
		errs = append(errs, fmt.Errorf("max_sessions: %d is outside 1..%d (OpenSSH allows 10 by default)", c.MaxSessions, MaxMaxSessions))
	}
	if c.ConnectTimeout != 0 && c.ConnectTimeout.D() < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("connect_timeout: %s is too short: use at least 100ms", c.ConnectTimeout))
	}
	if c.KeepaliveInterval != 0 && c.KeepaliveInterval.D() < time.Second {
		errs = append(errs, fmt.Errorf("keepalive_interval: %s is too short: use at least 1s", c.KeepaliveInterval))
	}
	if c.IdleTimeout != 0 && c.IdleTimeout.D() < time.Second {
		errs = append(errs, fmt.Errorf("idle_timeout: %s is too short: use at least 1s", c.IdleTimeout))
	}
	return errors.Join(errs...)
}

// Merge returns c with the fields that o sets replaced by o's: per-node or
// per-plugin settings over the cluster's.
func (c Config) Merge(o Config) Config {
	if o.User != "" {
		c.User = o.User
	}
	if o.Port != 0 {
		c.Port = o.Port
	}
	if len(o.IdentityFiles) > 0 {
		c.IdentityFiles = o.IdentityFiles
	}
	if o.PassphraseEnv != "" {
		c.PassphraseEnv = o.PassphraseEnv
	}
	if o.Agent != nil {
		c.Agent = o.Agent
	}
	if o.KnownHosts != "" {
		c.KnownHosts = o.KnownHosts
	}
	if o.TrustOnFirstUse {
		c.TrustOnFirstUse = true
	}
	if o.ConnectTimeout != 0 {
		c.ConnectTimeout = o.ConnectTimeout
	}
	if o.MaxSessions != 0 {
		c.MaxSessions = o.MaxSessions
	}
	if o.KeepaliveInterval != 0 {
		c.KeepaliveInterval = o.KeepaliveInterval
	}
	if o.IdleTimeout != 0 {
		c.IdleTimeout = o.IdleTimeout
	}
	return c
}

// settings is a Config with its defaults applied.
type settings struct {
	user           string
	port           int
	identityFiles  []string
	explicitKeys   bool // identity files were configured, so they must load
	passphraseEnv  string
	agent          bool
	knownHosts     string
	tofu           bool
	connectTimeout time.Duration
	maxSessions    int
	keepalive      time.Duration
	idle           time.Duration
}

func (c *Config) settings() (settings, error) {
	if err := c.Validate(); err != nil {
		return settings{}, err
	}
	home, _ := os.UserHomeDir()
	s := settings{
		user:           c.User,
		port:           c.Port,
		passphraseEnv:  c.PassphraseEnv,
		knownHosts:     c.KnownHosts,
		tofu:           c.TrustOnFirstUse,
		connectTimeout: c.ConnectTimeout.D(),
		maxSessions:    c.MaxSessions,
		keepalive:      c.KeepaliveInterval.D(),
		idle:           c.IdleTimeout.D(),
	}
	if s.user == "" {
		s.user = currentUser()
	}
	if s.port == 0 {
		s.port = DefaultPort
	}
	if len(c.IdentityFiles) > 0 {
		s.explicitKeys = true
		for _, f := range c.IdentityFiles {
			s.identityFiles = append(s.identityFiles, expandHome(f, home))
		}
	} else if home != "" {
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			s.identityFiles = append(s.identityFiles, filepath.Join(home, ".ssh", n))
		}
	}
	if c.Agent != nil {
		s.agent = *c.Agent
	} else {
		s.agent = os.Getenv("SSH_AUTH_SOCK") != ""
	}
	if s.knownHosts == "" {
		if home == "" {
			return settings{}, errors.New("known_hosts: no home directory to find ~/.ssh/known_hosts in: set known_hosts")
		}
		s.knownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	s.knownHosts = expandHome(s.knownHosts, home)
	if s.connectTimeout == 0 {
		s.connectTimeout = DefaultConnectTimeout
	}
	if s.maxSessions == 0 {
		s.maxSessions = DefaultMaxSessions
	}
	if s.keepalive == 0 {
		s.keepalive = DefaultKeepaliveInterval
	}
	if s.idle == 0 {
		s.idle = DefaultIdleTimeout
	}
	return s, nil
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func expandHome(p, home string) string {
	if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
		return filepath.Join(home, strings.TrimPrefix(p, "~"))
	}
	return p
}
