package config_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/action/fleet"
	"github.com/goscaler/goscaler/internal/action/script"
	_ "github.com/goscaler/goscaler/internal/builtins"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/exec"
	"github.com/goscaler/goscaler/internal/counter/httpcounter"
	"github.com/goscaler/goscaler/internal/counter/sshcounter"
	"github.com/goscaler/goscaler/internal/demo"
	"github.com/goscaler/goscaler/internal/lb/builtin"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/provider/process"
	"github.com/goscaler/goscaler/internal/provider/static"
)

// noTokenEnv skips a test whose outcome depends on GOSCALER_API_TOKENS being
// unset (Parse adds its tokens to server.api_tokens).
func noTokenEnv(t *testing.T) {
	t.Helper()
	if os.Getenv("GOSCALER_API_TOKENS") != "" {
		t.Skip("GOSCALER_API_TOKENS is set")
	}
}

// problems returns the lines of an *ErrorList's message, one per problem.
func problems(t *testing.T, err error) []string {
	t.Helper()
	var list *config.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error %v (%T) is not a *config.ErrorList", err, err)
	}
	got := strings.Split(list.Error(), "\n")
	if len(got) != len(list.Errs) {
		t.Fatalf("ErrorList.Error() has %d lines for %d problems (a problem spans lines?):\n%s", len(got), len(list.Errs), list)
	}
	return got
}

var lineOf = regexp.MustCompile(`^[^:]+:(\d+): `)

// TestBadFiles loads each testdata/*.bad.yaml and expects exactly the listed
// problems, each a substring of one line "file:line: message", in that order:
// sorted by line.
func TestBadFiles(t *testing.T) {
	t.Parallel()
	noTokenEnv(t)
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_keys.bad.yaml", []string{
			`unknown_keys.bad.yaml:4: unknown key "lisen"; valid keys here: agent_tokens, api_tokens, collect_concurrency, data_dir, database, listen, log_level, orphans, reconcile_interval, retention, sample_retention, tick`,
			`unknown_keys.bad.yaml:5: unknown key "sever"; valid keys here: clusters, server`,
			`unknown_keys.bad.yaml:10: unknown key "minimum"; valid keys here: boot_timeout, counters, desired, health_check, heartbeat, load_balancer, max, min, name, on_launch, on_terminate, policies, provider, scale_in_cooldown, scale_in_stabilization, scale_out_cooldown, ssh, triggers, vars, warmup`,
			// A plugin's keys list the section's common keys too.
			`unknown_keys.bad.yaml:14: unknown key "comand"; valid keys here: command, dir, env, host, stop_timeout, type`,
			`unknown_keys.bad.yaml:18: unknown key "listen_port"; valid keys here: drain_timeout, health_interval, health_timeout, listen, type, unhealthy_threshold`,
			`unknown_keys.bad.yaml:21: unknown key "intervall"; valid keys here: command, grace_period, interval, local, max_replacing, path, timeout, type, unhealthy_threshold`,
			`unknown_keys.bad.yaml:25: unknown key "urll"; valid keys here: aggregate, headers, interval, method, name, path, scope, timeout, type, url`,
			`unknown_keys.bad.yaml:29: unknown key "intervall"; valid keys here: aggregate, command, env, interval, name, scope, shell, timeout, type`,
			`unknown_keys.bad.yaml:34: unknown key "fore"; valid keys here: above, actions, below, cooldown, counter, for, name, when`,
			`unknown_keys.bad.yaml:37: unknown key "cout"; valid keys here: count, type`,
			`unknown_keys.bad.yaml:40: condition on "queue" needs above: or below:`,
			`unknown_keys.bad.yaml:41: unknown key "bellow"; valid keys here: above, below, counter`,
		}},
		{"wrong_types.bad.yaml", []string{
			`wrong_types.bad.yaml:3: api_tokens: expected a list, got "0123456789abcdef0123"`,
			`wrong_types.bad.yaml:7: max: expected a whole number, got "many"`,
			`wrong_types.bad.yaml:8: desired: expected a whole number, got a list`,
			`wrong_types.bad.yaml:9: vars.zone: expected a string, got a list`,
			`wrong_types.bad.yaml:12: command: expected a list, got "sleep 1000"`,
			`wrong_types.bad.yaml:20: above: expected a number, got "high"`,
			// yaml.v3 alone would cut it to 1.
			`wrong_types.bad.yaml:23: count: expected a whole number, got 1.5`,
		}},
		{"bad_durations.bad.yaml", []string{
			`bad_durations.bad.yaml:10: interval: "5" is not a duration: write it with a unit, such as 30s, 1m30s or 500ms`,
			`bad_durations.bad.yaml:15: interval: "5" is not a duration`,
			`bad_durations.bad.yaml:20: for: "30 seconds" is not a duration`,
			`bad_durations.bad.yaml:21: cooldown: expected a duration such as 30s or 2m, got a list`,
		}},
		{"negative_duration.bad.yaml", []string{
			`negative_duration.bad.yaml:5: boot_timeout: duration "-5m" is negative`,
			`negative_duration.bad.yaml:9: stop_timeout: duration "-1s" is negative`,
			`negative_duration.bad.yaml:11: grace_period: duration "-30s" is negative`,
		}},
		{"bad_min_max.bad.yaml", []string{
			`bad_min_max.bad.yaml:7: min (5) is greater than max (3): lower min or raise max`,
		}},
		{"bad_sizes.bad.yaml", []string{
			`bad_sizes.bad.yaml:3: min is -1: it cannot be negative`,
			`bad_sizes.bad.yaml:4: max is 0: set max to at least 1`,
			`bad_sizes.bad.yaml:9: desired (4) is outside min..max (1..3)`,
			`bad_sizes.bad.yaml:14: desired (1) is outside min..max (2..3)`,
		}},
		{"missing_name_provider.bad.yaml", []string{
			`missing_name_provider.bad.yaml:2: cluster without a name: add name:`,
			`missing_name_provider.bad.yaml:5: cluster "noprov" has no provider: add provider:`,
			`missing_name_provider.bad.yaml:10: provider has no type: add type: with one of aws, openstack, process`,
			`missing_name_provider.bad.yaml:13: counter without a name: add name:`,
			`missing_name_provider.bad.yaml:16: trigger without a name: add name:`,
			`missing_name_provider.bad.yaml:16: unknown counter "x": this cluster defines no counters`,
			`missing_name_provider.bad.yaml:16: condition on "x" needs above: or below:`,
			`missing_name_provider.bad.yaml:16: trigger 1 has no actions: add actions:`,
		}},
		{"duplicate_names.bad.yaml", []string{
			`duplicate_names.bad.yaml:7: counter "load" is defined twice in this cluster`,
			`duplicate_names.bad.yaml:10: trigger "up" is defined twice in this cluster`,
			`duplicate_names.bad.yaml:11: cluster "web" is defined twice (first at line 2)`,
		}},
		{"invalid_names.bad.yaml", []string{
			`invalid_names.bad.yaml:2: cluster name "Web_1" must be 1-40 lowercase letters, digits and dashes`,
			`invalid_names.bad.yaml:5: cluster name "-web" must be`,
			`invalid_names.bad.yaml:9: counter name "Bad Name" must be lowercase letters, digits, dashes or underscores`,
			`invalid_names.bad.yaml:11: trigger name "UP!" must be lowercase letters, digits, dashes or underscores`,
			`invalid_names.bad.yaml:12: cluster name "a-name-that-is-far-too-long-to-be-a-cluster-name" must be 1-40`,
		}},
		{"unknown_counter.bad.yaml", []string{
			`unknown_counter.bad.yaml:10: unknown counter "lod": define it under counters: (known: load, queue)`,
			`unknown_counter.bad.yaml:17: unknown counter "queu": define it under counters: (known: load, queue)`,
			`unknown_counter.bad.yaml:24: unknown counter "load": this cluster defines no counters; define it under counters:`,
		}},
		{"above_and_below.bad.yaml", []string{
			`above_and_below.bad.yaml:11: condition on "load" sets both above: and below:; use two triggers`,
			`above_and_below.bad.yaml:15: condition on "load" needs above: or below:`,
			`above_and_below.bad.yaml:17: trigger "orphan" has no condition: add counter: with above: or below:, or a when: list`,
		}},
		{"unknown_types.bad.yaml", []string{
			`unknown_types.bad.yaml:6: unknown provider type "docker"; known types: aws, openstack, process`,
			`unknown_types.bad.yaml:7: unknown load balancer type "nginx"; known types: builtin, elb, elbv2, haproxy, octavia`,
			`unknown_types.bad.yaml:8: health_check.type "grpc" is not one of http, tcp, command, load_balancer, none`,
			`unknown_types.bad.yaml:10: unknown counter type "snmp"; known types: agent, exec, http`,
			`unknown_types.bad.yaml:17: unknown action type "page_someone"; known types: deploy_node, distributed_script, email, local_script, os_configuration, remove_node, webhook`,
		}},
		{"listen_clash.bad.yaml", []string{
			`listen_clash.bad.yaml:9: load balancer address 127.0.0.1:18080 is already used by cluster "web"`,
		}},
		{"public_listen.bad.yaml", []string{
			`public_listen.bad.yaml:2: server.listen "0.0.0.0:8080" is reachable beyond loopback but no api_tokens are set: add server.api_tokens (or GOSCALER_API_TOKENS), or listen on 127.0.0.1`,
		}},
		{"server_settings.bad.yaml", []string{
			`server_settings.bad.yaml:2: server.listen "localhost" is not host:port (for example 127.0.0.1:8080)`,
			`server_settings.bad.yaml:3: server.log_level "verbose" is not one of debug, info, warn, error`,
			`server_settings.bad.yaml:4: server.database must be a postgres:// URL or sqlite:PATH`,
			`server_settings.bad.yaml:7: API token 2 is shorter than 16 characters`,
			`server_settings.bad.yaml:8: server.reconcile_interval 100ms is too short: at least 1s`,
			`server_settings.bad.yaml:9: server.orphans "keep" is not one of terminate, report`,
		}},
		{"api_tokens.bad.yaml", []string{
			`api_tokens.bad.yaml:5: role: expected a string, got a list`,
			`api_tokens.bad.yaml:6: unknown key "rol"; valid keys here: role, token`,
			`api_tokens.bad.yaml:7: API token 4 has no token: add token:`,
			`api_tokens.bad.yaml:8: API token 5: role "admin" is not viewer or operator`,
			`api_tokens.bad.yaml:9: API token 6 is the same as token 1: keep one`,
			`api_tokens.bad.yaml:10: expected a token or a mapping {token: ..., role: viewer|operator}, got a list`,
		}},
		{"retention.bad.yaml", []string{
			`retention.bad.yaml:3: agent token 1 is shorter than 16 characters`,
			`retention.bad.yaml:4: server.sample_retention is the former name of server.retention.raw: set only retention.raw`,
			`retention.bad.yaml:6: server.retention.raw (30s) is too short: keep raw samples for at least 1m`,
			`retention.bad.yaml:7: server.retention.memory (2m0s) is longer than retention.raw (30s)`,
			`retention.bad.yaml:9: rollup step 1m0s is longer than the previous resolution is kept (30s)`,
			`retention.bad.yaml:10: rollup step 1m30s must be a multiple of the previous rollup's step (1m0s)`,
			`retention.bad.yaml:10: rollups[1].keep (1h0m0s) must be longer than the previous resolution is kept (2h0m0s)`,
			`retention.bad.yaml:11: rollup step 1.5s must be a whole number of seconds, at least 1s`,
			`retention.bad.yaml:12: server.collect_concurrency is -1: set it to at least 1`,
			`retention.bad.yaml:19: heartbeat.timeout 500ms is too short: use at least 1s`,
		}},
		{"health_check.bad.yaml", []string{
			`health_check.bad.yaml:7: health_check.path "healthz" must start with /`,
			`health_check.bad.yaml:9: health_check.timeout (5s) is longer than its interval (2s): lower timeout or raise interval`,
			`health_check.bad.yaml:10: health_check.unhealthy_threshold must be at least 1`,
		}},
		{"health_lb.bad.yaml", []string{
			`health_lb.bad.yaml:6: health_check.type load_balancer needs a load_balancer that checks its nodes (elb, elbv2): add one or use http or tcp`,
		}},
		{"syntax.bad.yaml", []string{
			// The { opens on line 4; yaml.v3 alone says line 3.
			`syntax.bad.yaml:4: YAML syntax: did not find expected ',' or '}': the { that opens a mapping here is not closed with }`,
		}},
		{"empty.bad.yaml", []string{`empty.bad.yaml:1: the file is empty: define at least server or clusters`}},
		{"comments_only.bad.yaml", []string{`comments_only.bad.yaml:1: the file is empty`}},
		{"no_clusters.bad.yaml", []string{`no_clusters.bad.yaml: no clusters defined: add at least one under clusters:`}},
		{"not_a_mapping.bad.yaml", []string{
			`not_a_mapping.bad.yaml: no clusters defined`,
			`not_a_mapping.bad.yaml:1: expected a mapping (key: value lines), got a list`,
		}},
		{"list_items.bad.yaml", []string{
			`list_items.bad.yaml:4: clusters[0]: expected a mapping (key: value lines), got "web"`,
			// The lines after a bad item are still right.
			`list_items.bad.yaml:6: max: expected a whole number, got "three"`,
			`list_items.bad.yaml:9: counters[0]: expected a mapping with type: and the plugin's own keys, got "load"`,
			`list_items.bad.yaml:12: triggers[0]: expected a mapping (key: value lines), got "up"`,
			`list_items.bad.yaml:17: actions[0]: expected a mapping with type: and the plugin's own keys, got "remove_node"`,
			`list_items.bad.yaml:18: order "random" is not oldest or newest`,
		}},
		{"duplicate_keys.bad.yaml", []string{
			`duplicate_keys.bad.yaml:6: min: set twice in the same mapping (first at line 3): keep one`,
			`duplicate_keys.bad.yaml:9: zone: set twice in the same mapping (first at line 8): keep one`,
		}},
		{"counter_decode_error.bad.yaml", []string{
			// Counter "load" stays defined: no "unknown counter" for trigger up,
			// and its source's keys are still checked.
			`counter_decode_error.bad.yaml:11: interval: "5" is not a duration`,
			`counter_decode_error.bad.yaml:13: scope: expected a string, got a list`,
			`counter_decode_error.bad.yaml:14: unknown key "methd"; valid keys here: aggregate, headers, interval, method, name, path, scope, timeout, type, url`,
			`counter_decode_error.bad.yaml:18: aggregate "median" is not one of avg, min, max, sum`,
			`counter_decode_error.bad.yaml:19: scope "everywhere" is not node or cluster`,
			`counter_decode_error.bad.yaml:20: interval 10ms is too short: use at least 100ms`,
		}},
		{"plugin_values.bad.yaml", []string{
			`plugin_values.bad.yaml:7: command: must not be empty`,
			`plugin_values.bad.yaml:10: listen: "nowhere" is not host:port`,
			`plugin_values.bad.yaml:11: unhealthy_threshold: must not be negative, got -1`,
			`plugin_values.bad.yaml:15: url: "ftp://example.com/stats" is not an http or https URL`,
			`plugin_values.bad.yaml:16: method: "DELETE" is not supported, use GET or POST`,
			`plugin_values.bad.yaml:23: order "random" is not oldest or newest`,
			`plugin_values.bad.yaml:24: count is -2: it must be positive`,
			`plugin_values.bad.yaml:25: set exactly one of command: (a list) or shell: (a line for sh -c)`,
		}},
		{"policies.bad.yaml", []string{
			`policies.bad.yaml:7: scale_in_cooldown: "5" is not a duration`,
			`policies.bad.yaml:9: policy without a name: add name:`,
			`policies.bad.yaml:14: policy "t1": unknown counter "rpm": define it under counters: (known: rps)`,
			`policies.bad.yaml:15: policy "t1": target must be a number above 0`,
			`policies.bad.yaml:16: policy "t1": tolerance 1.5 is not a fraction in [0, 1)`,
			`policies.bad.yaml:17: policy "t1" is defined twice in this cluster`,
			`policies.bad.yaml:18: unknown policy type "thermostat"; known types: predictive, scheduled, step, target_tracking`,
			`policies.bad.yaml:23: policy "s1" sets both above: and below:; use two step policies`,
			`policies.bad.yaml:24: policy "s1": adjustment "relative" is not one of change, exact, percent`,
			`policies.bad.yaml:25: policy "s1": min_magnitude applies only to adjustment: percent`,
			`policies.bad.yaml:28: policy "s1": step 2 has no adjust:`,
			`policies.bad.yaml:28: policy "s1": step 2 starts at 10, inside step 1 (0..20): steps must be in order and must not overlap`,
			`policies.bad.yaml:35: policy "s2": step 2 comes after step 1, which has no upper bound (to:)`,
			`policies.bad.yaml:38: policy "c1": schedule "0 25 * * *" is not a cron expression`,
			`policies.bad.yaml:39: policy "c1": unknown time zone "Mars/Olympus"`,
			`policies.bad.yaml:40: policy "c1": min (12) is outside the cluster's min..max (0..10)`,
			`policies.bad.yaml:41: policy "c2" sets nothing: add min:, max: or desired:`,
			`policies.bad.yaml:43: policy "c2": schedule "@every 1h" has no fixed times`,
			`policies.bad.yaml:47: policy "p1": confidence 1.2 is not in [0.5, 1)`,
			// A policy's keys list its common keys too.
			`policies.bad.yaml:52: unknown key "horizon"; valid keys here: confidence, counter, forecast_only, history_days, lead, name, per_node, target, type`,
			`policies.bad.yaml:53: policy name "Bad Name" must be lowercase letters, digits, dashes or underscores`,
			`policies.bad.yaml:57: policy "Bad Name": duration applies to min: and max:; desired: is set once at each firing`,
		}},
		{"ssh.bad.yaml", []string{
			`ssh.bad.yaml:7: ssh.port: 99999 is not a TCP port`,
			`ssh.bad.yaml:8: ssh.max_sessions: 100 is outside 1..64`,
			`ssh.bad.yaml:9: ssh.passphrase_env: "my secret" is not an environment variable name`,
			`ssh.bad.yaml:10: ssh.connect_timeout: 1ms is too short`,
			`ssh.bad.yaml:11: unknown key "identiy_files"; valid keys here: agent, connect_timeout, identity_files, idle_timeout, keepalive_interval, known_hosts, max_sessions, passphrase_env, port, trust_on_first_use, user`,
			`ssh.bad.yaml:14: hosts[1]: host 10.0.0.1 is listed twice (also hosts[0])`,
			`ssh.bad.yaml:14: hosts[2]: address: "10.0.0.3:22" is not a host name or IP address (give the SSH port as port:)`,
			`ssh.bad.yaml:21: host: a cluster-scoped ssh counter needs host: (where to run the command)`,
			`ssh.bad.yaml:23: command: set either command`,
			`ssh.bad.yaml:25: port: -1 is not a TCP port`,
			`ssh.bad.yaml:27: max (3) is more than the 2 host(s) the static provider lists: lower max or list more hosts`,
		}},
		{"many_problems.bad.yaml", []string{
			`many_problems.bad.yaml:3: server.log_level "chatty" is not one of debug, info, warn, error`,
			`many_problems.bad.yaml:4: tick: "often" is not a duration`,
			`many_problems.bad.yaml:8: min (4) is greater than max (2)`,
			`many_problems.bad.yaml:12: unknown key "cwd"`,
			`many_problems.bad.yaml:14: health_check.timeout (10s) is longer than its interval (2s)`,
			`many_problems.bad.yaml:19: interval: "fast" is not a duration`,
			`many_problems.bad.yaml:22: unknown counter "lode": define it under counters: (known: load)`,
			`many_problems.bad.yaml:24: condition on "lode" sets both above: and below:`,
			`many_problems.bad.yaml:25: for: "1 minute" is not a duration`,
			`many_problems.bad.yaml:27: unknown action type "launch_node"; known types: deploy_node, distributed_script, email, local_script, os_configuration, remove_node, webhook`,
		}},
	}

	// Every fixture is in the table.
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !slices.ContainsFunc(tests, func(tt struct {
			file string
			want []string
		}) bool {
			return tt.file == filepath.Base(f)
		}) {
			t.Errorf("%s has no entry in the table", f)
		}
	}

	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join("testdata", tt.file)
			cfg, err := config.Load(path)
			if err == nil {
				t.Fatalf("Load(%s) = %+v, want an error", path, cfg)
			}
			if cfg != nil {
				t.Errorf("Load(%s) returned a config with its error", path)
			}
			got := problems(t, err)
			if len(got) != len(tt.want) {
				t.Errorf("Load(%s) reported %d problems, want %d:\n%s", path, len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i >= len(got) {
					t.Errorf("missing problem %q", w)
					continue
				}
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q\n             want it to contain %q", i+1, got[i], w)
				}
				if !strings.HasPrefix(got[i], path) {
					t.Errorf("problem %d = %q, want it to start with the file name %s", i+1, got[i], path)
				}
			}
			// Sorted by line, problems without one first.
			last := 0
			for _, g := range got {
				n := 0
				if m := lineOf.FindStringSubmatch(g); m != nil {
					n, _ = strconv.Atoi(m[1])
				}
				if n < last {
					t.Errorf("problems are not sorted by line:\n%s", err)
					break
				}
				last = n
			}
		})
	}
}

// TestSyntaxErrorLines checks the line of YAML syntax errors: yaml.v3 reports
// its parser's problems one line early.
func TestSyntaxErrorLines(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"unclosed flow mapping", "server: {}\nclusters:\n  - {name: a\n  - name: b\n", "f.yaml:3: YAML syntax: did not find expected ',' or '}'"},
		{"unclosed flow list", "a: 1\nb: 2\nc: [1, 2\n", "f.yaml:3: YAML syntax: did not find expected ',' or ']'"},
		{"bad indentation", "server:\n  listen: x\n tick: 1s\n", "f.yaml:3: YAML syntax: did not find expected key"},
		{"list under mapping", "a: 1\nb: 2\n- c\n", "f.yaml:3: YAML syntax: did not find expected key"},
		{"key among items", "- a\nb: 1\n", "f.yaml:2: YAML syntax: did not find expected '-' indicator"},
		{"end of input", "a: [", "f.yaml:1: YAML syntax: did not find expected node content"},
		{"end of input after newline", "a: 1\nb: [1,\n", "f.yaml:2: YAML syntax: did not find expected node content"},
		// Scanner errors were right already.
		{"tab", "clusters:\n  - name: a\n\tmax: 1\n", "f.yaml:3: YAML syntax: found a tab character that violates indentation: indent with spaces, not tabs"},
		{"value in plain scalar", "a: 1\n  b: 2\n", "f.yaml:2: YAML syntax: mapping values are not allowed in this context"},
		{"bad character", "a: 1\nb: 2\nc: @x\n", "f.yaml:3: YAML syntax: found character that cannot start any token"},
		{"unterminated quote", "a: 1\nb: \"x\n", "f.yaml:2: YAML syntax: found unexpected end of stream"},
		{"unknown anchor", "a: *nope\n", "f.yaml: YAML syntax: unknown anchor 'nope' referenced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("f.yaml", []byte(tt.src))
			got := problems(t, err)
			if len(got) != 1 || !strings.HasPrefix(got[0], tt.want) {
				t.Errorf("Parse(%q) = %q, want one problem starting %q", tt.src, got, tt.want)
			}
		})
	}
}

// TestParseProblemTypes checks problems that need no fixture of their own.
func TestParseProblemTypes(t *testing.T) {
	t.Parallel()
	noTokenEnv(t)
	const cluster = "clusters:\n  - name: web\n    max: 1\n    provider: {type: process, command: [sleep, \"1\"]}\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"null cluster", "clusters:\n  -\n", []string{"f.yaml:2: cluster 1 is empty"}},
		{"null counter and trigger", cluster + "    counters: [~]\n    triggers: [~]\n", []string{"f.yaml:5: empty counter", "f.yaml:6: empty trigger"}},
		{"null condition and action", cluster + "    counters: [{name: c, type: exec, shell: x}]\n" +
			"    triggers:\n      - name: t\n        when: [~]\n        actions: [~]\n",
			[]string{"f.yaml:8: empty condition", "f.yaml:9: empty action"}},
		{"provider not a mapping", "clusters:\n  - name: web\n    max: 1\n    provider: process\n",
			[]string{`f.yaml:4: provider: expected a mapping with type: and the plugin's own keys, got "process"`}},
		{"no type on counter", cluster + "    counters: [{name: c, shell: x}]\n",
			[]string{"f.yaml:5: counter has no type: add type: with one of agent, exec, http"}},
		{"bad vars template", cluster + "    vars: {a: \"{{.x\"}\n", []string{"f.yaml:5: vars.a: template"}},
		{"counter timeout longer than interval", cluster + "    counters:\n      - {name: c, type: exec, shell: x, interval: 1s, timeout: 2s}\n",
			[]string{"f.yaml:6: timeout (2s) is longer than the interval (1s): readings would pile up"}},
		{"block list as scalar", "clusters:\n  - name: web\n    max:\n      - 1\n    provider: {type: process, command: [sleep, \"1\"]}\n",
			[]string{"f.yaml:4: max: expected a whole number, got a list"}},
		{"uint and string fine", cluster + "    vars: {n: 3, b: true}\n", nil},
		{"null policy", cluster + "    policies: [~]\n", []string{"f.yaml:5: empty policy"}},
		{"policy not a mapping", cluster + "    policies: [thermostat]\n",
			[]string{`f.yaml:5: policies[0]: expected a mapping with type: and the plugin's own keys, got "thermostat"`}},
		{"policy without type", cluster + "    policies: [{name: p}]\n",
			[]string{`f.yaml:5: policy "p" has no type: add type: with one of predictive, scheduled, step, target_tracking`}},
		{"policy keys of the wrong type", cluster + "    counters: [{name: c, type: exec, shell: x}]\n    policies: [{name: p, type: target_tracking, counter: c, target: high}]\n",
			[]string{`f.yaml:6: target: expected a number, got "high"`}},
		{"null step", cluster + "    counters: [{name: c, type: exec, shell: x}]\n    policies: [{name: p, type: step, counter: c, above: 1, steps: [~]}]\n",
			[]string{`f.yaml:6: policy "p": step 1 is empty`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Parse("f.yaml", []byte(tt.src))
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			got := problems(t, err)
			if len(got) != len(tt.want) {
				t.Errorf("got %d problems, want %d:\n%s", len(got), len(tt.want), err)
			}
			for i, w := range tt.want {
				if i < len(got) && !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d = %q, want it to start %q", i+1, got[i], w)
				}
			}
		})
	}
}

func TestGoodFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(f)
			if err != nil {
				t.Fatalf("Load(%s):\n%v", f, err)
			}
			if cfg.File != f {
				t.Errorf("File = %q, want %q", cfg.File, f)
			}
			for _, cl := range cfg.Clusters {
				if cl.ProviderConfig == nil {
					t.Errorf("cluster %s: ProviderConfig not decoded", cl.Name)
				}
				if (cl.LoadBalancer == nil) != (cl.BalancerConfig == nil) {
					t.Errorf("cluster %s: LoadBalancer %v but BalancerConfig %v", cl.Name, cl.LoadBalancer, cl.BalancerConfig)
				}
				for _, k := range cl.Counters {
					if k.Source == nil {
						t.Errorf("cluster %s counter %s: Source not decoded", cl.Name, k.Name)
					}
				}
				for _, tr := range cl.Triggers {
					for _, a := range tr.Actions {
						if a.Config == nil {
							t.Errorf("cluster %s trigger %s: action %s not decoded", cl.Name, tr.Name, a.Type)
						}
					}
				}
			}
		})
	}
}

func TestDemoConfig(t *testing.T) {
	t.Parallel()
	src := strings.NewReplacer("@LISTEN@", "127.0.0.1:0", "@DATA@", t.TempDir(), "@LB@", "127.0.0.1:0").Replace(demo.Config)
	if strings.Contains(src, "@") {
		t.Fatalf("the demo configuration has a placeholder left:\n%s", src)
	}
	cfg, err := config.Parse("demo.yaml", []byte(src))
	if err != nil {
		t.Fatalf("the demo configuration is invalid:\n%v", err)
	}
	if len(cfg.Clusters) != 1 {
		t.Fatalf("demo has %d clusters, want 1", len(cfg.Clusters))
	}
	cl := cfg.Clusters[0]
	if cl.Name != "demo" || cl.Min != 2 || cl.Max != 6 || cl.DesiredOrMin() != 2 {
		t.Errorf("demo cluster = %s %d..%d desired %d", cl.Name, cl.Min, cl.Max, cl.DesiredOrMin())
	}
	if k := cl.Counter("inflight"); k == nil || k.Scope != counter.ScopeNode || k.Aggregate != config.AggAvg {
		t.Errorf("demo counter inflight = %+v, want node-scoped avg", k)
	}
	for _, name := range []string{"scale-out", "scale-in"} {
		if tr := cl.Trigger(name); tr == nil || len(tr.Conditions()) != 1 || len(tr.Actions) != 1 {
			t.Errorf("demo trigger %s = %+v", name, tr)
		}
	}
}

// TestFullExample checks that every key of full.good.yaml reaches its field.
func TestFullExample(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Server
	if s.Listen != "0.0.0.0:9090" || s.DataDir != "/var/lib/goscaler" || s.Database != "postgres://goscaler@db.internal/goscaler" ||
		s.LogLevel != "debug" || s.Level() != slog.LevelDebug || s.Tick.D() != 2*time.Second || s.CollectConcurrency != 64 ||
		s.ReconcileInterval.D() != 5*time.Minute || s.Orphans != "report" {
		t.Errorf("server = %+v", s)
	}
	wantTokens := []struct {
		token string
		role  config.Role
		line  int
	}{
		{"3f6c0a51e2d94b7a8c1e5d2f9a0b4c6e", config.RoleOperator, 7},
		{"9b1d3e5f7a2c4e6a8b0d2f4a6c8e0a1b", config.RoleViewer, 8},
		{"5e7a9c1b3d5f7a9c2e4a6c8e0b2d4f6a", config.RoleOperator, 9},
	}
	if len(s.APITokens) != len(wantTokens) {
		t.Fatalf("api_tokens: %d entries, want %d", len(s.APITokens), len(wantTokens))
	}
	for i, w := range wantTokens {
		if got := s.APITokens[i]; got.Token != w.token || got.Role != w.role || got.Line != w.line {
			t.Errorf("api_tokens[%d] = role %s line %d, want role %s line %d (token match %v)", i, got.Role, got.Line, w.role, w.line, got.Token == w.token)
		}
	}
	if str := fmt.Sprint(s.APITokens[1]); strings.Contains(str, "9b1d3e5f") || str != "viewer token" {
		t.Errorf("an API token prints as %q: it must name its role, never the token", str)
	}
	if !slices.Contains(s.AgentTokens, "9b1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f") {
		t.Errorf("agent_tokens = %q", s.AgentTokens)
	}
	wantRet := config.Retention{Raw: plugin.Duration(2 * time.Hour), Memory: plugin.Duration(5 * time.Minute), Rollups: []config.RollupTier{
		{Step: plugin.Duration(30 * time.Second), Keep: plugin.Duration(12 * time.Hour)},
		{Step: plugin.Duration(5 * time.Minute), Keep: plugin.Duration(168 * time.Hour)},
		{Step: plugin.Duration(time.Hour), Keep: plugin.Duration(8760 * time.Hour)},
	}}
	if !reflect.DeepEqual(s.Retention, wantRet) {
		t.Errorf("retention = %+v, want %+v", s.Retention, wantRet)
	}
	if len(cfg.Clusters) != 2 {
		t.Fatalf("%d clusters, want 2", len(cfg.Clusters))
	}
	web := cfg.Clusters[0]
	if web.Name != "web" || web.Min != 2 || web.Max != 10 || web.Desired == nil || *web.Desired != 3 || web.DesiredOrMin() != 3 {
		t.Errorf("web sizes = %d..%d desired %v", web.Min, web.Max, web.Desired)
	}
	if web.Line != 26 || web.Vars["region"] != "eu-west" || web.Vars["tier"] != "{{.Cluster}}-frontend" {
		t.Errorf("web line %d vars %v", web.Line, web.Vars)
	}
	if web.BootTimeout.D() != time.Minute {
		t.Errorf("boot_timeout = %s", web.BootTimeout)
	}
	if hb := web.Heartbeat; hb.Timeout.D() != 20*time.Second || hb.GracePeriod.D() != 10*time.Second {
		t.Errorf("heartbeat = %+v", hb)
	}

	pc, ok := web.ProviderConfig.(*process.Config)
	if !ok {
		t.Fatalf("ProviderConfig is %T", web.ProviderConfig)
	}
	if web.Provider.Type != "process" || len(pc.Command) != 4 || pc.Env["REGION"] != "{{.region}}" || pc.Dir != "/srv/web" ||
		pc.Host != "127.0.0.2" || pc.StopTimeout.D() != 15*time.Second {
		t.Errorf("provider = %+v", pc)
	}
	bc, ok := web.BalancerConfig.(*builtin.Config)
	if !ok {
		t.Fatalf("BalancerConfig is %T", web.BalancerConfig)
	}
	if bc.Listen != "127.0.0.1:18080" || bc.HealthInterval.D() != 3*time.Second || bc.HealthTimeout.D() != 500*time.Millisecond ||
		bc.UnhealthyThreshold != 4 || bc.DrainTimeout.D() != 45*time.Second {
		t.Errorf("load balancer = %+v", bc)
	}
	want := config.HealthCheck{Type: "http", Path: "/ready", Interval: plugin.Duration(3 * time.Second), Timeout: plugin.Duration(2 * time.Second),
		UnhealthyThreshold: 5, GracePeriod: plugin.Duration(20 * time.Second)}
	if web.HealthCheck != want {
		t.Errorf("health_check = %+v, want %+v", web.HealthCheck, want)
	}

	if len(web.Counters) != 3 {
		t.Fatalf("%d counters, want 3", len(web.Counters))
	}
	in := web.Counter("inflight")
	hc, ok := in.Source.(*httpcounter.Config)
	if !ok {
		t.Fatalf("inflight source is %T", in.Source)
	}
	if in.Type != "http" || in.Scope != counter.ScopeNode || in.Aggregate != config.AggMax || in.Interval.D() != 2*time.Second ||
		in.Timeout.D() != 1500*time.Millisecond || in.Line != 60 {
		t.Errorf("inflight = %+v", in)
	}
	if hc.URL != "http://{{.Address}}/stats" || hc.Path != "stats.inflight" || hc.Method != "POST" || hc.Headers["Authorization"] != "Bearer {{.region}}" {
		t.Errorf("inflight source = %+v", hc)
	}
	q := web.Counter("queue_depth")
	ec, ok := q.Source.(*exec.Config)
	if !ok {
		t.Fatalf("queue_depth source is %T", q.Source)
	}
	if q.Scope != counter.ScopeCluster || q.Aggregate != config.AggSum || q.Interval.D() != 10*time.Second || q.Timeout.D() != 3*time.Second ||
		len(ec.Command) != 3 || ec.Env["QUEUE"] != "jobs" {
		t.Errorf("queue_depth = %+v, source %+v", q, ec)
	}
	if b := web.Counter("backlog"); b.Source.(*exec.Config).Shell != "echo 3" {
		t.Errorf("backlog source = %+v", b.Source)
	}
	if web.Counter("nope") != nil || web.Trigger("nope") != nil {
		t.Error("Counter/Trigger found a name that is not defined")
	}

	out := web.Trigger("scale-out")
	if out.For.D() != time.Minute || out.Cooldown.D() != 5*time.Minute || len(out.Actions) != 2 {
		t.Fatalf("scale-out = %+v", out)
	}
	if got := out.Conditions(); len(got) != 1 || got[0].String() != "inflight > 20" || got[0].Line != out.Line {
		t.Errorf("scale-out conditions = %+v", got)
	}
	if d, ok := out.Actions[0].Config.(*fleet.DeployConfig); !ok || d.Count != 2 || out.Actions[0].Line != 90 {
		t.Errorf("deploy action = %#v line %d", out.Actions[0].Config, out.Actions[0].Line)
	}
	sc, ok := out.Actions[1].Config.(*script.Config)
	if !ok || len(sc.Command) != 2 || sc.Env["CHANNEL"] != "ops" || sc.Dir != "/tmp" || sc.Timeout.D() != 30*time.Second || !sc.Idempotent {
		t.Errorf("local_script action = %#v", out.Actions[1].Config)
	}
	in2 := web.Trigger("scale-in")
	conds := in2.Conditions()
	if len(conds) != 2 || conds[0].String() != "inflight < 2" || conds[1].String() != "queue_depth < 0.5" || conds[1].Line != 103 {
		t.Errorf("scale-in conditions = %+v", conds)
	}
	if r, ok := in2.Actions[0].Config.(*fleet.RemoveConfig); !ok || r.Count != 1 || r.Order != fleet.OrderNewest {
		t.Errorf("remove action = %#v", in2.Actions[0].Config)
	}

	worker := cfg.Clusters[1]
	if worker.HealthCheck.Type != "none" || worker.LoadBalancer != nil || worker.BalancerConfig != nil || worker.Desired != nil || worker.DesiredOrMin() != 0 {
		t.Errorf("worker = %+v", worker)
	}
}

// TestPolicies checks that every key of policies.good.yaml reaches its field,
// and the defaults of what it leaves out.
func TestPolicies(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("testdata/policies.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Clusters[0]
	want := config.ClusterPolicies{ScaleOutCooldown: 30 * time.Second, ScaleInCooldown: 2 * time.Minute, Warmup: time.Minute,
		ScaleInStabilization: 10 * time.Minute}
	if got := web.PolicySettings(); got != want {
		t.Errorf("settings %+v, want %+v", got, want)
	}
	if len(web.Policies) != 7 || !web.HasPolicies() {
		t.Fatalf("%d policies", len(web.Policies))
	}
	tt := web.Policy("rps-target").TargetTracking
	if tt == nil || tt.Counter != "rps" || tt.Target != 100 || *tt.Tolerance != 0.05 || !*tt.PerNode || tt.DisableScaleIn {
		t.Errorf("target_tracking %+v", tt)
	}
	st := web.Policy("queue-steps").Step
	if st == nil || *st.Above != 100 || st.For.D() != time.Minute || st.Adjustment != config.AdjustPercent || st.MinMagnitude != 2 ||
		len(st.Steps) != 2 || *st.Steps[0].To != 200 || st.Steps[1].To != nil || st.Steps[1].Adjust != 50 {
		t.Errorf("step %+v", st)
	}
	if th, above := st.Threshold(); th != 100 || !above {
		t.Errorf("Threshold() = %g %v", th, above)
	}
	idle := web.Policy("idle").Step
	if th, above := idle.Threshold(); th != 1 || above || idle.Adjustment != config.AdjustChange || idle.Steps[0].Adjust != -1 {
		t.Errorf("idle %+v", idle)
	}
	sc := web.Policy("office-hours").Scheduled
	if sc == nil || sc.Cron == nil || sc.Location.String() != "Europe/Paris" || sc.Duration.D() != 10*time.Hour || *sc.Min != 6 || *sc.Max != 20 || sc.Desired != nil {
		t.Errorf("scheduled %+v", sc)
	}
	next := sc.Cron.Next(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)) // a Saturday
	if want := time.Date(2026, 11, 23, 7, 0, 0, 0, time.UTC); !next.Equal(want) {
		t.Errorf("next firing %s, want %s (08:00 in Paris)", next.UTC(), want)
	}
	if m := web.Policy("morning").Scheduled; m.Location != time.UTC || *m.Desired != 4 {
		t.Errorf("morning %+v", m)
	}
	pr := web.Policy("forecast").Predictive
	if pr == nil || pr.Target != 90 || !*pr.PerNode || pr.Confidence != 0.95 || pr.HistoryDays != 7 || pr.Lead.D() != 5*time.Minute || !pr.ForecastOnly {
		t.Errorf("predictive %+v", pr)
	}
	// Borrowed from rps-target; defaults.
	b := web.Policy("forecast-borrowed").Predictive
	if b.Target != 100 || !*b.PerNode || b.Confidence != config.DefaultConfidence || b.HistoryDays != config.DefaultHistoryDays || b.Lead != 0 {
		t.Errorf("predictive defaults %+v", b)
	}
	for _, name := range []string{"rps-target", "queue-steps", "forecast"} {
		if p := web.Policy(name); p.Counter() == "" {
			t.Errorf("%s reads no counter", name)
		}
	}
	if web.Policy("office-hours").Counter() != "" || web.Policy("nope") != nil {
		t.Error("Counter() or Policy() wrong")
	}
	// A cluster without settings gets the defaults; a counter summed over
	// nodes is a total.
	def, err := config.Parse("d.yaml", []byte("clusters:\n  - name: w\n    max: 3\n    provider: {type: process, command: [x]}\n"+
		"    counters: [{name: q, type: exec, shell: x, scope: node, aggregate: sum}]\n    policies: [{name: p, type: target_tracking, counter: q, target: 5}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := def.Clusters[0]
	if got := d.PolicySettings(); got != (config.ClusterPolicies{ScaleInCooldown: config.DefaultScaleInCooldown, ScaleInStabilization: config.DefaultScaleInStabilization}) {
		t.Errorf("default settings %+v", got)
	}
	if p := d.Policies[0].TargetTracking; *p.PerNode || *p.Tolerance != config.DefaultTolerance {
		t.Errorf("a summed counter is per node, or tolerance not defaulted: %+v", p)
	}
}

// TestDefaults checks the defaults applied to what defaults.good.yaml leaves out.
func TestDefaults(t *testing.T) {
	t.Parallel()
	noTokenEnv(t)
	cfg, err := config.Load("testdata/defaults.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := config.Server{Listen: config.DefaultListen, DataDir: config.DefaultDataDir, LogLevel: "info",
		Retention:          config.Retention{Raw: plugin.Duration(time.Hour), Memory: plugin.Duration(10 * time.Minute), Rollups: config.DefaultRollups()},
		CollectConcurrency: 256, Tick: plugin.Duration(time.Second),
		ReconcileInterval: plugin.Duration(2 * time.Minute), Orphans: config.OrphansTerminate}
	if s := cfg.Server; s.Listen != want.Listen || s.DataDir != want.DataDir || s.LogLevel != want.LogLevel ||
		!reflect.DeepEqual(s.Retention, want.Retention) || s.CollectConcurrency != want.CollectConcurrency ||
		s.Tick != want.Tick || s.Database != "" || len(s.APITokens) != 0 || len(s.AgentTokens) != 0 ||
		s.ReconcileInterval != want.ReconcileInterval || s.Orphans != want.Orphans {
		t.Errorf("server = %+v, want %+v", s, want)
	}
	if web := cfg.Clusters[0]; web.Heartbeat.Timeout != 0 {
		t.Errorf("heartbeat = %+v, want none", web.Heartbeat)
	}
	if cfg.Server.Level() != slog.LevelInfo {
		t.Errorf("Level() = %v", cfg.Server.Level())
	}

	web, api := cfg.Clusters[0], cfg.Clusters[1]
	if web.Min != 0 || web.Desired != nil || web.DesiredOrMin() != 0 || web.BootTimeout.D() != 2*time.Minute {
		t.Errorf("web = min %d desired %v boot_timeout %s", web.Min, web.Desired, web.BootTimeout)
	}
	// Without a load balancer the health check is tcp, with one http.
	tcp := config.HealthCheck{Type: "tcp", Interval: plugin.Duration(2 * time.Second), Timeout: plugin.Duration(time.Second), UnhealthyThreshold: 3}
	if web.HealthCheck != tcp {
		t.Errorf("web health_check = %+v, want %+v", web.HealthCheck, tcp)
	}
	http := tcp
	http.Type, http.Path = "http", "/healthz"
	if api.HealthCheck != http {
		t.Errorf("api health_check = %+v, want %+v", api.HealthCheck, http)
	}
	if api.DesiredOrMin() != 1 || api.BootTimeout.D() != 2*time.Minute {
		t.Errorf("api desired %d boot_timeout %s", api.DesiredOrMin(), api.BootTimeout)
	}

	tests := []struct {
		counter string
		scope   counter.Scope
	}{
		{"load", counter.ScopeCluster},  // exec
		{"inflight", counter.ScopeNode}, // http with {{.Address}}
		{"total", counter.ScopeCluster}, // http with a fixed URL
	}
	for _, tt := range tests {
		k := web.Counter(tt.counter)
		if k == nil {
			t.Fatalf("no counter %s", tt.counter)
		}
		if k.Interval.D() != 5*time.Second || k.Timeout.D() != 5*time.Second || k.Aggregate != config.AggAvg || k.Scope != tt.scope {
			t.Errorf("counter %s = interval %s timeout %s aggregate %s scope %s, want 5s 5s avg %s",
				k.Name, k.Interval, k.Timeout, k.Aggregate, k.Scope, tt.scope)
		}
	}
	up := web.Trigger("up")
	if up.For != 0 || up.Cooldown != 0 {
		t.Errorf("trigger up for %s cooldown %s, want 0", up.For, up.Cooldown)
	}
	if d, ok := up.Actions[0].Config.(*fleet.DeployConfig); !ok || d.Count != 1 {
		t.Errorf("deploy_node default = %#v, want count 1", up.Actions[0].Config)
	}
	if r, ok := up.Actions[1].Config.(*fleet.RemoveConfig); !ok || r.Count != 1 || r.Order != fleet.OrderOldest {
		t.Errorf("remove_node default = %#v, want count 1 order oldest", up.Actions[1].Config)
	}
	if got := string(up.Actions[0].ParamsJSON()); got != `{"count":1}` {
		t.Errorf("ParamsJSON() = %s", got)
	}
}

// TestAPITokensFromEnv cannot run in parallel: it sets the environment.
func TestAPITokensFromEnv(t *testing.T) {
	t.Setenv("GOSCALER_API_TOKENS", " 0123456789abcdef0123 ,, short ,")
	src, err := os.ReadFile("testdata/public_listen.bad.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, err = config.Parse("public.yaml", src)
	// The public listen is fine now, the short token is not.
	got := problems(t, err)
	if len(got) != 1 || !strings.HasPrefix(got[0], "public.yaml: token 2 of GOSCALER_API_TOKENS is shorter than 16 characters") {
		t.Errorf("Parse with GOSCALER_API_TOKENS = %q", got)
	}

	t.Setenv("GOSCALER_API_TOKENS", "0123456789abcdef0123")
	cfg, err := config.Parse("public.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if toks := cfg.Server.APITokens; len(toks) != 1 || toks[0].Token != "0123456789abcdef0123" || toks[0].Role != config.RoleOperator {
		t.Errorf("APITokens from GOSCALER_API_TOKENS = %d entries, want one operator token", len(toks))
	}
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()
	_, err := config.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "reading configuration") {
		t.Errorf("Load(missing) = %v", err)
	}
}

func TestErrorList(t *testing.T) {
	t.Parallel()
	inner := errors.New("inner")
	list := &config.ErrorList{File: "c.yaml", Errs: []error{
		errors.New("no line"),
		&plugin.LineError{Line: 0, Err: errors.New("line zero")},
		&plugin.LineError{Line: 7, Err: inner},
	}}
	want := "c.yaml: no line\nc.yaml: line zero\nc.yaml:7: inner"
	if list.Error() != want {
		t.Errorf("Error() = %q, want %q", list.Error(), want)
	}
	if !errors.Is(list, inner) {
		t.Error("errors.Is does not find a problem through the list")
	}
	var le *plugin.LineError
	if !errors.As(list, &le) || le.Line != 0 {
		t.Errorf("errors.As = %+v", le)
	}
}

func TestCondition(t *testing.T) {
	t.Parallel()
	five, one := 5.0, 1.5
	tests := []struct {
		c      config.Condition
		v      float64
		past   bool
		string string
	}{
		{config.Condition{Counter: "q", Above: &five}, 6, true, "q > 5"},
		{config.Condition{Counter: "q", Above: &five}, 5, false, "q > 5"},
		{config.Condition{Counter: "q", Below: &one}, 1, true, "q < 1.5"},
		{config.Condition{Counter: "q", Below: &one}, 1.5, false, "q < 1.5"},
		{config.Condition{Counter: "q"}, 0, false, "q"},
	}
	for _, tt := range tests {
		if got := tt.c.Past(tt.v); got != tt.past {
			t.Errorf("%s .Past(%g) = %t", tt.c, tt.v, got)
		}
		if got := tt.c.String(); got != tt.string {
			t.Errorf("String() = %q, want %q", got, tt.string)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	t.Parallel()
	tests := map[string]bool{
		"127.0.0.1:8080": true, "127.0.0.2:1": true, "localhost:80": true, "[::1]:80": true,
		"0.0.0.0:8080": false, ":8080": false, "10.0.0.1:80": false, "example.com:80": false, "127.0.0.1": false,
	}
	for addr, want := range tests {
		if got := config.IsLoopback(addr); got != want {
			t.Errorf("IsLoopback(%q) = %t, want %t", addr, got, want)
		}
	}
}

func TestServerLevel(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError} {
		if got := (config.Server{LogLevel: in}).Level(); got != want {
			t.Errorf("Level(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestActionParamsJSON(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("testdata/full.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a := cfg.Clusters[0].Trigger("scale-out").Actions[1]
	var got map[string]any
	if err := json.Unmarshal(a.ParamsJSON(), &got); err != nil {
		t.Fatalf("ParamsJSON() = %s: %v", a.ParamsJSON(), err)
	}
	if got["timeout"] != "30s" || got["idempotent"] != true || got["dir"] != "/tmp" {
		t.Errorf("ParamsJSON() = %s", a.ParamsJSON())
	}
}

// TestAgentTokensFromEnv cannot run in parallel: it sets the environment.
func TestAgentTokensFromEnv(t *testing.T) {
	t.Setenv("GOSCALER_AGENT_TOKENS", "abcdef0123456789abcdef, tiny")
	src := []byte("clusters:\n  - {name: web, max: 1, provider: {type: process, command: [sleep, \"9\"]}}\n")
	got := problems(t, func() error { _, err := config.Parse("agent.yaml", src); return err }())
	if len(got) != 1 || !strings.HasPrefix(got[0], "agent.yaml: token 2 of GOSCALER_AGENT_TOKENS is shorter than 16 characters") {
		t.Errorf("Parse with GOSCALER_AGENT_TOKENS = %q", got)
	}
	t.Setenv("GOSCALER_AGENT_TOKENS", "abcdef0123456789abcdef")
	cfg, err := config.Parse("agent.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Server.AgentTokens, []string{"abcdef0123456789abcdef"}) || len(cfg.Server.APITokens) != 0 {
		t.Errorf("AgentTokens = %q, APITokens = %q", cfg.Server.AgentTokens, cfg.Server.APITokens)
	}
}

// TestSampleRetentionAlias checks that the former server.sample_retention
// still sets the raw retention (and bounds the memory window).
func TestSampleRetentionAlias(t *testing.T) {
	t.Parallel()
	src := []byte("server: {sample_retention: 5m}\nclusters:\n  - {name: web, max: 1, provider: {type: process, command: [sleep, \"9\"]}}\n")
	cfg, err := config.Parse("alias.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Server.Retention; r.Raw.D() != 5*time.Minute || r.Memory.D() != 5*time.Minute || len(r.Rollups) != 2 {
		t.Errorf("retention = %+v, want raw 5m, memory 5m, the default rollups", r)
	}
	src = []byte("server: {retention: {rollups: []}}\nclusters:\n  - {name: web, max: 1, provider: {type: process, command: [sleep, \"9\"]}}\n")
	cfg, err = config.Parse("norollups.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Server.Retention; len(r.Rollups) != 0 || r.Raw.D() != time.Hour {
		t.Errorf("retention = %+v, want no rollups", r)
	}
}

// TestSSHExample checks that the ssh section, the static provider and the
// ssh counters of ssh.good.yaml reach their fields.
func TestSSHExample(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("testdata/ssh.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cl := cfg.Clusters[0]
	s := cl.SSH
	if s == nil || s.User != "deploy" || s.Port != 2222 || len(s.IdentityFiles) != 1 || s.PassphraseEnv != "GOSCALER_SSH_PASSPHRASE" ||
		s.Agent == nil || *s.Agent || s.KnownHosts != "/etc/goscaler/known_hosts" || !s.TrustOnFirstUse ||
		s.ConnectTimeout.D() != 5*time.Second || s.MaxSessions != 4 || s.KeepaliveInterval.D() != 10*time.Second || s.IdleTimeout.D() != 2*time.Minute {
		t.Errorf("ssh section %+v", s)
	}
	st, ok := cl.ProviderConfig.(*static.Config)
	if !ok || st.ServicePort != 8080 || len(st.Hosts) != 3 || st.Hosts[1].User != "admin" || st.Hosts[2].ServicePort != 9090 {
		t.Errorf("static provider %+v", cl.ProviderConfig)
	}
	queue := cl.Counter("queue")
	if src, ok := queue.Source.(*sshcounter.Config); !ok || src.Host != "db1.example.com:2200" || queue.Scope != counter.ScopeCluster {
		t.Errorf("queue counter %+v", queue)
	}
	if load := cl.Counter("load"); load.Scope != counter.ScopeNode {
		t.Errorf("an ssh counter's default scope is %q, want node", load.Scope)
	}
}
