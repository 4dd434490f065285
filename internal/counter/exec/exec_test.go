package exec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
)

func newSource(t *testing.T, cfg *Config) counter.Source {
	t.Helper()
	s, err := cfg.New(counter.Env{Cluster: "web", Counter: "c"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func nodeTarget() counter.Target {
	return counter.Target{
		Cluster: "web",
		NodeID:  "n7",
		Address: "127.0.0.1:8080",
		Vars: map[string]string{
			"Cluster": "web", "NodeID": "n7", "Address": "127.0.0.1:8080",
			"Host": "127.0.0.1", "Port": "8080", "Zone": "z1",
		},
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		target  counter.Target
		want    float64
		wantErr string // substring; empty: no error
	}{
		{name: "integer", cfg: Config{Shell: "echo 42"}, want: 42},
		{name: "spaces and newlines", cfg: Config{Shell: `printf '  3.5 \n\n'`}, want: 3.5},
		{name: "negative exponent", cfg: Config{Shell: "echo -7e2"}, want: -700},
		{name: "zero", cfg: Config{Shell: "echo 0"}, want: 0},
		{name: "not a number", cfg: Config{Shell: "echo abc"}, wantErr: `output "abc" is not a number`},
		{name: "two numbers", cfg: Config{Shell: "echo 1; echo 2"}, wantErr: `output "1\n2" is not a number`},
		{name: "NaN", cfg: Config{Shell: "echo NaN"}, wantErr: `output "NaN" is not a finite number`},
		{name: "infinity", cfg: Config{Shell: "echo -Inf"}, wantErr: `output "-Inf" is not a finite number`},
		{name: "out of range", cfg: Config{Shell: "echo 1e999"}, wantErr: `output "1e999" is out of range`},
		{name: "empty", cfg: Config{Shell: "true"}, wantErr: "empty output"},
		{name: "empty with stderr", cfg: Config{Shell: "echo oops >&2"}, wantErr: "empty output, expected a number on stdout (stderr: oops)"},
		{name: "exit status with stderr", cfg: Config{Shell: "echo 5; echo boom >&2; echo more >&2; exit 3"}, wantErr: "exit status 3: boom"},
		{name: "exit status without stderr", cfg: Config{Shell: "exit 4"}, wantErr: "exit status 4"},
		{name: "killed by a signal", cfg: Config{Shell: "kill -9 $$"}, wantErr: "signal: killed"},
		{name: "too much output", cfg: Config{Shell: "yes 1 | head -c 100000"}, wantErr: "output larger than 64 KiB"},
		{name: "template vars", cfg: Config{Shell: "echo {{.Port}}"}, target: nodeTarget(), want: 8080},
		{
			name:   "command with templates",
			cfg:    Config{Command: []string{"printf", "%s%s", "{{.Port}}", "{{.NodeID | len}}"}},
			target: nodeTarget(), want: 80802,
		},
		{
			name:   "env templates and tags",
			cfg:    Config{Shell: `test "$GOSCALER_CLUSTER/$GOSCALER_NODE/$GOSCALER_ADDRESS" = web/n7/127.0.0.1:8080 && echo "$P"`, Env: map[string]string{"P": "{{.Port}}.5"}},
			target: nodeTarget(), want: 8080.5,
		},
		{
			name:   "cluster target",
			cfg:    Config{Shell: `test -z "$GOSCALER_NODE" && echo 1`},
			target: counter.Target{Cluster: "web", Vars: map[string]string{"Cluster": "web"}}, want: 1,
		},
		{
			name:    "node var on a cluster target",
			cfg:     Config{Shell: "echo {{.Port}}"},
			target:  counter.Target{Cluster: "web", Vars: map[string]string{"Cluster": "web"}},
			wantErr: `command[2]: rendering "echo {{.Port}}"`,
		},
		{name: "no such program", cfg: Config{Command: []string{"goscaler-no-such-program"}}, wantErr: "executable file not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			target := tt.target
			if target.Cluster == "" {
				target = counter.Target{Cluster: "web", Vars: map[string]string{"Cluster": "web"}}
			}
			got, err := newSource(t, &tt.cfg).Read(ctx, target)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Read = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestReadStderrFirstLineOnly(t *testing.T) {
	t.Parallel()
	_, err := newSource(t, &Config{Shell: "echo boom >&2; echo more >&2; exit 3"}).Read(t.Context(), counter.Target{Cluster: "web"})
	if _, after, ok := strings.Cut(fmt.Sprint(err), ": exit status 3: "); !ok || after != "boom" {
		t.Errorf("Read: %v; want only the first line of stderr", err)
	}
}

func TestReadContext(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cancel func(context.Context) (context.Context, context.CancelFunc)
		want   error
		text   string
	}{
		{
			name: "timeout",
			cancel: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, 200*time.Millisecond)
			},
			want: context.DeadlineExceeded,
			text: "timed out after ",
		},
		{
			name: "cancel",
			cancel: func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(200*time.Millisecond, cancel)
				return ctx, cancel
			},
			want: context.Canceled,
			text: "context canceled",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pidFile := filepath.Join(t.TempDir(), "pid")
			// The shell forks sleep (it has more to do after it) and waits.
			src := newSource(t, &Config{Shell: fmt.Sprintf("sleep 10 & echo $! > %s; wait; echo 1", pidFile)})
			ctx, cancel := tt.cancel(t.Context())
			defer cancel()

			start := time.Now()
			v, err := src.Read(ctx, counter.Target{Cluster: "web"})
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Read returned after %s", d)
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.text) {
				t.Errorf("Read = %v, %v; want %v with %q", v, err, tt.want, tt.text)
			}
			b, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			// The sleep was killed with its shell (gone, or a zombie its new
			// parent has not reaped yet).
			deadline := time.Now().Add(2 * time.Second)
			for running(pid) {
				if time.Now().After(deadline) {
					t.Fatalf("the shell's child %d still runs", pid)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// running reports whether pid is a process that is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	return len(f) > 0 && f[0] != "Z" && f[0] != "X"
}

func TestReadCanceledBeforeStart(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := newSource(t, &Config{Shell: "echo 1"}).Read(ctx, counter.Target{Cluster: "web"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Read: %v, want context.Canceled", err)
	}
}

func TestReadConcurrently(t *testing.T) {
	t.Parallel()
	src := newSource(t, &Config{Shell: "echo {{.Port}}"})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			target := counter.Target{Cluster: "web", Vars: map[string]string{"Port": strconv.Itoa(i)}}
			if v, err := src.Read(t.Context(), target); err != nil || v != float64(i) {
				t.Errorf("Read(%d) = %v, %v", i, v, err)
			}
		})
	}
	wg.Wait()
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none: valid
	}{
		{"command", Config{Command: []string{"cat", "/tmp/{{.Cluster}}"}}, nil},
		{"shell with env", Config{Shell: "echo $X", Env: map[string]string{"X": "{{.NodeID}}"}}, nil},
		{"neither", Config{}, []string{"command: set either command"}},
		{"both", Config{Command: []string{"x"}, Shell: "y"}, []string{"shell: set either command or shell, not both"}},
		{"bad shell template", Config{Shell: "echo {{"}, []string{"shell:"}},
		{"bad argument template", Config{Command: []string{"x", "{{.A"}}, []string{"command[1]"}},
		{"empty program", Config{Command: []string{""}}, []string{"command[0]"}},
		{"bad env name", Config{Shell: "x", Env: map[string]string{"": "1"}}, []string{`env: ""`}},
		{"reserved env", Config{Shell: "x", Env: map[string]string{"GOSCALER_NODE": "1"}}, []string{"env.GOSCALER_NODE: reserved"}},
		{"bad env template", Config{Shell: "x", Env: map[string]string{"A": "{{end}}"}}, []string{"env.A"}},
		{"several", Config{Env: map[string]string{"A": "{{"}}, []string{"command:", "env.A"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Errorf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v; want it to mention %q", err, w)
				}
			}
			if _, err := tt.cfg.New(counter.Env{}); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestRegistry(t *testing.T) {
	t.Parallel()
	var node yaml.Node
	if err := yaml.Unmarshal([]byte("shell: echo 1\nenv: {A: b}\n"), &node); err != nil {
		t.Fatal(err)
	}
	cfg, err := counter.Registry.Decode("exec", &node)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if cfg.DefaultScope() != counter.ScopeCluster {
		t.Errorf("DefaultScope = %s", cfg.DefaultScope())
	}
	if c := cfg.(*Config); c.Shell != "echo 1" || c.Env["A"] != "b" {
		t.Errorf("decoded %+v", c)
	}
	if err := yaml.Unmarshal([]byte("command: [x]\nscript: y\n"), &node); err != nil {
		t.Fatal(err)
	}
	if _, err := counter.Registry.Decode("exec", &node); err == nil || !strings.Contains(err.Error(), `unknown key "script"`) {
		t.Errorf("Decode with an unknown key: %v", err)
	}
}
