package builtin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// healthLoop checks every registered backend each HealthInterval until the
// balancer closes.
func (b *Balancer) healthLoop() {
	t := time.NewTicker(b.cfg.HealthInterval.D())
	defer t.Stop()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
			b.checkAll()
		}
	}
}

// checkAll checks the backends in rotation concurrently and waits for the
// results.
func (b *Balancer) checkAll() {
	type target struct {
		be   *backend
		addr string
	}
	b.mu.Lock()
	targets := make([]target, 0, len(b.order))
	for _, be := range b.order {
		targets = append(targets, target{be, be.addr})
	}
	b.mu.Unlock()

	var wg sync.WaitGroup
	for _, tg := range targets {
		wg.Go(func() {
			b.record(tg.be, tg.addr, b.probe(tg.addr))
		})
	}
	wg.Wait()
}

// probe sends one health check to addr: nil for a 2xx or 3xx answer.
func (b *Balancer) probe(addr string) error {
	ctx, cancel := context.WithTimeout(b.ctx, b.cfg.HealthTimeout.D())
	defer cancel()
	path := b.healthPath
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("health check request: %w", err)
	}
	req.Header.Set("User-Agent", "goscaler-lb-health")
	res, err := b.health.Do(req)
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	// Read a little of the body so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode >= 400 {
		return fmt.Errorf("health check: GET %s answered %s", path, res.Status)
	}
	return nil
}

// record applies a health check result of be (checked at addr) and logs when
// the backend leaves or re-enters the rotation.
func (b *Balancer) record(be *backend, addr string, err error) {
	if b.ctx.Err() != nil {
		return // closing: the check was aborted, not failed
	}
	var out, back bool
	var fails int
	b.mu.Lock()
	if be.draining || be.addr != addr || b.backends[be.id] != be {
		b.mu.Unlock()
		return // deregistered or moved while being checked
	}
	if err == nil {
		be.fails = 0
		if !be.healthy {
			be.healthy, back = true, true
		}
	} else {
		be.fails++
		fails = be.fails
		if be.healthy && be.fails >= b.cfg.UnhealthyThreshold {
			be.healthy, out = false, true
		}
	}
	b.mu.Unlock()

	switch {
	case out:
		b.log.Warn("backend out of rotation: health checks failing", "node", be.id, "address", addr,
			"failures", fails, "error", err)
	case back:
		b.log.Info("backend back in rotation: health check passed", "node", be.id, "address", addr)
	case err != nil:
		b.log.Debug("backend health check failed", "node", be.id, "address", addr, "failures", fails, "error", err)
	}
}
