// Package agent is goscaler's node agent and its server side.
//
// The agent (`goscaler agent`, Run) runs on a node: every interval it measures
// its counters (shell commands whose output is a number) and sends them with
// a heartbeat to the server, POST /api/v1/agent/heartbeat with a bearer token.
// The server's Hub keeps the latest report of each node, in memory and, in
// batches, in the store: the report survives a restart and reaches the
// leading server when another one received it. The controller fails a node
// whose agent stops reporting (a cluster's heartbeat.timeout), and the
// "agent" counter source reads the pushed values.
package agent

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/store"
)

// Hub timing.
const (
	// FlushEvery is how often received reports are written to the store.
	FlushEvery = time.Second
	// SyncEvery is how often, on a database shared by several servers, the
	// reports other servers received are read.
	SyncEvery = time.Second
	// Keep is how long a report is kept after it was received.
	Keep = 24 * time.Hour
)

// Hub holds the latest report of every node's agent. It is safe for
// concurrent use.
type Hub struct {
	st    store.Store
	now   func() time.Time
	log   *slog.Logger
	share bool // several servers share the store: read what the others received

	mu      sync.RWMutex
	latest  map[string]store.AgentReport // by node
	pending map[string]store.AgentReport // received, not yet in the store
	synced  time.Time                    // newest ReceivedAt read from the store
}

// NewHub returns a hub on st; now is its clock. With share set (several
// servers on one database), Run also reads the reports the others received.
func NewHub(st store.Store, now func() time.Time, share bool, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{st: st, now: now, share: share, log: log,
		latest: map[string]store.AgentReport{}, pending: map[string]store.AgentReport{}}
}

var _ counter.AgentValues = (*Hub)(nil)

// Receive records a report received now and returns it with ReceivedAt set.
func (h *Hub) Receive(r store.AgentReport) store.AgentReport {
	r.ReceivedAt = h.now()
	if r.Counters == nil {
		r.Counters = map[string]store.AgentReading{}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.latest[r.Node] = r
	h.pending[r.Node] = r
	return r
}

// Latest returns the latest report of node's agent.
func (h *Hub) Latest(node string) (store.AgentReport, bool) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	r, ok := h.latest[node]
	return r, ok
}

// AgentValue returns the latest value of counter name pushed by node's agent.
func (h *Hub) AgentValue(node, name string) (counter.AgentValue, bool, bool, []string) {
	h.mu.RLock()
	r, reported := h.latest[node]
	h.mu.RUnlock()
	if !reported {
		return counter.AgentValue{}, false, false, nil
	}
	v, ok := r.Counters[name]
	if !ok {
		return counter.AgentValue{}, false, true, slices.Sorted(maps.Keys(r.Counters))
	}
	return counter.AgentValue{Value: v.Value, Err: v.Err, Age: h.now().Sub(r.ReceivedAt)}, true, true, nil
}

// prune forgets the reports received before before.
func (h *Hub) prune(before time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for node, r := range h.latest {
		if r.ReceivedAt.Before(before) {
			delete(h.latest, node)
		}
	}
}

// Load reads the reports of the last Keep from the store (at startup: the
// last heartbeats survive a restart).
func (h *Hub) Load(ctx context.Context) error {
	return h.read(ctx, h.now().Add(-Keep))
}

// read merges the stored reports received at or after since.
func (h *Hub) read(ctx context.Context, since time.Time) error {
	rs, err := h.st.AgentReportList(ctx, since)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range rs {
		if cur, ok := h.latest[r.Node]; !ok || r.ReceivedAt.After(cur.ReceivedAt) {
			h.latest[r.Node] = r
		}
		if r.ReceivedAt.After(h.synced) {
			h.synced = r.ReceivedAt
		}
	}
	return nil
}

// Flush writes the reports received since the last flush to the store.
func (h *Hub) Flush(ctx context.Context) error {
	h.mu.Lock()
	if len(h.pending) == 0 {
		h.mu.Unlock()
		return nil
	}
	batch := slices.Collect(maps.Values(h.pending))
	h.pending = map[string]store.AgentReport{}
	h.mu.Unlock()
	if err := h.st.AgentReportPut(ctx, batch); err != nil {
		// Put them back unless a newer report arrived meanwhile.
		h.mu.Lock()
		for _, r := range batch {
			if _, newer := h.pending[r.Node]; !newer {
				h.pending[r.Node] = r
			}
		}
		h.mu.Unlock()
		return err
	}
	return nil
}

// Run flushes received reports every FlushEvery, reads the reports other
// servers received (when the store is shared) and prunes old ones, until ctx
// is done; then it flushes once more.
func (h *Hub) Run(ctx context.Context) {
	if err := h.Load(ctx); err != nil && ctx.Err() == nil {
		h.log.Warn("loading agent reports failed", "err", err)
	}
	t := time.NewTicker(FlushEvery)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			if err := h.Flush(flush); err != nil {
				h.log.Warn("storing agent reports failed", "err", err)
			}
			cancel()
			return
		case <-t.C:
		}
		if err := h.Flush(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("storing agent reports failed", "err", err)
		}
		if h.share {
			h.mu.RLock()
			// A little overlap: a report stored by another server may carry
			// a ReceivedAt a bit older than one already read.
			since := h.synced.Add(-2 * SyncEvery)
			h.mu.RUnlock()
			if err := h.read(ctx, since); err != nil && ctx.Err() == nil {
				h.log.Warn("reading agent reports failed", "err", err)
			}
		}
		if now := h.now(); now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			h.prune(now.Add(-Keep))
			if _, err := h.st.AgentReportPrune(ctx, now.Add(-Keep)); err != nil && !errors.Is(err, context.Canceled) {
				h.log.Warn("pruning agent reports failed", "err", err)
			}
		}
	}
}
