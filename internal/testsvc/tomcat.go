package testsvc

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Paths of Debian's tomcat10 and tomcat10-admin packages.
const (
	TomcatHome    = "/usr/share/tomcat10"
	TomcatManager = "/usr/share/tomcat10-admin/manager"
)

// Tomcat is a Tomcat 10 started for a test, with the manager webapp at
// /manager and two users: User (role manager-jmx, allowed to use
// /manager/jmxproxy) and GUIUser (role manager-gui only, refused there).
type Tomcat struct {
	// URL is http://127.0.0.1:PORT.
	URL string
	// Base is its CATALINA_BASE.
	Base string
	// User and Password may use the JMX proxy.
	User, Password string
	// GUIUser and GUIPassword have the manager-gui role only.
	GUIUser, GUIPassword string
}

// JMXProxyURL is the manager's JMX proxy servlet.
func (tc *Tomcat) JMXProxyURL() string { return tc.URL + "/manager/jmxproxy" }

// StartTomcat starts Tomcat with its own CATALINA_BASE in a temporary
// directory (the distribution's web.xml and properties, a server.xml with one
// HTTP connector on a free loopback port and no shutdown port, a
// tomcat-users.xml, the manager deployed by a Context file) and waits until
// the JMX proxy answers. It is stopped (SIGTERM, then SIGKILL) in t.Cleanup.
// Skipped under -short: a JVM takes seconds to start.
func StartTomcat(t testing.TB) *Tomcat {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Tomcat: not in -short")
	}
	java, err := exec.LookPath("java")
	if p := missing(filepath.Join(TomcatHome, "bin", "bootstrap.jar"), TomcatManager); p != "" || err != nil {
		Unavailable(t, "Tomcat 10", fmt.Sprintf("%s missing or no java (%v): apt-get install tomcat10 tomcat10-admin", p, err))
	}
	tc := &Tomcat{Base: t.TempDir(), User: "goscaler-jmx", Password: randomHex(12),
		GUIUser: "goscaler-gui", GUIPassword: randomHex(12)}
	for _, d := range []string{"conf/Catalina/localhost", "logs", "temp", "work", "webapps"} {
		if err := os.MkdirAll(filepath.Join(tc.Base, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"web.xml", "catalina.properties", "context.xml", "logging.properties"} {
		if err := os.Symlink(filepath.Join(TomcatHome, "etc", f), filepath.Join(tc.Base, "conf", f)); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, content string) {
		if err := os.WriteFile(filepath.Join(tc.Base, rel), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("conf/tomcat-users.xml", fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<tomcat-users xmlns="http://tomcat.apache.org/xml" version="1.0">
  <role rolename="manager-jmx"/>
  <role rolename="manager-gui"/>
  <user username="%s" password="%s" roles="manager-jmx"/>
  <user username="%s" password="%s" roles="manager-gui"/>
</tomcat-users>
`, tc.User, tc.Password, tc.GUIUser, tc.GUIPassword))
	write("conf/Catalina/localhost/manager.xml", fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Context docBase="%s" privileged="true" antiResourceLocking="false"/>
`, TomcatManager))

	// The port was free a moment ago; another process may take it before
	// Tomcat binds it, so a bind failure is retried on a new port.
	for attempt := 1; ; attempt++ {
		port := FreePort(t)
		write("conf/server.xml", fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Server port="-1" shutdown="SHUTDOWN">
  <GlobalNamingResources>
    <Resource name="UserDatabase" auth="Container" type="org.apache.catalina.UserDatabase"
              factory="org.apache.catalina.users.MemoryUserDatabaseFactory" pathname="conf/tomcat-users.xml"/>
  </GlobalNamingResources>
  <Service name="Catalina">
    <Connector port="%d" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>
    <Engine name="Catalina" defaultHost="localhost">
      <Realm className="org.apache.catalina.realm.UserDatabaseRealm" resourceName="UserDatabase"/>
      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false" deployOnStartup="true"/>
    </Engine>
  </Service>
</Server>
`, port))
		tc.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		logPath := filepath.Join(tc.Base, "logs", fmt.Sprintf("console-%d.log", attempt))
		p := startProcess(t, "tomcat", logPath, 20*time.Second, nil, java,
			"-Xmx192m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
			"-Dcatalina.home="+TomcatHome, "-Dcatalina.base="+tc.Base, "-Djava.io.tmpdir="+filepath.Join(tc.Base, "temp"),
			"-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager",
			"-Djava.util.logging.config.file="+filepath.Join(tc.Base, "conf", "logging.properties"),
			"-cp", filepath.Join(TomcatHome, "bin", "bootstrap.jar")+":"+filepath.Join(TomcatHome, "bin", "tomcat-juli.jar"),
			"org.apache.catalina.startup.Bootstrap", "start")
		probe := tc.JMXProxyURL() + "?get=java.lang:type=Runtime&att=VmName"
		bindFailed := func() bool {
			b, _ := os.ReadFile(logPath)
			return strings.Contains(string(b), "BindException") || strings.Contains(string(b), "Address already in use")
		}
		ready := func() error {
			if bindFailed() {
				return nil // checked below
			}
			return httpStatus(probe, tc.User, tc.Password, 200)
		}
		p.waitReady(t, 120*time.Second, ready)
		if bindFailed() && attempt < 3 {
			p.stop(5 * time.Second)
			continue
		}
		if bindFailed() {
			t.Fatalf("tomcat could not bind a port in 3 attempts:\n%s", tail(logPath, 20))
		}
		return tc
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
