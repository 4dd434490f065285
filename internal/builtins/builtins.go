// Package builtins links every built-in plugin into the binary: importing it
// registers each counter source, provider, load balancer and action by name.
package builtins

import (
	// Actions.
	_ "github.com/goscaler/goscaler/internal/action/distscript"
	_ "github.com/goscaler/goscaler/internal/action/email"
	_ "github.com/goscaler/goscaler/internal/action/fleet"
	_ "github.com/goscaler/goscaler/internal/action/osconfig"
	_ "github.com/goscaler/goscaler/internal/action/script"
	_ "github.com/goscaler/goscaler/internal/action/webhook"
	// Counter sources.
	_ "github.com/goscaler/goscaler/internal/counter/agentcounter"
	_ "github.com/goscaler/goscaler/internal/counter/exec"
	_ "github.com/goscaler/goscaler/internal/counter/httpcounter"
	_ "github.com/goscaler/goscaler/internal/counter/jmx"
	_ "github.com/goscaler/goscaler/internal/counter/prometheus"
	_ "github.com/goscaler/goscaler/internal/counter/rabbitmq"
	_ "github.com/goscaler/goscaler/internal/counter/sshcounter"
	// Load balancers.
	_ "github.com/goscaler/goscaler/internal/lb/builtin"
	_ "github.com/goscaler/goscaler/internal/lb/elb"
	_ "github.com/goscaler/goscaler/internal/lb/elbv2"
	_ "github.com/goscaler/goscaler/internal/lb/haproxy"
	_ "github.com/goscaler/goscaler/internal/lb/octavia"
	// Providers.
	_ "github.com/goscaler/goscaler/internal/provider/aws"
	_ "github.com/goscaler/goscaler/internal/provider/openstack"
	_ "github.com/goscaler/goscaler/internal/provider/process"
	_ "github.com/goscaler/goscaler/internal/provider/static"
)
