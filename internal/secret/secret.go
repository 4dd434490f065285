// Package secret reads the secrets that plugins need (passwords, tokens) from
// where an operator keeps them — an environment variable or a file — and keeps
// them out of configuration files, errors, logs and the API.
//
// A plugin config names the source of a secret with a pair of keys, such as
// password_env and password_file; Validate checks the pair at load time and
// Read fetches the value when the plugin is built. A Secret prints as
// "[redacted]" with every fmt verb and in JSON, so that a stray log line or
// error message cannot reveal it.
package secret

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// Redacted is what a Secret prints as.
const Redacted = "[redacted]"

// MaxFileSize is the largest secret file Read accepts.
const MaxFileSize = 64 << 10

// Secret is a secret value. Its String, GoString, Format and MarshalJSON
// methods never show the value; use Reveal where it is really needed.
type Secret struct {
	v string
}

// New wraps a value (for tests and values built by the program).
func New(v string) Secret { return Secret{v: v} }

// Reveal returns the value.
func (s Secret) Reveal() string { return s.v }

// IsZero reports whether the secret is empty.
func (s Secret) IsZero() bool { return s.v == "" }

// String returns "[redacted]".
func (s Secret) String() string { return Redacted }

// GoString returns "[redacted]", for %#v.
func (s Secret) GoString() string { return Redacted }

// Format prints "[redacted]" for every verb.
func (s Secret) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON writes "[redacted]".
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText writes "[redacted]" (slog text and JSON handlers use it).
func (s Secret) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// ErrUnset is wrapped by Read when the environment variable is not set or is
// empty, or the file is empty.
var ErrUnset = errors.New("secret is empty or not set")

// Validate checks the pair of keys that name a secret's source: at most one
// of env and file is set, and env is a valid variable name. name is the key
// prefix used in messages ("password" for password_env and password_file).
// It does not read the secret: the file or variable may exist only where the
// server runs.
func Validate(name, env, file string) error {
	var errs []error
	if env != "" && file != "" {
		errs = append(errs, fmt.Errorf("%s_file: set either %s_env or %s_file, not both", name, name, name))
	}
	if env != "" && !validEnvName(env) {
		errs = append(errs, fmt.Errorf("%s_env: %q is not an environment variable name (letters, digits and _, not starting with a digit)", name, env))
	}
	if file != "" && strings.TrimSpace(file) == "" {
		errs = append(errs, fmt.Errorf("%s_file: must not be blank", name))
	}
	return errors.Join(errs...)
}

// Read fetches the secret named by env or file (at most one is set; with
// neither, it returns the zero Secret and no error). A file's content is
// trimmed of one trailing newline (\n or \r\n). Errors name the variable or
// the file, never the value.
func Read(name, env, file string) (Secret, error) {
	switch {
	case env != "" && file != "":
		return Secret{}, fmt.Errorf("%s_file: set either %s_env or %s_file, not both", name, name, name)
	case env != "":
		v, ok := os.LookupEnv(env)
		if !ok || v == "" {
			return Secret{}, fmt.Errorf("%s_env: environment variable %s is not set or empty: %w", name, env, ErrUnset)
		}
		return Secret{v: v}, nil
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: %w", name, err)
		}
		defer func() { _ = f.Close() }()
		b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
		if err != nil {
			return Secret{}, fmt.Errorf("%s_file: reading %s: %w", name, file, err)
		}
		if len(b) > MaxFileSize {
			return Secret{}, fmt.Errorf("%s_file: %s is larger than %d KiB; it should hold only the secret", name, file, MaxFileSize>>10)
		}
		v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		if v == "" {
			return Secret{}, fmt.Errorf("%s_file: %s is empty: %w", name, file, ErrUnset)
		}
		return Secret{v: v}, nil
	}
	return Secret{}, nil
}

func validEnvName(s string) bool {
	for i, r := range s {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return s != ""
}
