package config_test

import (
	"strings"
	"testing"

	"github.com/goscaler/goscaler/internal/config"
)

const lifecycleBase = `clusters:
  - name: web
    min: 1
    max: 4
    provider: {type: process, command: [sleep, "100"]}
    load_balancer: {type: builtin, listen: "127.0.0.1:0"}
`

func TestLifecycleSteps(t *testing.T) {
	t.Parallel()
	good := lifecycleBase + `    health_check: {type: command, command: "test -e /tmp/{{.NodeID}}", max_replacing: "25%"}
    on_launch:
      - {type: local_script, shell: "echo {{.NodeID}}"}
      - {type: lb_register}
      - {type: local_script, shell: "echo after"}
    on_terminate:
      - {type: local_script, shell: "echo bye {{.Address}}"}
`
	cfg, err := config.Parse("good.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters[0]
	if len(cl.OnLaunch) != 3 || cl.OnLaunch[1].Type != config.LBRegister || cl.OnLaunch[0].Config == nil || len(cl.OnTerminate) != 1 {
		t.Errorf("on_launch/on_terminate = %+v / %+v", cl.OnLaunch, cl.OnTerminate)
	}
	if p := cl.HealthCheck.MaxReplacing; p != (config.Pace{N: 25, Percent: true}) || p.Of(4) != 1 || p.Of(8) != 2 || p.String() != "25%" {
		t.Errorf("max_replacing = %+v (of 4: %d, of 8: %d)", p, p.Of(4), p.Of(8))
	}
	if (config.Pace{N: 2}).Of(10) != 2 || (config.Pace{}).Of(10) != 0 {
		t.Error("Pace.Of is wrong for a count or no bound")
	}

	tests := []struct {
		name, src, want string
	}{
		{"lb_register twice", "    on_launch: [{type: lb_register}, {type: lb_register}]\n", "bad.yaml:7: lb_register is listed twice"},
		{"lb_register in on_terminate", "    on_terminate: [{type: lb_register}]\n", "bad.yaml:7: lb_register belongs in on_launch"},
		{"unknown step", "    on_launch:\n      - {type: nope}\n", "bad.yaml:8: unknown action type \"nope\""},
		{"command without command", "    health_check: {type: command}\n", "health_check.command is required"},
		{"command on http", "    health_check: {type: http, command: x}\n", "for type: command only"},
		{"bad pace", "    health_check: {max_replacing: \"half\"}\n", "is not a node count"},
		{"bad template", "    health_check: {type: command, command: \"{{.X\"}\n", "health_check.command:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("bad.yaml", []byte(lifecycleBase+tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	if _, err := config.Parse("nolb.yaml", []byte(strings.Replace(lifecycleBase, "    load_balancer: {type: builtin, listen: \"127.0.0.1:0\"}\n", "", 1)+
		"    on_launch: [{type: lb_register}]\n")); err == nil || !strings.Contains(err.Error(), "needs a load_balancer") {
		t.Errorf("lb_register without a load balancer: %v", err)
	}
}
