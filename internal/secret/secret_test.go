package secret

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const value = "hunter2-Sup3rSecret"

func TestSecretNeverPrints(t *testing.T) {
	t.Parallel()
	s := New(value)
	if s.Reveal() != value || s.IsZero() {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "password", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "password", s)
	j, err := json.Marshal(struct{ P Secret }{s})
	if err != nil {
		t.Fatal(err)
	}
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %d", s, s, s, s, s, s, s),
		fmt.Sprintf("%v", struct{ P Secret }{s}), fmt.Sprintf("%+v", &struct{ P Secret }{s}),
		string(j), logged.String(), fmt.Errorf("dial: %v", s).Error(),
	}
	for _, out := range outputs {
		if strings.Contains(out, value) || strings.Contains(out, fmt.Sprintf("%x", value)) {
			t.Errorf("the secret shows in %q", out)
		}
		if !strings.Contains(out, Redacted) {
			t.Errorf("%q does not say %s", out, Redacted)
		}
	}
	if !New("").IsZero() {
		t.Error("New(\"\").IsZero() = false")
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("GOSCALER_TEST_SECRET", value)
	t.Setenv("GOSCALER_TEST_EMPTY", "")
	tests := []struct {
		name, env, file string
		want            string
		wantErr         string
		unset           bool
	}{
		{name: "from the environment", env: "GOSCALER_TEST_SECRET", want: value},
		{name: "from a file, newline trimmed", file: write("nl", value+"\n"), want: value},
		{name: "from a file, CRLF trimmed", file: write("crlf", value+"\r\n"), want: value},
		{name: "only one newline trimmed", file: write("two", value+"\n\n"), want: value + "\n"},
		{name: "inner spaces kept", file: write("spaces", " a b "), want: " a b "},
		{name: "neither", want: ""},
		{name: "unset variable", env: "GOSCALER_TEST_UNSET_X", wantErr: "password_env: environment variable GOSCALER_TEST_UNSET_X is not set or empty", unset: true},
		{name: "empty variable", env: "GOSCALER_TEST_EMPTY", wantErr: "GOSCALER_TEST_EMPTY is not set or empty", unset: true},
		{name: "missing file", file: filepath.Join(dir, "nope"), wantErr: "password_file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{name: "empty file", file: write("empty", "\n"), wantErr: "is empty", unset: true},
		{name: "huge file", file: write("huge", strings.Repeat("x", MaxFileSize+1)), wantErr: "is larger than 64 KiB"},
		{name: "both", env: "GOSCALER_TEST_SECRET", file: write("both", "x"), wantErr: "set either password_env or password_file, not both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Read("password", tt.env, tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Read = %v; want an error with %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrUnset) != tt.unset {
					t.Errorf("errors.Is(ErrUnset) = %t", !tt.unset)
				}
				if strings.Contains(err.Error(), value) {
					t.Errorf("the error shows the secret: %v", err)
				}
				return
			}
			if err != nil || s.Reveal() != tt.want {
				t.Fatalf("Read = %q, %v; want %q", s.Reveal(), err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		env, file string
		want      []string
	}{
		{env: "RABBIT_PW"},
		{env: "_x1"},
		{file: "/run/secrets/pw"},
		{},
		{env: "A", file: "/x", want: []string{"token_file: set either token_env or token_file, not both"}},
		{env: "1ABC", want: []string{`token_env: "1ABC" is not an environment variable name`}},
		{env: "A-B", want: []string{`token_env: "A-B" is not an environment variable name`}},
		{file: "  ", want: []string{"token_file: must not be blank"}},
	}
	for _, tt := range tests {
		err := Validate("token", tt.env, tt.file)
		var got []string
		if err != nil {
			got = strings.Split(err.Error(), "\n")
		}
		if len(got) != len(tt.want) {
			t.Errorf("Validate(%q, %q) = %q, want %q", tt.env, tt.file, got, tt.want)
			continue
		}
		for i := range got {
			if !strings.HasPrefix(got[i], tt.want[i]) {
				t.Errorf("Validate(%q, %q) problem %d = %q, want %q", tt.env, tt.file, i, got[i], tt.want[i])
			}
		}
	}
}
