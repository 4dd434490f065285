package controller

import (
	"context"
	"testing"
	"time"

	afake "github.com/goscaler/goscaler/internal/action/fake"
	"github.com/goscaler/goscaler/internal/store"
)

const benchYAML = `
server:
  tick: 1s
clusters:
  - name: web
    min: 0
    max: 1
    provider: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
    counters:
      - {name: queue, type: fake, instance: "{{I}}", scope: cluster, interval: 1h}
    triggers:
      - name: drain-queue
        counter: queue
        above: 10
        for: 1s
        actions:
          - {type: fake, instance: "{{I}}", name: signal}
`

// BenchmarkTriggerToFirstAction measures goscaler's own latency from the
// sample that completes a trigger's "for" window to the start of the
// trigger's first action: evaluating the trigger, recording the decision in
// SQLite, enqueueing the step on River, River fetching it, and the step's
// handler loading and starting the action. The sampling interval itself is
// not included: the collection is called directly, with a manual clock that
// makes "for" hold at once. On SQLite, River learns of a new job through a
// notification table it polls every 50ms, which bounds the figure.
func BenchmarkTriggerToFirstAction(b *testing.B) {
	clock := newManualClock()
	// The queue as the server opens it (default poll interval).
	e := newEnv(b, benchYAML, withClock(clock), withPollInterval(0)).start()
	ctx := context.Background()
	cl := e.ctl.clusters["web"]
	k := cl.cfg.Counter("queue")
	started := make(chan afake.Record, 1)
	e.act.OnRun(func(r afake.Record) { started <- r })
	e.src.SetCluster(50)

	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		e.ctl.collectOnce(ctx, cl, k) // the streak begins
		clock.Advance(time.Second)
		b.StartTimer()

		t0 := time.Now()
		e.ctl.collectOnce(ctx, cl, k) // "for" holds: the trigger fires
		var rec afake.Record
		select {
		case rec = <-started:
		case <-time.After(10 * time.Second):
			b.Fatalf("iteration %d: the action did not start", i)
		}
		total += time.Since(t0)

		b.StopTimer()
		// The firing must be finished before the next one can happen.
		deadline := time.Now().Add(10 * time.Second)
		for {
			a, err := e.st.ActivityGet(ctx, rec.ActivityID)
			if err != nil {
				b.Fatal(err)
			}
			if a.Status == store.ActivitySucceeded {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("iteration %d: the step is %s", i, a.Status)
			}
			time.Sleep(time.Millisecond)
		}
		b.StartTimer()
	}
	b.StopTimer()
	if n := len(e.kind("web", "trigger")); n != b.N {
		b.Fatalf("%d firings for %d iterations", n, b.N)
	}
	b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "ms/fire")
}
