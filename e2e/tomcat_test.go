package e2e

import (
	"archive/zip"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

// buildWAR zips the files of src (the example's app/) into a WAR.
func buildWAR(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(f)
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.Create(e.Name())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// stopTomcats kills the Tomcat of every node directory under root (by its
// PID file): the processes this test started through Puppet.
func stopTomcats(t *testing.T, root string) {
	t.Helper()
	pids, _ := filepath.Glob(filepath.Join(root, "*", "tomcat.pid"))
	for _, p := range pids {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		// The PID file is ours; check the process is still a Tomcat of root
		// before killing it.
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), root) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Logf("killed Tomcat %d of %s", pid, filepath.Dir(p))
		}
	}
}

func getBody(url string) (int, string, error) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestTomcatExample runs examples/tomcat: a Tomcat cluster on existing hosts
// (sshd on 127.0.0.2-4, static provider). A new node is configured by the
// example's Puppet manifest (os_configuration: its own Tomcat 10 on its
// service port, with the manager's JMX proxy) and gets the WAR from the
// example's deploy script (distributed_script); jmx counters read its busy
// threads and used heap; the add-node trigger, fired by hand, adds a second
// node the same way and mails the counters' values.
func TestTomcatExample(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("puppet"); err != nil {
		t.Fatalf("puppet is not installed (Debian package puppet): %v", err)
	}
	for _, p := range []string{"/usr/share/tomcat10/bin/catalina.sh", "/usr/share/tomcat10-admin/manager"} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Tomcat is not installed (Debian packages tomcat10 tomcat10-admin): %v", err)
		}
	}
	example, err := filepath.Abs("../examples/tomcat")
	if err != nil {
		t.Fatal(err)
	}
	set := sshdtest.Start(t, 3)
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("tomcat")
	addr := freeAddr(t)
	root := filepath.Join(dir, "tomcat")
	// Registered before the server starts, so run after it stopped.
	t.Cleanup(func() { stopTomcats(t, root) })

	war := filepath.Join(dir, "hello.war")
	buildWAR(t, filepath.Join(example, "app"), war)
	jmxPW, smtpPW := "jmx-"+randHex(8), "smtp-"+randHex(8)
	jmxFile, smtpFile := filepath.Join(dir, "jmx-password"), filepath.Join(dir, "smtp-password")
	for path, v := range map[string]string{jmxFile: jmxPW, smtpFile: smtpPW} {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	box, smtpAddr, caFile := startMailbox(t, dir, "alerts", smtpPW)
	smtpHost, smtpPort, _ := net.SplitHostPort(smtpAddr)

	// The example's own configuration, with this machine's hosts, keys,
	// paths and mail server in place of the site's values.
	shipped, err := os.ReadFile(filepath.Join(example, "goscaler.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hosts strings.Builder
	for _, h := range set.Hosts {
		_, port, _ := net.SplitHostPort(freeAddr(t))
		fmt.Fprintf(&hosts, "        - {address: %s, port: %d, service_port: %s}\n", h.IP, h.Port, port)
	}
	siteHosts := "" +
		"        - {address: 192.0.2.11, port: 22, service_port: 8080}\n" +
		"        - {address: 192.0.2.12, port: 22, service_port: 8080}\n" +
		"        - {address: 192.0.2.13, port: 22, service_port: 8080}\n"
	replace := [][2]string{
		{"127.0.0.1:8600", addr},
		{"./data", dataDir},
		{"  - name: tomcat\n", "  - name: " + name + "\n"},
		{"user: deploy ", "user: " + set.User + " "},
		{"/etc/goscaler/id_ed25519", set.ClientKey},
		{"/etc/goscaler/known_hosts", set.WriteKnownHosts(filepath.Join(dir, "known_hosts"))},
		{siteHosts, hosts.String()},
		{"/var/tmp/goscaler-tomcat", root},
		{"/etc/goscaler/tomcat-jmx.pw", jmxFile},
		{"/srv/releases/hello.war", war},
		{"manifest: puppet/", "manifest: " + example + "/puppet/"},
		{"script: deploy.sh", "script: " + example + "/deploy.sh"},
		{"script: stop.sh", "script: " + example + "/stop.sh"},
		{"host: smtp.example.com", "host: " + smtpHost},
		{"port: 587", "port: " + smtpPort},
		{"tls: mandatory\n", "tls: mandatory\n            ca_file: " + caFile + "\n"},
		{"/etc/goscaler/smtp.pw", smtpFile},
	}
	src := string(shipped)
	for _, r := range replace {
		if !strings.Contains(src, r[0]) {
			t.Fatalf("examples/tomcat/goscaler.yaml no longer contains %q: update this test", r[0])
		}
		src = strings.ReplaceAll(src, r[0], r[1])
	}
	cfg := filepath.Join(dir, "goscaler.yaml")
	if err := os.WriteFile(cfg, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCLI(t, "check", "config", filepath.Join(example, "goscaler.yaml")); code != 0 {
		t.Fatalf("examples/tomcat/goscaler.yaml is invalid (exit %d):\n%s%s", code, out, errOut)
	}
	if code, out, errOut := runCLI(t, "check", "config", cfg); code != 0 {
		t.Fatalf("the test's config is invalid (exit %d):\n%s%s\n%s", code, out, errOut, src)
	}
	srv := startServer(t, cfg, addr, dataDir, "")
	began := time.Now()

	checkApp := func(n node) {
		t.Helper()
		code, body, err := getBody("http://" + n.Address + "/hello/")
		if err != nil || code != 200 || !strings.Contains(body, "Hello from goscaler's Tomcat example") {
			t.Errorf("node %s: GET /hello/: %d %v\n%s", n.ID, code, err, body)
		}
	}
	first := waitInService(t, srv.api, name, 1, 4*time.Minute)
	t.Logf("node %s in service after %s", first[0].ID, time.Since(began).Round(time.Second))
	checkApp(first[0])

	heap := waitReading(t, srv.api, name, "heap_used", time.Now(), time.Minute, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 1 && r.Aggregate.Value > 1<<20, fmt.Sprintf("%+v", r)
	})
	busy := waitReading(t, srv.api, name, "busy_threads", time.Now(), time.Minute, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 1 && r.Aggregate.Value >= 0 && r.Aggregate.Value <= 200, fmt.Sprintf("%+v", r)
	})
	t.Logf("heap used %.0f B, busy threads %.0f", heap.Aggregate.Value, busy.Aggregate.Value)

	// The launch steps ran Puppet and the deploy script, with their reports.
	launches, err := srv.api.activities("cluster=" + name + "&kind=launch_node")
	if err != nil || len(launches) == 0 {
		t.Fatalf("no launch_node activity: %v %v", launches, err)
	}
	steps, err := srv.api.activities(fmt.Sprintf("parent=%d", launches[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	var outputs strings.Builder
	for _, s := range steps {
		outputs.WriteString(s.Output)
	}
	for _, want := range []string{"puppet apply: 1 of 1 node(s) succeeded", "resources: ", "script: 1 of 1 node(s) succeeded", "/hello/ answers"} {
		if !strings.Contains(outputs.String(), want) {
			t.Errorf("the launch steps' output does not contain %q:\n%s", want, outputs.String())
		}
	}

	// The trigger, by hand: a second node, configured and deployed the
	// same way, and a mail.
	fired := time.Now()
	if code, out, errOut := runCLI(t, "--server", "http://"+addr, "trigger", "fire", name, "add-node"); code != 0 {
		t.Fatalf("goscaler trigger fire: exit %d: %s%s", code, out, errOut)
	}
	two := waitInService(t, srv.api, name, 2, 4*time.Minute)
	t.Logf("second node in service %s after the trigger", time.Since(fired).Round(time.Second))
	for _, n := range two {
		checkApp(n)
	}
	if two[0].Address == two[1].Address {
		t.Errorf("both nodes have the address %s", two[0].Address)
	}
	waitReading(t, srv.api, name, "heap_used", time.Now(), time.Minute, func(r sshReading) (bool, string) {
		return r.Aggregate.Error == "" && r.Aggregate.Reporting == 2, fmt.Sprintf("%+v", r)
	})
	var msgs []string
	waitFor(t, time.Minute, 200*time.Millisecond, "the trigger's mail", func() (bool, string) {
		msgs = box.received()
		return len(msgs) == 1, fmt.Sprint(len(msgs), " messages")
	})
	msg, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(msg.Body)
	body := strings.ReplaceAll(string(raw), "=\r\n", "")
	if subj := msg.Header.Get("Subject"); subj != name+": add-node added a Tomcat node" {
		t.Errorf("the mail's subject is %q", subj)
	}
	var heapInMail float64
	if _, err := fmt.Sscanf(body[strings.Index(body, "heap used ")+len("heap used "):], "%g", &heapInMail); err != nil || heapInMail < 1<<20 {
		t.Errorf("the mail does not carry the used heap (%v, %v): %q", heapInMail, err, body)
	}
	if !strings.Contains(body, "busy threads ") || !strings.Contains(body, "step 1 (deploy_node) succeeded") {
		t.Errorf("the mail's body: %q", body)
	}

	// Scale in: the leaving node's on_terminate step stops its Tomcat and
	// removes its directory.
	pids := map[string]int{}
	for _, n := range two {
		b, err := os.ReadFile(filepath.Join(root, n.ID, "tomcat.pid"))
		if err != nil {
			t.Fatalf("node %s has no Tomcat PID file: %v", n.ID, err)
		}
		pids[n.ID], _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	srv.api.must("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 1}, nil, 200)
	one := waitInService(t, srv.api, name, 1, 2*time.Minute)
	for id, pid := range pids {
		if id == one[0].ID {
			continue
		}
		waitFor(t, time.Minute, 200*time.Millisecond, "the Tomcat of "+id+" to stop", func() (bool, string) {
			_, statErr := os.Stat(filepath.Join(root, id))
			return !alive(pid) && os.IsNotExist(statErr), fmt.Sprintf("pid %d alive %v, directory: %v", pid, alive(pid), statErr)
		})
	}
	checkApp(one[0])
}
