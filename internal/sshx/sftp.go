package sshx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/pkg/sftp"
)

// SFTP runs fn with an SFTP client on ep's connection. The SFTP session
// takes one of the host's session slots; when ctx ends, the client is closed,
// which makes fn's pending calls fail.
func (p *Pool) SFTP(ctx context.Context, ep Endpoint, fn func(*sftp.Client) error) error {
	h, err := p.host(ep)
	if err != nil {
		return err
	}
	if err := p.sftp(ctx, h, fn); err != nil {
		return &Error{Endpoint: h.key, Err: err}
	}
	return nil
}

func (p *Pool) sftp(ctx context.Context, h *host, fn func(*sftp.Client) error) error {
	release, err := p.acquire(ctx, h)
	if err != nil {
		return err
	}
	defer release()
	s, c, err := p.session(ctx, h)
	if err != nil {
		return err
	}
	defer func() { _ = s.Close() }()
	stdin, err := s.StdinPipe()
	if err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	stdout, err := s.StdoutPipe()
	if err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	if err := s.RequestSubsystem("sftp"); err != nil {
		p.drop(h, c, err)
		return fmt.Errorf("sftp: the server has no sftp subsystem (Subsystem sftp in sshd_config): %w", err)
	}
	client, err := sftp.NewClientPipe(stdout, stdin)
	if err != nil {
		return fmt.Errorf("sftp: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = client.Close() })
	err = fn(client)
	if !stop() {
		return fmt.Errorf("sftp: %w", ctx.Err())
	}
	_ = client.Close()
	return err
}

// Upload writes r to remotePath on ep with mode. It writes a temporary file
// next to it and renames it into place, so that readers never see half a
// file.
func (p *Pool) Upload(ctx context.Context, ep Endpoint, r io.Reader, remotePath string, mode fs.FileMode) (int64, error) {
	var n int64
	err := p.SFTP(ctx, ep, func(c *sftp.Client) error {
		tmp := path.Join(path.Dir(remotePath), "."+path.Base(remotePath)+".goscaler-"+randomSuffix())
		f, err := c.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_EXCL)
		if err != nil {
			return fmt.Errorf("upload to %s: %w", remotePath, err)
		}
		n, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = c.Chmod(tmp, mode)
		}
		if err == nil {
			err = c.PosixRename(tmp, remotePath)
		}
		if err != nil {
			_ = c.Remove(tmp)
			return fmt.Errorf("upload to %s: %w", remotePath, err)
		}
		return nil
	})
	return n, err
}

// Download copies remotePath on ep to w.
func (p *Pool) Download(ctx context.Context, ep Endpoint, remotePath string, w io.Writer) (int64, error) {
	var n int64
	err := p.SFTP(ctx, ep, func(c *sftp.Client) error {
		f, err := c.Open(remotePath)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("download of %s: no such file: %w", remotePath, err)
			}
			return fmt.Errorf("download of %s: %w", remotePath, err)
		}
		defer func() { _ = f.Close() }()
		n, err = io.Copy(w, f)
		if err != nil {
			return fmt.Errorf("download of %s: %w", remotePath, err)
		}
		return nil
	})
	return n, err
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
