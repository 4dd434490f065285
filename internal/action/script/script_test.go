package script

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/store"
)

func decode(t *testing.T, src string) (*Config, error) {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(src), &n); err != nil {
		t.Fatal(err)
	}
	cfg, err := action.Registry.Decode("local_script", &n)
	if err != nil {
		return nil, err
	}
	return cfg.(*Config), nil
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, src, wantErr string
	}{
		{"command", `{command: [echo, hi]}`, ""},
		{"shell", `{shell: "echo hi"}`, ""},
		{"neither", `{env: {A: b}}`, "set exactly one of command"},
		{"both", `{command: [echo], shell: "echo"}`, "set exactly one of command"},
		{"bad shell template", `{shell: "echo {{.Cluster"}`, "template"},
		{"bad command template", `{command: [echo, "{{"]}`, "template"},
		{"bad env template", `{shell: "true", env: {A: "{{.X"}}`, "template"},
		{"bad dir template", `{shell: "true", dir: "{{end}}"}`, "template"},
		{"unknown key", `{shell: "true", timout: 1s}`, `unknown key "timout"`},
		{"bare number timeout", `{shell: "true", timeout: 30}`, "write it with a unit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := decode(t, tt.src)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.Timeout.D() != 5*time.Minute {
					t.Errorf("default timeout %s, want 5m", cfg.Timeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// runScript builds the action from cfg and runs it once.
func runScript(t *testing.T, cfg Config, r action.Run) (string, error) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	act, err := cfg.New(action.Env{Cluster: r.Cluster})
	if err != nil {
		t.Fatal(err)
	}
	if r.Vars == nil {
		r.Vars = map[string]string{"Cluster": r.Cluster}
	}
	return act.Run(t.Context(), r)
}

func TestEnvironment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := Config{
		Shell: `env | grep -E '^(GOSCALER_|EXTRA=)' | sort; pwd`,
		Env:   map[string]string{"EXTRA": "{{.Cluster}}-{{.Trigger}}"},
		Dir:   dir,
	}
	vars := map[string]string{"Cluster": "web", "Trigger": "scale-out", "Cause": "trigger scale-out: avg inflight 27.5 > 20 for 2s",
		"Activity": "17", "NodeID": "web-3", "Counter_inflight": "27.5"}
	out, err := runScript(t, cfg, action.Run{Cluster: "web", Trigger: "scale-out", Vars: vars})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"GOSCALER_CLUSTER=web\n",
		"GOSCALER_TRIGGER=scale-out\n",
		"GOSCALER_CAUSE=trigger scale-out: avg inflight 27.5 > 20 for 2s\n",
		"GOSCALER_ACTIVITY=17\n",
		"GOSCALER_NODE_ID=web-3\n",
		"GOSCALER_COUNTER_INFLIGHT=27.5\n",
		"EXTRA=web-scale-out\n",
		dir + "\n",
		"exit code 0 after ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestCommandTemplates(t *testing.T) {
	t.Parallel()
	out, err := runScript(t, Config{Command: []string{"echo", "cluster={{.Cluster}}"}}, action.Run{Cluster: "api"})
	if err != nil || !strings.Contains(out, "--- stdout\ncluster=api\n") {
		t.Fatalf("%v\n%s", err, out)
	}
	// A variable that does not exist is an error, never an empty string.
	_, err = runScript(t, Config{Command: []string{"echo", "{{.Nope}}"}}, action.Run{Cluster: "api"})
	if !errors.Is(err, action.ErrPermanent) {
		t.Fatalf("missing variable: %v, want a permanent error", err)
	}
	_, err = runScript(t, Config{Command: []string{"/no/such/program"}}, action.Run{Cluster: "api"})
	if !errors.Is(err, action.ErrPermanent) || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("missing program: %v", err)
	}
}

func TestExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, shell string
		wantErr     string
		wantOut     []string
	}{
		{"success", "echo fine", "", []string{"exit code 0", "--- stdout\nfine\n--- stderr\n"}},
		{"exit 3", "echo partial; echo 'disk full' >&2; echo second >&2; exit 3", "exit code 3: disk full",
			[]string{"exit code 3 after", "--- stdout\npartial\n", "--- stderr\ndisk full\nsecond\n"}},
		{"exit 1 silent", "exit 1", "exit code 1", []string{"exit code 1 after"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := runScript(t, Config{Shell: tt.shell}, action.Run{Cluster: "web"})
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("%v\n%s", err, out)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			case tt.wantErr != "" && !errors.Is(err, action.ErrPermanent):
				t.Fatalf("a failed script is not permanent (it would be re-run): %v", err)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	t.Parallel()
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	cfg := Config{Shell: "sleep 30 & echo $! > " + pidFile + "; echo started; wait",
		Timeout: plugin.Duration(300 * time.Millisecond)}
	start := time.Now()
	out, err := runScript(t, cfg, action.Run{Cluster: "web"})
	took := time.Since(start)
	if !errors.Is(err, action.ErrPermanent) || !strings.Contains(err.Error(), "timed out after 300ms") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if took > 5*time.Second {
		t.Fatalf("the timed-out script took %s", took)
	}
	if !strings.Contains(out, "started") {
		t.Errorf("output of the killed script is lost:\n%s", out)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the script's child %d outlived its timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie waiting to be reaped is dead).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestInterrupted(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		idempotent  bool
		interrupted bool
		wantRun     bool
	}{
		{"first attempt", false, false, true},
		{"interrupted, not idempotent", false, true, false},
		{"interrupted, idempotent", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			marker := filepath.Join(t.TempDir(), "ran")
			cfg := Config{Command: []string{"touch", marker}, Idempotent: tt.idempotent}
			_, err := runScript(t, cfg, action.Run{Cluster: "web", Interrupted: tt.interrupted,
				Activity: store.Activity{ID: 3}, Attempt: 2})
			_, statErr := os.Stat(marker)
			ran := statErr == nil
			if ran != tt.wantRun {
				t.Fatalf("ran = %v, want %v (err %v)", ran, tt.wantRun, err)
			}
			if tt.wantRun {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, action.ErrPermanent) || !strings.Contains(err.Error(), "cut off by a server restart") {
				t.Fatalf("error %v, want a permanent 'cut off' error", err)
			}
		})
	}
}

func TestOutputIsBounded(t *testing.T) {
	t.Parallel()
	// 200 KiB on stdout; only maxOutput is kept.
	out, err := runScript(t, Config{Shell: "head -c 204800 /dev/zero | tr '\\0' x"}, action.Run{Cluster: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > maxOutput+1024 {
		t.Fatalf("output is %d bytes, want about %d", len(out), maxOutput)
	}
	if !strings.Contains(out, "[139264 more bytes not kept]") {
		t.Fatalf("the truncation is not said: %q", out[len(out)-200:])
	}
}

func TestEnvName(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Cluster": "CLUSTER", "NodeID": "NODE_ID", "Counter_inflight": "COUNTER_INFLIGHT",
		"Activity": "ACTIVITY", "Address": "ADDRESS", "port": "PORT",
	} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}
