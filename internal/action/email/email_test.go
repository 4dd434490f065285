package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/email"
	"github.com/goscaler/goscaler/internal/store"
)

const (
	user     = "alerts@example.test"
	password = "s3cret-SMTP-pa55word"
)

// message is one mail the test server received.
type message struct {
	from string
	to   []string
	data string
	auth string // the user that authenticated
	tls  bool
}

// smtpServer is a real SMTP server on loopback that keeps what it receives.
type smtpServer struct {
	addr   string
	caFile string
	mu     sync.Mutex
	msgs   []message
}

func (s *smtpServer) received() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]message(nil), s.msgs...)
}

type session struct {
	srv  *smtpServer
	conn *smtp.Conn
	msg  message
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, u, p string) error {
		if u != user || p != password {
			return errors.New("invalid credentials")
		}
		s.msg.auth = u
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.msg.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.msg.to = append(s.msg.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.msg.data = string(b)
	_, s.msg.tls = s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.msg)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.msg = message{auth: s.msg.auth} }
func (s *session) Logout() error { return nil }

// startSMTP starts a server with STARTTLS and AUTH PLAIN (only over TLS) on
// 127.0.0.1, or with implicit TLS.
func startSMTP(t *testing.T, implicit bool) *smtpServer {
	t.Helper()
	cert, caFile := testCert(t)
	srv := &smtpServer{caFile: caFile}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: srv, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	var l net.Listener
	var err error
	if implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	srv.addr = l.Addr().String()
	go func() { _ = s.Serve(l) }()
	t.Cleanup(func() { _ = s.Close() })
	return srv
}

// testCert makes a self-signed certificate for 127.0.0.1 and writes it as
// a CA file.
func testCert(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "goscaler test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(pemCert, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pemCert, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, caFile
}

func TestEmailAction(t *testing.T) {
	t.Parallel()
	pwFile := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(t.TempDir(), "bad-password")
	if err := os.WriteFile(badFile, []byte("wrong-"+password), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		implicit bool
		tls      string
		pwFile   string
		wantErr  string
	}{
		{name: "starttls", tls: email.TLSMandatory, pwFile: pwFile},
		{name: "opportunistic", tls: email.TLSOpportunistic, pwFile: pwFile},
		{name: "implicit", implicit: true, tls: email.TLSImplicit, pwFile: pwFile},
		{name: "wrong password", tls: email.TLSMandatory, pwFile: badFile, wantErr: "sending mail through"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startSMTP(t, tc.implicit)
			host, port, _ := net.SplitHostPort(srv.addr)
			p, _ := strconv.Atoi(port)
			c := &email.Config{Host: host, Port: p, TLS: tc.tls, CAFile: srv.caFile, User: user, PasswordFile: tc.pwFile,
				From: "goscaler@example.test", To: []string{"ops@example.test", "oncall@example.test"},
				Subject: "{{.Cluster}}/{{.Trigger}} load={{.Counter_load}}",
				Body:    "cause: {{.Cause}}\nload: {{.Counter_load}}\noutcome: {{.Outcome}}\n"}
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			a, err := c.New(action.Env{Cluster: "web"})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := a.Run(ctx, action.Run{Cluster: "web", Trigger: "busy",
				Activity: store.Activity{ID: 12, ParentID: 10, Cause: "load 9.5 > 8 for 1m"},
				Vars:     map[string]string{"Cluster": "web", "Trigger": "busy", "Cause": "load 9.5 > 8 for 1m", "Counter_load": "9.5"},
				Steps: []store.Activity{
					{Step: 0, Kind: "deploy_node", Status: store.ActivitySucceeded, Output: "launched node-4"},
					{Step: 1, Kind: "distributed_script", Status: store.ActivityFailed, Error: "script failed on 1 of 3 node(s): node-2"},
				}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), password) || strings.Contains(out, password) {
					t.Errorf("the error shows the password: %v", err)
				}
				if got := srv.received(); len(got) != 0 {
					t.Errorf("a message went through with a wrong password: %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			got := srv.received()
			if len(got) != 1 {
				t.Fatalf("the server received %d messages, want 1", len(got))
			}
			m := got[0]
			if m.auth != user || !m.tls || m.from != "goscaler@example.test" || strings.Join(m.to, ",") != "ops@example.test,oncall@example.test" {
				t.Errorf("envelope: auth %q tls %v from %q to %v", m.auth, m.tls, m.from, m.to)
			}
			parsed, err := mail.ReadMessage(strings.NewReader(m.data))
			if err != nil {
				t.Fatalf("the message does not parse: %v\n%s", err, m.data)
			}
			body, err := io.ReadAll(quotedprintable.NewReader(parsed.Body))
			if err != nil {
				t.Fatal(err)
			}
			text := "Subject: " + parsed.Header.Get("Subject") + "\n" + string(body)
			for _, want := range []string{"Subject: web/busy load=9.5", "cause: load 9.5 > 8 for 1m", "load: 9.5",
				"outcome: step 1 (deploy_node) succeeded; step 2 (distributed_script) failed: script failed on 1 of 3 node(s): node-2"} {
				if !strings.Contains(text, want) {
					t.Errorf("the message lacks %q:\n%s", want, text)
				}
			}
			if strings.Contains(out, password) || strings.Contains(m.data, password) {
				t.Errorf("the password leaked into the output or the message")
			}
			if !strings.Contains(out, "mail sent through") {
				t.Errorf("output: %s", out)
			}
		})
	}
}

func TestEmailValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		c    email.Config
		want []string
	}{
		{"ok", email.Config{Host: "mail", From: "a@b.c", To: []string{"d@e.f"}}, nil},
		{"empty", email.Config{}, []string{"host:", "from:", "to:"}},
		{"bad", email.Config{Host: "m", TLS: "maybe", From: "x", To: []string{"y"}, User: "u", PasswordEnv: "1X",
			PasswordFile: "/f", Subject: "{{"}, []string{"tls:", "from:", "to[0]:", "password_env:", "password_file:", "subject:"}},
		{"clear password", email.Config{Host: "m", TLS: email.TLSNone, From: "a@b.c", To: []string{"d@e.f"}, User: "u", PasswordEnv: "P"},
			[]string{"clear text"}},
		{"no password", email.Config{Host: "m", From: "a@b.c", To: []string{"d@e.f"}, User: "u"}, []string{"password_env"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil || tc.c.Port != 587 || tc.c.TLS != email.TLSMandatory {
					t.Fatalf("err %v, config %+v", err, tc.c)
				}
				return
			}
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error %v does not mention %q", err, w)
				}
			}
		})
	}
}
