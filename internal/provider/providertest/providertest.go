// Package providertest is the conformance suite of provider.Provider: every
// provider runs it against its real backend (local processes, a cloud or a
// faithful stand-in of its API) to show that it holds the contract written in
// package provider's doc:
//
//   - Create is idempotent per node: calling it again for the same NodeID —
//     at once, concurrently, or from a new provider of the same owner (a
//     server that restarted after a crash) — returns the same machine and
//     never makes a second one;
//   - Get returns a live machine with its cluster, node ID and address;
//   - Delete removes the machine; Delete and Get of a machine that is gone
//     return an error wrapping provider.ErrNotFound;
//   - List returns every machine tagged for one cluster of one owner, and
//     none of another cluster or another owner.
//
// Use it from a provider's tests:
//
//	func TestConformance(t *testing.T) {
//		providertest.Run(t, func(t *testing.T, owner string) provider.Provider {
//			return newProviderFor(t, owner) // same backend for every call within t
//		})
//	}
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/provider"
)

// Factory returns a provider bound to owner. Within one test (one t), every
// provider it returns must work on the same backend (the same cloud, the same
// host): a second call with the same owner is that installation's server
// restarted, a call with another owner is another installation. It arranges
// its own cleanup with t.Cleanup.
type Factory func(t *testing.T, owner string) provider.Provider

// Options tune the suite to a provider's backend.
type Options struct {
	// Settle bounds how long List may lag behind Create and Delete (clouds
	// are eventually consistent); default 30s. The suite polls until then.
	Settle time.Duration
	// Timeout bounds each provider call; default 2 minutes.
	Timeout time.Duration
	// Vars are extra template variables for every NodeSpec (what the
	// provider's configuration in the factory refers to).
	Vars map[string]string
}

// Run runs the suite: each subtest in parallel, with its own owner and
// cluster names.
func Run(t *testing.T, newProvider Factory, opts ...Options) {
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.Settle <= 0 {
		o.Settle = 30 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Minute
	}
	tests := []struct {
		name string
		fn   func(s *suite)
	}{
		{"CreateIsIdempotent", testCreateIdempotent},
		{"CreateIsIdempotentAfterRestart", testCreateAfterRestart},
		{"CreateConcurrently", testCreateConcurrently},
		{"GetRunning", testGet},
		{"DeleteThenGone", testDelete},
		{"ListIsScoped", testListScoped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &suite{t: t, opts: o, newProvider: newProvider, owner: "pt-" + randHex(4), cluster: "c" + randHex(3)}
			tc.fn(s)
		})
	}
}

type suite struct {
	t           *testing.T
	opts        Options
	newProvider Factory
	owner       string
	cluster     string
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// provider returns a provider of owner that deletes, when the test ends,
// every machine it lists for the clusters the test used.
func (s *suite) provider(owner string, clusters ...string) provider.Provider {
	s.t.Helper()
	p := s.newProvider(s.t, owner)
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.Timeout)
		defer cancel()
		for _, c := range clusters {
			ms, err := p.List(ctx, c)
			if err != nil {
				s.t.Logf("cleanup: listing %s: %v", c, err)
				continue
			}
			for _, m := range ms {
				if err := p.Delete(ctx, m.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
					s.t.Errorf("cleanup: deleting machine %s: %v", m.ID, err)
				}
			}
		}
	})
	return p
}

func (s *suite) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), s.opts.Timeout)
}

func (s *suite) spec(cluster, node string) provider.NodeSpec {
	vars := map[string]string{"Cluster": cluster, "NodeID": node}
	for k, v := range s.opts.Vars {
		vars[k] = v
	}
	return provider.NodeSpec{Cluster: cluster, NodeID: node, Vars: vars}
}

func (s *suite) create(p provider.Provider, cluster, node string) provider.Machine {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	m, err := p.Create(ctx, s.spec(cluster, node))
	if err != nil {
		s.t.Fatalf("Create(%s/%s): %v", cluster, node, err)
	}
	if m.ID == "" || m.NodeID != node || m.Cluster != cluster {
		s.t.Fatalf("Create(%s/%s) = %+v: want an ID, the node ID and the cluster", cluster, node, m)
	}
	return m
}

// listed returns the node IDs List shows for cluster, sorted, and the machines.
func (s *suite) list(p provider.Provider, cluster string) ([]string, []provider.Machine) {
	s.t.Helper()
	ctx, cancel := s.ctx()
	defer cancel()
	ms, err := p.List(ctx, cluster)
	if err != nil {
		s.t.Fatalf("List(%s): %v", cluster, err)
	}
	var ids []string
	for _, m := range ms {
		ids = append(ids, m.NodeID)
	}
	slices.Sort(ids)
	return ids, ms
}

// eventually polls List until it shows exactly want (node IDs), within Settle.
func (s *suite) eventually(p provider.Provider, cluster string, want ...string) []provider.Machine {
	s.t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(s.opts.Settle)
	for {
		ids, ms := s.list(p, cluster)
		if slices.Equal(ids, want) || len(ids) == 0 && len(want) == 0 {
			return ms
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("List(%s) shows nodes %v after %s, want %v: %s", cluster, ids, s.opts.Settle, want, describe(ms))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(ms []provider.Machine) string {
	var parts []string
	for _, m := range ms {
		parts = append(parts, fmt.Sprintf("%s(node %s, %s)", m.ID, m.NodeID, m.State))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func testCreateIdempotent(s *suite) {
	p := s.provider(s.owner, s.cluster)
	m1 := s.create(p, s.cluster, "n-1")
	m2 := s.create(p, s.cluster, "n-1")
	if m2.ID != m1.ID {
		s.t.Errorf("Create twice for node n-1 made machines %s and %s, want one", m1.ID, m2.ID)
	}
	ms := s.eventually(p, s.cluster, "n-1")
	if ms[0].ID != m1.ID {
		s.t.Errorf("List shows machine %s, Create returned %s", ms[0].ID, m1.ID)
	}
}

func testCreateAfterRestart(s *suite) {
	p1 := s.provider(s.owner, s.cluster)
	m1 := s.create(p1, s.cluster, "n-1")
	// The server crashed after Create returned and before it stored the
	// machine; the next one retries the launch.
	p2 := s.provider(s.owner, s.cluster)
	s.eventually(p2, s.cluster, "n-1")
	m2 := s.create(p2, s.cluster, "n-1")
	if m2.ID != m1.ID {
		s.t.Errorf("Create after a restart made machine %s, the first server made %s: want the same", m2.ID, m1.ID)
	}
	ms := s.eventually(p2, s.cluster, "n-1")
	if len(ms) != 1 {
		s.t.Errorf("List after the retry: %s, want one machine", describe(ms))
	}
}

func testCreateConcurrently(s *suite) {
	p := s.provider(s.owner, s.cluster)
	const n = 4
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := s.ctx()
			defer cancel()
			m, err := p.Create(ctx, s.spec(s.cluster, "n-1"))
			ids[i], errs[i] = m.ID, err
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			s.t.Fatalf("concurrent Create %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			s.t.Errorf("concurrent Creates for one node made machines %v, want one", ids)
			break
		}
	}
	s.eventually(p, s.cluster, "n-1")
}

func testGet(s *suite) {
	p := s.provider(s.owner, s.cluster)
	m := s.create(p, s.cluster, "n-1")
	ctx, cancel := s.ctx()
	defer cancel()
	got, err := p.Get(ctx, m.ID)
	if err != nil {
		s.t.Fatalf("Get(%s): %v", m.ID, err)
	}
	if got.ID != m.ID || got.NodeID != "n-1" || got.Cluster != s.cluster {
		s.t.Errorf("Get(%s) = %+v, want the machine of node n-1 of %s", m.ID, got, s.cluster)
	}
	if got.State != provider.MachineRunning {
		s.t.Errorf("Get(%s).State = %q (%s), want running", m.ID, got.State, got.Reason)
	}
	if got.Address == "" {
		s.t.Errorf("Get(%s).Address is empty, want where the node serves", m.ID)
	}
}

func testDelete(s *suite) {
	p := s.provider(s.owner, s.cluster)
	m := s.create(p, s.cluster, "n-1")
	keep := s.create(p, s.cluster, "n-2")
	ctx, cancel := s.ctx()
	defer cancel()
	if err := p.Delete(ctx, m.ID); err != nil {
		s.t.Fatalf("Delete(%s): %v", m.ID, err)
	}
	if err := p.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		s.t.Errorf("Delete of a machine already deleted: %v, want an error wrapping provider.ErrNotFound", err)
	}
	if got, err := p.Get(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		s.t.Errorf("Get of a deleted machine = %+v, %v; want an error wrapping provider.ErrNotFound", got, err)
	}
	s.eventually(p, s.cluster, "n-2")
	// A new provider of the same owner (a restarted server) sees the same.
	p2 := s.provider(s.owner, s.cluster)
	if err := p2.Delete(ctx, m.ID); !errors.Is(err, provider.ErrNotFound) {
		s.t.Errorf("Delete of a gone machine by a restarted server: %v, want provider.ErrNotFound", err)
	}
	if err := p2.Delete(ctx, keep.ID); err != nil {
		s.t.Errorf("Delete by a restarted server of a machine it did not create: %v", err)
	}
	s.eventually(p2, s.cluster)
	// After a delete, Create for the same node either makes a new machine or
	// says the node's machine is gone for good (a cloud whose idempotency
	// token outlives the machine); it never returns the deleted machine.
	// goscaler never reuses a node ID, so both are fine.
	ctx2, cancel2 := s.ctx()
	defer cancel2()
	again, err := p2.Create(ctx2, s.spec(s.cluster, "n-1"))
	switch {
	case errors.Is(err, provider.ErrNotFound):
	case err != nil:
		s.t.Errorf("Create after Delete: %v, want a new machine or an error wrapping provider.ErrNotFound", err)
	case again.ID == m.ID:
		s.t.Errorf("Create after Delete returned the deleted machine %s", m.ID)
	default:
		_ = p2.Delete(ctx2, again.ID)
	}
}

func testListScoped(s *suite) {
	other := s.cluster + "x"
	mine := s.provider(s.owner, s.cluster, other)
	theirs := s.provider(s.owner+"-other", s.cluster)
	s.create(mine, s.cluster, "n-1")
	s.create(mine, s.cluster, "n-2")
	s.create(mine, other, "n-3")
	// Another installation with a node of the same name: its own machine.
	t1 := s.create(theirs, s.cluster, "n-1")
	s.eventually(mine, s.cluster, "n-1", "n-2")
	s.eventually(mine, other, "n-3")
	ts := s.eventually(theirs, s.cluster, "n-1")
	if ts[0].ID != t1.ID {
		s.t.Errorf("the other owner lists %s, it created %s", ts[0].ID, t1.ID)
	}
	for _, m := range s.eventually(mine, s.cluster, "n-1", "n-2") {
		if m.ID == t1.ID {
			s.t.Errorf("the other owner's machine %s is listed as ours", t1.ID)
		}
		if m.Cluster != s.cluster || m.State == "" {
			s.t.Errorf("listed machine %+v: want cluster %s and a state", m, s.cluster)
		}
	}
	if ids, ms := s.list(mine, "c"+randHex(3)); len(ids) != 0 {
		s.t.Errorf("List of a cluster without machines: %s, want none", describe(ms))
	}
}
