// Package email holds the email action: a message about the firing (its
// cluster, trigger, cause, counter values and the outcome of the earlier
// steps) sent over SMTP, with STARTTLS or implicit TLS and authentication.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"strings"
	"text/template"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/goscaler/goscaler/internal/action"
	"github.com/goscaler/goscaler/internal/action/notify"
	"github.com/goscaler/goscaler/internal/plugin"
	"github.com/goscaler/goscaler/internal/secret"
)

func init() {
	action.Registry.Register("email", func() action.Config { return &Config{} })
}

// TLS modes.
const (
	// TLSMandatory requires STARTTLS (the default).
	TLSMandatory = "mandatory"
	// TLSOpportunistic uses STARTTLS when the server offers it.
	TLSOpportunistic = "opportunistic"
	// TLSNone never encrypts (no authentication then).
	TLSNone = "none"
	// TLSImplicit connects over TLS from the start (port 465).
	TLSImplicit = "tls"
)

// Defaults.
const (
	DefaultSubject = "[goscaler] {{.Cluster}}: trigger {{.Trigger}} fired"
	DefaultTimeout = 30 * time.Second
)

// Config configures email.
type Config struct {
	// Host and Port are the SMTP server's; the port defaults to 587 (465
	// with tls: tls).
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port" json:"port,omitempty"`
	// TLS is mandatory (STARTTLS, default), opportunistic, none or tls
	// (implicit TLS).
	TLS string `yaml:"tls" json:"tls,omitempty"`
	// CAFile, if set, is the PEM file of the CAs the server's certificate is
	// checked against (default: the system's).
	CAFile string `yaml:"ca_file" json:"ca_file,omitempty"`
	// User turns on authentication; the password comes from PasswordEnv or
	// PasswordFile, never from the configuration.
	User         string   `yaml:"user" json:"user,omitempty"`
	PasswordEnv  string   `yaml:"password_env" json:"password_env,omitempty"`
	PasswordFile string   `yaml:"password_file" json:"password_file,omitempty"`
	From         string   `yaml:"from" json:"from"`
	To           []string `yaml:"to" json:"to"`
	// Subject and Body are templates over the event ({{.Cluster}},
	// {{.Trigger}}, {{.Cause}}, {{.Counter_NAME}}, {{.Outcome}}, …).
	Subject string          `yaml:"subject" json:"subject,omitempty"`
	Body    string          `yaml:"body" json:"body,omitempty"`
	Timeout plugin.Duration `yaml:"timeout" json:"timeout,omitempty"`
}

// Validate checks every key and fills the defaults.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Host) == "" {
		errs = append(errs, errors.New("host: the SMTP server is required"))
	}
	switch c.TLS {
	case "":
		c.TLS = TLSMandatory
	case TLSMandatory, TLSOpportunistic, TLSNone, TLSImplicit:
	default:
		errs = append(errs, fmt.Errorf("tls: %q is not mandatory, opportunistic, none or tls", c.TLS))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("port: %d is not a TCP port", c.Port))
	}
	if c.Port == 0 {
		c.Port = 587
		if c.TLS == TLSImplicit {
			c.Port = 465
		}
	}
	if err := secret.Validate("password", c.PasswordEnv, c.PasswordFile); err != nil {
		errs = append(errs, err)
	}
	hasPassword := c.PasswordEnv != "" || c.PasswordFile != ""
	if hasPassword && c.User == "" {
		errs = append(errs, errors.New("user: a password is set but no user"))
	}
	if c.User != "" && !hasPassword {
		errs = append(errs, errors.New("password_env: user is set: set password_env or password_file too"))
	}
	if c.User != "" && c.TLS == TLSNone {
		errs = append(errs, errors.New("tls: none would send the password in clear text: use mandatory or tls"))
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("from: %q is not an email address: %w", c.From, err))
	}
	if len(c.To) == 0 {
		errs = append(errs, errors.New("to: at least one recipient is required"))
	}
	for i, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fmt.Errorf("to[%d]: %q is not an email address: %w", i, to, err))
		}
	}
	if c.Subject == "" {
		c.Subject = DefaultSubject
	}
	if c.Body == "" {
		c.Body = notify.Summary
	}
	if _, err := notify.Parse("subject", c.Subject); err != nil {
		errs = append(errs, err)
	}
	if _, err := notify.Parse("body", c.Body); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: %s must not be negative", c.Timeout))
	}
	if c.Timeout == 0 {
		c.Timeout = plugin.Duration(DefaultTimeout)
	}
	return errors.Join(errs...)
}

// New reads the password and builds the action.
func (c *Config) New(action.Env) (action.Action, error) {
	pw, err := secret.Read("password", c.PasswordEnv, c.PasswordFile)
	if err != nil {
		return nil, fmt.Errorf("email: %w", err)
	}
	s := &sender{c: *c, password: pw}
	if s.subject, err = notify.Parse("subject", c.Subject); err != nil {
		return nil, err
	}
	if s.body, err = notify.Parse("body", c.Body); err != nil {
		return nil, err
	}
	s.tls = &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("email: ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("email: ca_file: %s holds no PEM certificate", c.CAFile)
		}
		s.tls.RootCAs = pool
	}
	return s, nil
}

type sender struct {
	c             Config
	password      secret.Secret
	subject, body *template.Template
	tls           *tls.Config
}

func (s *sender) Run(ctx context.Context, r action.Run) (string, error) {
	ev := notify.NewEvent(r, time.Now())
	data := notify.Data(r, ev)
	subject, err := notify.Render(s.subject, data)
	if err != nil {
		return "", fmt.Errorf("subject: %w", err)
	}
	subject = strings.Join(strings.Fields(subject), " ")
	body, err := notify.Render(s.body, data)
	if err != nil {
		return "", fmt.Errorf("body: %w", err)
	}
	msg := gomail.NewMsg()
	if err := msg.From(s.c.From); err != nil {
		return "", fmt.Errorf("%w: from: %w", action.ErrPermanent, err)
	}
	if err := msg.To(s.c.To...); err != nil {
		return "", fmt.Errorf("%w: to: %w", action.ErrPermanent, err)
	}
	msg.Subject(subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetGenHeader("X-Goscaler-Cluster", r.Cluster)
	msg.SetBodyString(gomail.TypeTextPlain, body)

	opts := []gomail.Option{gomail.WithPort(s.c.Port), gomail.WithTimeout(s.c.Timeout.D()), gomail.WithTLSConfig(s.tls)}
	switch s.c.TLS {
	case TLSMandatory:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	case TLSOpportunistic:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	case TLSNone:
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case TLSImplicit:
		opts = append(opts, gomail.WithSSL())
	}
	if s.c.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.c.User), gomail.WithPassword(s.password.Reveal()))
	}
	client, err := gomail.NewClient(s.c.Host, opts...)
	if err != nil {
		return "", fmt.Errorf("%w: smtp %s:%d: %w", action.ErrPermanent, s.c.Host, s.c.Port, err)
	}
	ctx, cancel := context.WithTimeout(ctx, s.c.Timeout.D())
	defer cancel()
	if err := client.DialAndSendWithContext(ctx, msg); err != nil {
		// Retried by the job: a mail server that is down may come back.
		return "", fmt.Errorf("sending mail through %s:%d (tls %s): %s", s.c.Host, s.c.Port, s.c.TLS, s.scrub(err.Error()))
	}
	return fmt.Sprintf("mail sent through %s:%d to %s\nSubject: %s\n\n%s", s.c.Host, s.c.Port,
		strings.Join(s.c.To, ", "), subject, body), nil
}

// scrub removes the password from a message, should a library put it there.
func (s *sender) scrub(msg string) string {
	if pw := s.password.Reveal(); pw != "" {
		msg = strings.ReplaceAll(msg, pw, secret.Redacted)
	}
	return msg
}
