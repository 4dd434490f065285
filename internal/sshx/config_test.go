package sshx

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/plugin"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // each a problem's start
	}{
		{name: "empty is fine", cfg: Config{}},
		{name: "all set", cfg: Config{User: "deploy", Port: 2222, IdentityFiles: []string{"~/.ssh/id_ed25519"}, PassphraseEnv: "KEY_PASS",
			KnownHosts: "/etc/goscaler/known_hosts", TrustOnFirstUse: true, ConnectTimeout: plugin.Duration(5 * time.Second),
			MaxSessions: 4, KeepaliveInterval: plugin.Duration(10 * time.Second), IdleTimeout: plugin.Duration(time.Minute)}},
		{name: "every problem at once", cfg: Config{User: "a b", Port: 70000, IdentityFiles: []string{" "}, PassphraseEnv: "hunter 2",
			MaxSessions: 100, ConnectTimeout: plugin.Duration(time.Millisecond), KeepaliveInterval: plugin.Duration(time.Millisecond),
			IdleTimeout: plugin.Duration(time.Millisecond)},
			want: []string{"port:", "user:", "identity_files[0]:", "passphrase_env:", "max_sessions:", "connect_timeout:", "keepalive_interval:", "idle_timeout:"}},
		{name: "negative port", cfg: Config{Port: -1}, want: []string{"port:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			errs := plugin.Flatten(tt.cfg.Validate())
			if len(errs) != len(tt.want) {
				t.Fatalf("problems %v, want %d starting with %v", errs, len(tt.want), tt.want)
			}
			for i, e := range errs {
				if !strings.HasPrefix(e.Error(), tt.want[i]) {
					t.Errorf("problem %d %q, want it to start with %q", i, e, tt.want[i])
				}
			}
		})
	}
	// The passphrase is named, never written: a value that looks like one is not echoed as a name.
	if err := (&Config{PassphraseEnv: "s3cr3t pass"}).Validate(); err == nil || !strings.Contains(err.Error(), "write the name") {
		t.Errorf("passphrase in passphrase_env: %v", err)
	}
}

func TestConfigMergeAndDefaults(t *testing.T) {
	t.Parallel()
	yes := true
	base := Config{User: "ops", Port: 2222, KnownHosts: "/k", MaxSessions: 4}
	m := base.Merge(Config{User: "app", Agent: &yes})
	if m.User != "app" || m.Port != 2222 || m.KnownHosts != "/k" || m.MaxSessions != 4 || m.Agent == nil || !*m.Agent {
		t.Errorf("merged %+v", m)
	}
	s, err := (&Config{KnownHosts: "/k"}).settings()
	if err != nil {
		t.Fatal(err)
	}
	if s.port != DefaultPort || s.maxSessions != DefaultMaxSessions || s.connectTimeout != DefaultConnectTimeout ||
		s.keepalive != DefaultKeepaliveInterval || s.idle != DefaultIdleTimeout || s.user == "" || s.explicitKeys {
		t.Errorf("defaults %+v", s)
	}
}

func TestNodeEndpoint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		address string
		meta    map[string]string
		want    Endpoint
		err     string
	}{
		{address: "10.0.0.5:8080", want: Endpoint{Host: "10.0.0.5"}},
		{address: "[fd00::5]:8080", want: Endpoint{Host: "fd00::5"}},
		{address: "web1", want: Endpoint{Host: "web1"}},
		{address: "10.0.0.5:8080", meta: map[string]string{MetaHost: "bastion-side.example", MetaPort: "2222", MetaUser: "deploy"},
			want: Endpoint{Host: "bastion-side.example", Port: 2222, User: "deploy"}},
		{address: "", err: "no address"},
		{address: "h:1", meta: map[string]string{MetaPort: "ssh"}, err: "not a TCP port"},
	}
	for _, tt := range tests {
		got, err := NodeEndpoint(tt.address, tt.meta)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("NodeEndpoint(%q, %v) = %v, %v; want error %q", tt.address, tt.meta, got, err, tt.err)
			}
		case err != nil || got != tt.want:
			t.Errorf("NodeEndpoint(%q, %v) = %+v, %v; want %+v", tt.address, tt.meta, got, err, tt.want)
		}
	}
	if s := (Endpoint{Host: "fd00::5", Port: 22, User: "root"}).String(); s != "root@[fd00::5]:22" {
		t.Errorf("String() = %q", s)
	}
}

// ShellQuote's output read back by a real shell is the input.
func TestShellQuote(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "plain", "a b", "it's", `"double"`, "$HOME", "`id`", "a\nb", "*", "x;y|z&", "-n"} {
		out, err := exec.Command("sh", "-c", "printf '%s' "+ShellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("ShellQuote(%q) = %s, which the shell reads as %q (%v)", s, ShellQuote(s), out, err)
		}
	}
}
