package sshx

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// loadSigners reads the identity files. Files that were configured must load;
// default ones (~/.ssh/id_*) are skipped when missing or when they need a
// passphrase nobody gave.
func loadSigners(s settings, log *slog.Logger) ([]ssh.Signer, []string, error) {
	var signers []ssh.Signer
	var loaded []string
	var errs []error
	for _, path := range s.identityFiles {
		pem, err := os.ReadFile(path)
		if err != nil {
			if !s.explicitKeys && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			errs = append(errs, fmt.Errorf("identity file %s: %w", path, err))
			continue
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			pass := ""
			if s.passphraseEnv != "" {
				pass = os.Getenv(s.passphraseEnv)
			}
			switch {
			case pass != "":
				signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(pass))
				if err != nil {
					err = fmt.Errorf("decrypting with the passphrase in $%s: %w", s.passphraseEnv, err)
				}
			case s.passphraseEnv != "":
				err = fmt.Errorf("the key is encrypted and $%s is empty: export the passphrase in it", s.passphraseEnv)
			default:
				err = errors.New("the key is encrypted: set passphrase_env to the name of an environment variable holding its passphrase, or use an ssh-agent")
			}
		}
		if err != nil {
			if !s.explicitKeys {
				log.Warn("skipping a default SSH identity file", "file", path, "err", err)
				continue
			}
			errs = append(errs, fmt.Errorf("identity file %s: %w", path, err))
			continue
		}
		signers = append(signers, signer)
		loaded = append(loaded, path)
	}
	return signers, loaded, errors.Join(errs...)
}

// agentSigners returns the keys of the ssh-agent at $SSH_AUTH_SOCK and a
// function that closes the connection to it.
func agentSigners() ([]ssh.Signer, func(), error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, func() {}, errors.New("ssh-agent: SSH_AUTH_SOCK is not set")
	}
	conn, err := net.Dial("unix", sock) //nolint:gosec // the agent's socket, from the operator's environment
	if err != nil {
		return nil, func() {}, fmt.Errorf("ssh-agent at %s: %w", sock, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		_ = conn.Close()
		return nil, func() {}, fmt.Errorf("ssh-agent at %s: listing keys: %w", sock, err)
	}
	return signers, func() { _ = conn.Close() }, nil
}
