package jmx

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/plugin"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		want []string // one substring per problem; nil: valid
	}{
		{name: "jolokia", yaml: "protocol: jolokia\nurl: http://{{.Host}}:8778/jolokia\nmbean: java.lang:type=Memory\nattribute: HeapMemoryUsage\npath: used\n"},
		{name: "jmxproxy with a password file", yaml: "protocol: jmxproxy\nurl: http://127.0.0.1:8080/manager/jmxproxy\nmbean: 'Catalina:type=ThreadPool,name=\"http-nio-{{.Port}}\"'\nattribute: currentThreadsBusy\nuser: mon\npassword_file: /etc/goscaler/jmx.pw\n"},
		{name: "password from the environment", yaml: "protocol: jolokia\nurl: http://h/jolokia\nmbean: a:b=c\nattribute: X\nuser: mon\npassword_env: JMX_PW\n"},
		{name: "nothing", yaml: "{}\n", want: []string{
			"protocol: required: jolokia (a Jolokia agent) or jmxproxy",
			`url: required, such as "http://{{.Host}}:8778/jolokia"`,
			`mbean: required, an MBean's object name such as "java.lang:type=Memory"`,
			`attribute: required, such as "HeapMemoryUsage"`}},
		{name: "bad values", yaml: "protocol: rmi\nurl: ftp://h/x\nmbean: Memory\nattribute: A,B\npath: a..b\n", want: []string{
			`protocol: "rmi" is not supported, use jolokia or jmxproxy`,
			`url: "ftp://h/x" is not an http or https URL`,
			`mbean: "Memory" is not an MBean object name: write domain:key=value`,
			`attribute: "A,B" names more than one attribute`,
			`path: "a..b" has an empty segment`}},
		{name: "bad templates", yaml: "protocol: jmxproxy\nurl: 'http://{{.Address'\nmbean: '{{if}}'\nattribute: X\n", want: []string{
			`url: template "http://{{.Address"`, `mbean: template "{{if}}"`}},
		{name: "jmxproxy reads one level", yaml: "protocol: jmxproxy\nurl: http://h/manager/jmxproxy\nmbean: a:b=c\nattribute: X\npath: a.b\n", want: []string{
			`path: "a.b" has 2 levels; jmxproxy reads one item`}},
		{name: "password in the URL", yaml: "protocol: jolokia\nurl: http://mon:s3cret@h/jolokia\nmbean: a:b=c\nattribute: X\n", want: []string{
			`url: "http://mon:xxxxx@h/jolokia" holds credentials; set user: and password_env: or password_file: instead`}},
		{name: "user without a password", yaml: "protocol: jolokia\nurl: http://h/jolokia\nmbean: a:b=c\nattribute: X\nuser: mon\n", want: []string{
			`password_env: the password of user "mon" is required`}},
		{name: "password without a user", yaml: "protocol: jolokia\nurl: http://h/jolokia\nmbean: a:b=c\nattribute: X\npassword_env: PW\n", want: []string{
			"user: required with a password"}},
		{name: "two password sources", yaml: "protocol: jolokia\nurl: http://h/jolokia\nmbean: a:b=c\nattribute: X\nuser: u\npassword_env: 'BAD NAME'\npassword_file: /x\n", want: []string{
			"password_file: set either password_env or password_file, not both",
			`password_env: "BAD NAME" is not an environment variable name`}},
		{name: "a password is not a key", yaml: "protocol: jolokia\nurl: http://h/jolokia\nmbean: a:b=c\nattribute: X\npassword: s3cret\n", want: []string{
			`unknown key "password"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var node yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &node); err != nil {
				t.Fatal(err)
			}
			_, err := counter.Registry.Decode("jmx", &node)
			got := plugin.Flatten(err)
			if len(got) != len(tt.want) {
				t.Fatalf("Decode = %q; want %d problems %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Error(), w) {
					t.Errorf("problem %d = %q; want %q", i+1, got[i], w)
				}
			}
			for _, e := range got {
				if strings.Contains(e.Error(), "s3cret") {
					t.Errorf("a problem shows the password: %v", e)
				}
			}
		})
	}
}

func TestDefaultScope(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  Config
		want counter.Scope
	}{
		{Config{URL: "http://{{.Host}}:8778/jolokia", MBean: "a:b=c"}, counter.ScopeNode},
		{Config{URL: "http://jvm:8778/jolokia", MBean: `Catalina:name="http-{{.Port}}"`}, counter.ScopeNode},
		{Config{URL: "http://jvm:8778/jolokia", MBean: "a:b={{.Cluster}}"}, counter.ScopeCluster},
	}
	for _, tt := range tests {
		if got := tt.cfg.DefaultScope(); got != tt.want {
			t.Errorf("DefaultScope(%s, %s) = %s, want %s", tt.cfg.URL, tt.cfg.MBean, got, tt.want)
		}
	}
}

func TestParseJMXProxy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body, mbean, att, key string
		want                  float64
		wantErr               string
	}{
		{body: "OK - Attribute get 'java.lang:type=Threading' - ThreadCount = 20\n", mbean: "java.lang:type=Threading", att: "ThreadCount", want: 20},
		{body: "OK - Attribute get 'a:b=c' - X - key 'used' = 1.5E3\n", mbean: "a:b=c", att: "X", key: "used", want: 1500},
		{body: "OK - Attribute get 'a:b=c' - X = NaN\n", mbean: "a:b=c", att: "X", wantErr: `the value: "NaN" is not a finite number`},
		{body: "OK - Attribute get 'a:b=c' - Y = 3\n", mbean: "a:b=c", att: "X", wantErr: `unexpected answer "OK - Attribute get 'a:b=c' - Y = 3"`},
		{body: "", mbean: "a:b=c", att: "X", wantErr: `unexpected answer ""`},
		{body: "Error - java.lang.SecurityException: denied\n\tat …\n", mbean: "a:b=c", att: "X", wantErr: `the servlet answered "Error - java.lang.SecurityException: denied"`},
	}
	for _, tt := range tests {
		got, err := parseJMXProxy([]byte(tt.body), tt.mbean, tt.att, tt.key)
		if tt.wantErr == "" {
			if err != nil || got != tt.want {
				t.Errorf("parseJMXProxy(%q) = %v, %v; want %v", tt.body, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("parseJMXProxy(%q) = %v, %v; want an error with %q", tt.body, got, err, tt.wantErr)
		}
	}
}
