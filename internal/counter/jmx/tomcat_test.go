package jmx

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/counter/httpget"
	"github.com/goscaler/goscaler/internal/testsvc"
)

// TestJMXProxyAgainstTomcat reads attributes of a real Tomcat 10 (Debian's
// tomcat10 and tomcat10-admin) through its manager's JMX proxy servlet, and
// checks that every kind of failure is an error with its reason.
func TestJMXProxyAgainstTomcat(t *testing.T) {
	t.Parallel()
	tc := testsvc.StartTomcat(t)
	pwFile := passwordFile(t, tc.Password)
	guiFile := passwordFile(t, tc.GUIPassword)
	wrongFile := passwordFile(t, "wrong-"+tc.Password)
	u, _ := url.Parse(tc.URL)
	node := counter.Target{Cluster: "web", NodeID: "web-1", Address: u.Host,
		Vars: map[string]string{"Cluster": "web", "NodeID": "web-1", "Address": u.Host, "Host": u.Hostname(), "Port": u.Port()}}
	cfg := func(mbean, attr, path string) Config {
		return Config{Protocol: JMXProxy, URL: "http://{{.Address}}/manager/jmxproxy", MBean: mbean, Attribute: attr, Path: path,
			User: tc.User, PasswordFile: pwFile}
	}
	with := func(c Config, f func(*Config)) Config { f(&c); return c }
	tests := []struct {
		name    string
		cfg     Config
		check   func(float64) bool
		wantErr string
		is      error
	}{
		{name: "thread count", cfg: cfg("java.lang:type=Threading", "ThreadCount", ""), check: func(v float64) bool { return v >= 5 }},
		{name: "used heap", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", "used"), check: func(v float64) bool { return v > 1<<20 }},
		// The connector's thread pool is named after the node's port.
		{name: "MBean named after the port", cfg: cfg(`Catalina:type=ThreadPool,name="http-nio-{{.Host}}-{{.Port}}"`, "maxThreads", ""),
			check: func(v float64) bool { return v == 200 }},
		{name: "composite without path", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", ""),
			wantErr: "the value is a composite with the items committed, init, max, used, not a number; set path to one of them", is: counter.ErrNotANumber},
		{name: "string attribute", cfg: cfg("java.lang:type=Runtime", "VmName", ""),
			wantErr: `jmxproxy java.lang:type=Runtime VmName: the value: "OpenJDK 64-Bit Server VM" is not a number`, is: counter.ErrNotANumber},
		{name: "unknown MBean", cfg: cfg("java.lang:type=Nope", "ThreadCount", ""),
			wantErr: `jmxproxy java.lang:type=Nope ThreadCount: no MBean "java.lang:type=Nope"`, is: ErrNotFound},
		{name: "unknown attribute", cfg: cfg("java.lang:type=Threading", "Nope", ""),
			wantErr: `MBean "java.lang:type=Threading" has no attribute "Nope"`, is: ErrNotFound},
		{name: "unknown item", cfg: cfg("java.lang:type=Memory", "HeapMemoryUsage", "nope"),
			wantErr: `attribute "HeapMemoryUsage" of "java.lang:type=Memory" has no item "nope"`, is: ErrNotFound},
		{name: "malformed MBean name", cfg: cfg("{{.NodeID}}", "X", ""), wantErr: `"web-1" is not a valid MBean name`},
		{name: "wrong password", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.PasswordFile = wrongFile }),
			wantErr: "HTTP 401 from " + tc.URL + "/manager/jmxproxy?att=ThreadCount&get=java.lang%3Atype%3DThreading: authentication failed", is: httpget.ErrAuth},
		{name: "user without the manager-jmx role", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.User, c.PasswordFile = tc.GUIUser, guiFile }),
			wantErr: "HTTP 403 from ", is: httpget.ErrAuth},
		{name: "not the JMX proxy", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = "http://{{.Address}}/manager/status" }),
			wantErr: "unexpected answer \"<html>\" (is the URL Tomcat's /manager/jmxproxy?)"},
		{name: "no such webapp", cfg: with(cfg("java.lang:type=Threading", "ThreadCount", ""), func(c *Config) { c.URL = "http://{{.Address}}/nowhere/jmxproxy" }),
			wantErr: "HTTP 404 from " + tc.URL + "/nowhere/jmxproxy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			got, err := newSource(t, &tt.cfg).Read(ctx, node)
			if tt.wantErr == "" {
				if err != nil || !tt.check(got) {
					t.Fatalf("Read = %v, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Read = %v, %v; want an error with %q", got, err, tt.wantErr)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.is)
			}
			for _, pw := range []string{tc.Password, tc.GUIPassword} {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
		})
	}

	// Each reading asks the JVM anew, over the source's kept connection: the
	// count of loaded classes never goes down.
	src := newSource(t, &Config{Protocol: JMXProxy, URL: tc.JMXProxyURL(), MBean: "java.lang:type=ClassLoading",
		Attribute: "TotalLoadedClassCount", User: tc.User, PasswordFile: pwFile})
	first, err := src.Read(t.Context(), counter.Target{Cluster: "web"})
	if err != nil || first < 100 {
		t.Fatalf("TotalLoadedClassCount = %v, %v", first, err)
	}
	second, err := src.Read(t.Context(), counter.Target{Cluster: "web"})
	if err != nil || second < first {
		t.Fatalf("second TotalLoadedClassCount = %v, %v; the first was %v", second, err, first)
	}
}
