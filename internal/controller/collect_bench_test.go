package controller

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/goscaler/goscaler/internal/counter/httpcounter"
	"github.com/goscaler/goscaler/internal/provider"
	"github.com/goscaler/goscaler/internal/store"
)

// benchNodeServerEnv makes the test binary serve the counters of every
// benchmark node instead of running tests (see TestMain).
const benchNodeServerEnv = "GOSCALER_BENCH_NODE_SERVER"

func TestMain(m *testing.M) {
	if os.Getenv(benchNodeServerEnv) != "" {
		serveBenchNodes()
		return
	}
	os.Exit(m.Run())
}

// serveBenchNodes answers the counters of every benchmark node on one
// address, printed on stdout, until stdin closes (the benchmark ended):
// GET /stats?node=ID is a JSON object, GET /queue?node=ID a bare number.
func serveBenchNodes() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		n := nodeNumber(r.URL.Query().Get("node"))
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"node":%q,"inflight":%d,"cpu":%.3f,"uptime":12345}`, r.URL.Query().Get("node"), n%17, float64(n%100)/100)
	})
	mux.HandleFunc("GET /queue", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%d\n", nodeNumber(r.URL.Query().Get("node"))%50)
	})
	fmt.Println(l.Addr().String())
	go func() { _ = http.Serve(l, mux) }() //nolint:gosec // a benchmark helper on loopback
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

func nodeNumber(id string) int {
	n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	return n
}

// startBenchNodeServer runs serveBenchNodes in a child process (so that its
// CPU is not counted) and returns its address.
func startBenchNodeServer(b *testing.B) string {
	cmd := exec.Command(os.Args[0]) //nolint:gosec // the test binary itself
	cmd.Env = append(os.Environ(), benchNodeServerEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("reading the node server's address: %v", err)
	}
	return strings.TrimSpace(addr)
}

const benchCollectYAML = `
server:
  tick: 1s
clusters:
  - name: fleet
    min: 0
    max: %[1]d
    desired: %[1]d
    provider: {type: fake, instance: "{{I}}"}
    health_check: {type: none}
    counters:
      - {name: inflight, type: http, url: "http://{{.Address}}/stats?node={{.NodeID}}", path: inflight, interval: 10s, timeout: 5s}
      - {name: cpu, type: http, url: "http://{{.Address}}/stats?node={{.NodeID}}", path: cpu, interval: 10s, timeout: 5s}
      - {name: queue, type: http, url: "http://{{.Address}}/queue?node={{.NodeID}}", aggregate: sum, interval: 10s, timeout: 5s}
    triggers:
      - {name: busy, counter: inflight, above: 1000, for: 30s, actions: [{type: deploy_node, count: 1}]}
      - {name: hot, counter: cpu, above: 10, for: 30s, actions: [{type: deploy_node, count: 1}]}
      - {name: backlog, counter: queue, above: 1000000, for: 30s, actions: [{type: deploy_node, count: 1}]}
`

// BenchmarkCollect10kNodes is the counter collection at fleet scale: 10,000
// nodes in service, each with 3 http counters read every 10 s, all served by
// one local process (a child process, so that its CPU is not counted). The
// controller runs as in the server: its own tickers, reconciliation every
// second, housekeeping (rollups, pruning), samples stored in SQLite.
//
// One iteration is one collection round (10 s). Reported: cpu-cores (CPU time
// of this process over the measured rounds divided by their wall time),
// rss-MiB (resident memory at the end) and peak-rss-MiB, lag-p99-ms (how long
// after its tick a reading completed, 99th percentile over every reading of
// the measured rounds) and round-p99-ms (tick to samples stored and triggers
// evaluated), and errors (failed readings; want 0).
//
//	go test -run '^$' -bench Collect10kNodes -benchtime 6x -timeout 30m ./internal/controller/
func BenchmarkCollect10kNodes(b *testing.B) { benchCollect(b, 10000) }

func benchCollect(b *testing.B, nodes int) {
	addr := startBenchNodeServer(b)
	e := newEnv(b, fmt.Sprintf(benchCollectYAML, nodes))
	ctx := context.Background()
	e.prov.SetAddress(func(provider.NodeSpec) string { return addr })
	now := time.Now()
	err := e.st.Tx(ctx, func(tx store.Store) error {
		for i := 1; i <= nodes; i++ {
			id := fmt.Sprintf("fleet-%d", i)
			m, err := e.prov.CreateOwned(ctx, testOwner, provider.NodeSpec{NodeID: id, Cluster: "fleet"})
			if err != nil {
				return err
			}
			if _, err := tx.NodeCreate(ctx, store.Node{ID: id, Cluster: "fleet", State: store.NodeInService,
				MachineID: m.ID, Address: m.Address, InServiceAt: now}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var lagMu sync.Mutex
	var lags, rounds []time.Duration
	e.ctl.readHook = func(lag time.Duration) {
		lagMu.Lock()
		lags = append(lags, lag)
		lagMu.Unlock()
	}
	e.ctl.collectHook = func(took time.Duration) {
		lagMu.Lock()
		rounds = append(rounds, took)
		lagMu.Unlock()
	}
	e.start()
	counters := []string{"inflight", "cpu", "queue"}
	// waitRound waits until every counter has a collection newer than after.
	waitRound := func(after time.Time) time.Time {
		newest := after
		deadline := time.Now().Add(60 * time.Second)
		for _, k := range counters {
			for {
				r, ok := e.ctl.Latest("fleet", k)
				if ok && r.Aggregate.At.After(after) {
					if r.Aggregate.At.After(newest) {
						newest = r.Aggregate.At
					}
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("no collection of %s after %s", k, after.Format(time.TimeOnly))
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		return newest
	}
	// Two warm-up rounds: connections are open, the first rollups ran.
	last := waitRound(time.Time{})
	last = waitRound(last)
	lagMu.Lock()
	lags, rounds = lags[:0], rounds[:0]
	lagMu.Unlock()

	cpu0, wall0 := cpuTime(b), time.Now()
	b.ResetTimer()
	for range b.N {
		last = waitRound(last)
	}
	b.StopTimer()
	cpu, wall := cpuTime(b)-cpu0, time.Since(wall0)

	errs, read := 0, 0
	for _, k := range counters {
		r, _ := e.ctl.Latest("fleet", k)
		for _, s := range r.Nodes {
			read++
			if !s.OK() {
				if errs < 3 {
					b.Logf("%s of %s: %s", k, s.Node, s.Err)
				}
				errs++
			}
		}
	}
	if read != len(counters)*nodes {
		b.Errorf("the last round read %d node counters, want %d", read, len(counters)*nodes)
	}
	lagMu.Lock()
	defer lagMu.Unlock()
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-cores")
	rss, peak := rssMiB(b)
	b.ReportMetric(rss, "rss-MiB")
	b.ReportMetric(peak, "peak-rss-MiB")
	b.ReportMetric(p99(lags), "lag-p99-ms")
	b.ReportMetric(p99(rounds), "round-p99-ms")
	b.ReportMetric(float64(errs), "errors")
	var rows int64
	if err := e.st.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM samples`).Scan(&rows); err != nil {
		b.Fatal(err)
	}
	var size int64
	for _, f := range []string{"goscaler.db", "goscaler.db-wal"} {
		if fi, err := os.Stat(filepath.Join(e.dir, f)); err == nil {
			size += fi.Size()
		}
	}
	if rows > 0 {
		b.ReportMetric(float64(size)/float64(rows), "db-bytes/sample")
	}
}

// p99 is the 99th percentile of ds in milliseconds.
func p99(ds []time.Duration) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[min(len(s)-1, len(s)*99/100)].Microseconds()) / 1000
}

// cpuTime is the user and system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rssMiB returns the resident and peak resident memory of this process.
func rssMiB(b *testing.B) (rss, peak float64) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(f[0], 64)
		switch k {
		case "VmRSS":
			rss = kb / 1024
		case "VmHWM":
			peak = kb / 1024
		}
	}
	return rss, peak
}
