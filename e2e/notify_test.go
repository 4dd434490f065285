package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// mailbox is a real SMTP server on loopback (STARTTLS, AUTH PLAIN) that
// keeps the messages it receives.
type mailbox struct {
	user, password string
	mu             sync.Mutex
	msgs           []string
}

func (m *mailbox) received() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.msgs...)
}

type mailSession struct {
	box  *mailbox
	auth bool
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, u, p string) error {
		if u != s.box.user || p != s.box.password {
			return errors.New("invalid credentials")
		}
		s.auth = true
		return nil
	}), nil
}
func (s *mailSession) Mail(string, *smtp.MailOptions) error {
	if !s.auth {
		return errors.New("authenticate first")
	}
	return nil
}
func (s *mailSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	s.box.mu.Lock()
	s.box.msgs = append(s.box.msgs, string(b))
	s.box.mu.Unlock()
	return err
}
func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// startMailbox starts the SMTP server and returns it, its address and the
// CA file of its certificate.
func startMailbox(t *testing.T, dir, user, password string) (*mailbox, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "e2e smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, _ := x509.MarshalECPrivateKey(key)
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "smtp-ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	box := &mailbox{user: user, password: password}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &mailSession{box: box}, nil }))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return box, l.Addr().String(), caFile
}

// TestSecretsNeverShown fires a trigger whose steps send a webhook signed
// with a secret and a mail through an SMTP server that wants a password,
// then looks for both secrets in the server's log, the CLI's output and the
// API's answers: they must be nowhere.
func TestSecretsNeverShown(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("secrets")
	password := "smtp-PW-" + randHex(8)
	hookKey := "hook-KEY-" + randHex(8)
	pwFile, keyFile := filepath.Join(dir, "smtp-password"), filepath.Join(dir, "webhook-key")
	for path, v := range map[string]string{pwFile: password, keyFile: hookKey} {
		if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	box, smtpAddr, caFile := startMailbox(t, dir, "alerts", password)
	smtpHost, smtpPort, _ := net.SplitHostPort(smtpAddr)

	var hookMu sync.Mutex
	var hookBodies []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m := hmac.New(sha256.New, []byte(hookKey))
		m.Write(b)
		if r.Header.Get("X-Goscaler-Signature") != "sha256="+hex.EncodeToString(m.Sum(nil)) {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		hookMu.Lock()
		hookBodies = append(hookBodies, string(b))
		hookMu.Unlock()
	}))
	defer hook.Close()

	addr := freeAddr(t)
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{
		Name: name, Min: 0, Max: 1, Desired: 0,
		Counters: `      - name: zero
        type: exec
        command: ["echo", "0"]
        interval: 1s
`,
		Triggers: fmt.Sprintf(`      - name: notify
        counter: zero
        above: 1000
        for: 1m
        actions:
          - type: webhook
            url: %q
            secret_file: %q
            retries: 0
          - type: email
            host: %s
            port: %s
            tls: mandatory
            ca_file: %q
            user: alerts
            password_file: %q
            from: goscaler@example.test
            to: [ops@example.test]
            subject: "{{.Cluster}} {{.Trigger}} zero={{.Counter_zero}}"
            body: "cause {{.Cause}}; outcome {{.Outcome}}"
`, hook.URL+"/hook", keyFile, smtpHost, smtpPort, caFile, pwFile),
	})
	srv := startServer(t, cfg, addr, dataDir, "")
	// Wait for a counter value, so that the message carries it.
	waitFor(t, 20*time.Second, 200*time.Millisecond, "a reading of counter zero", func() (bool, string) {
		rs, err := srv.api.readings(name)
		return err == nil && rs["zero"].Aggregate.Error == "" && !rs["zero"].Aggregate.At.IsZero(), fmt.Sprint(rs, err)
	})
	var parent activity
	srv.api.must("POST", "/api/v1/clusters/"+name+"/triggers/notify/fire", nil, &parent, 202)
	var steps []activity
	waitFor(t, 60*time.Second, 200*time.Millisecond, "both steps to succeed", func() (bool, string) {
		var err error
		steps, err = srv.api.activities(fmt.Sprintf("parent=%d", parent.ID))
		ok := err == nil && len(steps) == 2
		for _, s := range steps {
			ok = ok && s.Status == "succeeded"
			if s.Status == "failed" {
				t.Fatalf("step failed: %s\n%s", s, s.Output)
			}
		}
		return ok, fmt.Sprint(steps, err)
	})
	msgs := box.received()
	if len(msgs) != 1 {
		t.Fatalf("the mailbox holds %q", msgs)
	}
	msg, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if msg.Header.Get("Subject") != name+" notify zero=0" || !strings.Contains(string(body), "outcome step 1 (webhook) succeeded") {
		t.Errorf("the mail: subject %q, body %q", msg.Header.Get("Subject"), body)
	}
	hookMu.Lock()
	if len(hookBodies) != 1 || !strings.Contains(hookBodies[0], `"trigger":"notify"`) || !strings.Contains(hookBodies[0], `"zero":"0"`) {
		t.Errorf("the webhook received %q", hookBodies)
	}
	hookMu.Unlock()

	// Now look everywhere for the secrets.
	places := map[string]string{}
	logData, _ := os.ReadFile(filepath.Join(dir, "server.log"))
	places["server log"] = string(logData)
	code, out, errOut := runCLI(t, "--server", "http://"+addr, "-o", "json", "activity", "list")
	if code != 0 {
		t.Errorf("goscaler activity list: exit %d: %s", code, errOut)
	}
	places["goscaler activity list -o json"] = out + errOut
	for _, path := range []string{"/api/v1/activities", fmt.Sprintf("/api/v1/activities/%d", steps[0].ID),
		fmt.Sprintf("/api/v1/activities/%d", steps[1].ID), "/api/v1/clusters", "/api/v1/clusters/" + name,
		"/api/v1/clusters/" + name + "/triggers", "/api/v1/triggers"} {
		code, data, err := srv.api.do("GET", path, nil, nil)
		if err != nil || code != 200 {
			t.Errorf("GET %s: %d %v", path, code, err)
		}
		places["GET "+path] = string(data)
	}
	if !strings.Contains(places["GET /api/v1/activities"], "mail sent through") {
		t.Errorf("the activities do not show the mail step's output: %s", places["GET /api/v1/activities"])
	}
	for where, text := range places {
		for secretName, v := range map[string]string{"the SMTP password": password, "the webhook key": hookKey} {
			if strings.Contains(text, v) {
				t.Errorf("%s shows %s", where, secretName)
			}
		}
	}
}
