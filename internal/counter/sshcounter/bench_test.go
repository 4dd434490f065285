package sshcounter

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	"github.com/goscaler/goscaler/internal/sshx"
	"github.com/goscaler/goscaler/internal/sshx/sshdtest"
)

// benchCounters are three typical ssh counters.
var benchCounters = []Config{
	{Shell: "cut -d' ' -f1 /proc/loadavg"},
	{Shell: `echo "$SSH_CONNECTION" | cut -d' ' -f4`},
	{Command: []string{"cat", "/proc/sys/kernel/threads-max"}},
}

// cpu returns the CPU time (user + system) this process has used.
func cpu(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSSHCounters50Hosts reads 3 ssh counters on 50 real sshd hosts:
// one round is what the controller does every interval (the 3 counters on
// the 50 nodes at once, 150 readings). Each iteration runs a round over
// reused connections (one per host, dialled before the timer starts) and a
// round with a new connection per reading, and the metrics are the
// goscaler-side CPU (getrusage of this process: user + system) per reading
// in each mode, their ratio, the CPU share of one core that a round every
// 5 s costs, and the wall time of a round.
//
//	go test -run '^$' -bench SSHCounters50Hosts -benchtime 5x ./internal/counter/sshcounter/
func BenchmarkSSHCounters50Hosts(b *testing.B) {
	const hosts, interval = 50, 5 * time.Second
	set := sshdtest.Start(b, hosts)
	// One pool per counter in the new-connection mode, so that Forget after
	// a reading never cuts another counter's; one for all in the reused mode.
	reused := pool(b, set, nil)
	var dial []*sshx.Pool
	for range benchCounters {
		dial = append(dial, pool(b, set, nil))
	}
	build := func(p *sshx.Pool) []counter.Source {
		var out []counter.Source
		for _, c := range benchCounters {
			s, err := c.New(counter.Env{Cluster: "bench", Counter: "c", SSH: p})
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	reusedSrc := build(reused)
	dialSrc := make([][]counter.Source, len(dial))
	for i, p := range dial {
		dialSrc[i] = build(p)
	}
	targets := make([]counter.Target, hosts)
	for i, h := range set.Hosts {
		targets[i] = target(h, fmt.Sprintf("bench-%d", i+1))
	}

	// round reads every counter on every node at once; after is called
	// after each reading (to drop its connection in the dial mode).
	round := func(src func(k int) counter.Source, after func(k, i int)) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		var errs []error
		for k := range benchCounters {
			for i := range targets {
				wg.Go(func() {
					_, err := src(k).Read(ctx, targets[i])
					if after != nil {
						after(k, i)
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, err)
						mu.Unlock()
					}
				})
			}
		}
		wg.Wait()
		if len(errs) > 0 {
			b.Fatalf("%d of %d readings failed; first: %v", len(errs), hosts*len(benchCounters), errs[0])
		}
	}
	reusedRound := func() { round(func(k int) counter.Source { return reusedSrc[k] }, nil) }
	dialRound := func() {
		round(func(k int) counter.Source { return dialSrc[k][k] }, func(k, i int) {
			ep, _ := sshx.NodeEndpoint(targets[i].Address, targets[i].Meta)
			dial[k].Forget(ep)
		})
	}

	// Warm up: connections of the reused mode, code paths of both.
	reusedRound()
	dialRound()
	for _, st := range reused.Stats() {
		if !st.Connected {
			b.Fatalf("%s is not connected after the warm-up", st.Endpoint)
		}
	}

	var reusedCPU, dialCPU, reusedWall, dialWall time.Duration
	b.ResetTimer()
	for range b.N {
		c0, w0 := cpu(b), time.Now()
		reusedRound()
		c1, w1 := cpu(b), time.Now()
		dialRound()
		c2, w2 := cpu(b), time.Now()
		reusedCPU += c1 - c0
		reusedWall += w1.Sub(w0)
		dialCPU += c2 - c1
		dialWall += w2.Sub(w1)
	}
	b.StopTimer()
	for _, st := range reused.Stats() {
		if st.Dials != 1 {
			b.Errorf("%s: %d dials in the reused mode, want 1", st.Endpoint, st.Dials)
		}
	}
	samples := float64(b.N * hosts * len(benchCounters))
	perReused := float64(reusedCPU.Microseconds()) / samples
	perDial := float64(dialCPU.Microseconds()) / samples
	b.ReportMetric(perReused, "reused-cpu-µs/sample")
	b.ReportMetric(perDial, "dial-cpu-µs/sample")
	b.ReportMetric(perDial/perReused, "cpu-ratio")
	// A round every interval: the share of one core.
	b.ReportMetric(100*float64(reusedCPU)/float64(b.N)/float64(interval), "reused-%core@5s")
	b.ReportMetric(100*float64(dialCPU)/float64(b.N)/float64(interval), "dial-%core@5s")
	b.ReportMetric(float64(reusedWall.Milliseconds())/float64(b.N), "reused-ms/round")
	b.ReportMetric(float64(dialWall.Milliseconds())/float64(b.N), "dial-ms/round")
}
