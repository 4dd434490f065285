package jobs

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/goscaler/goscaler/internal/store/sqlstore"
)

// recorder is a set of handlers that report each call.
type recorder struct {
	mu      sync.Mutex
	actions []int64
	calls   chan string
}

func newRecorder() *recorder { return &recorder{calls: make(chan string, 100)} }

func (r *recorder) handlers() Handlers {
	return Handlers{
		RunAction: func(_ context.Context, id int64, _ int) error {
			r.mu.Lock()
			r.actions = append(r.actions, id)
			r.mu.Unlock()
			r.calls <- "action"
			return nil
		},
		LaunchNode:    func(context.Context, string, int) error { r.calls <- "launch"; return nil },
		TerminateNode: func(context.Context, string, int) error { r.calls <- "terminate"; return nil },
	}
}

func (r *recorder) actionIDs() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int64(nil), r.actions...)
}

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	st, err := sqlstore.Open(t.Context(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st.DB()
}

func openQueue(t *testing.T, db *sql.DB, id string, h Handlers) Queue {
	t.Helper()
	q, err := OpenSQLite(t.Context(), db, Options{ClientID: id, Handlers: h, PollInterval: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func countJobs(t *testing.T, db *sql.DB, where string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM river_job WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnqueueIsUniqueByArgs(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	q := openQueue(t, db, "srv-a", newRecorder().handlers())
	ctx := t.Context()
	// Every args enqueued twice; activity 2 is distinct work from activity 1.
	all := []river.JobArgs{
		ActionArgs{ActivityID: 1}, ActionArgs{ActivityID: 2},
		LaunchArgs{NodeID: "web-1"}, TerminateArgs{NodeID: "web-1"},
	}
	for _, args := range all {
		for range 2 {
			if err := q.Enqueue(ctx, args); err != nil {
				t.Fatal(err)
			}
		}
	}
	for kind, want := range map[string]int{"action": 2, "launch_node": 1, "terminate_node": 1} {
		if got := countJobs(t, db, "kind = $1", kind); got != want {
			t.Errorf("%d %s jobs after enqueueing each args twice, want %d", got, kind, want)
		}
	}
}

func TestEnqueueAgainAfterCompletion(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	rec := newRecorder()
	q := openQueue(t, db, "srv-a", rec.handlers())
	ctx := t.Context()
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Stop(context.Background()) })
	if err := q.Enqueue(ctx, ActionArgs{ActivityID: 5}); err != nil {
		t.Fatal(err)
	}
	waitCall(t, rec, "action")
	deadline := time.Now().Add(5 * time.Second)
	for countJobs(t, db, "state = 'completed'") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the job did not complete")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A finished job does not block the same work from being enqueued again
	// (handlers are idempotent; this is how stuck work is retried).
	if err := q.Enqueue(ctx, ActionArgs{ActivityID: 5}); err != nil {
		t.Fatal(err)
	}
	waitCall(t, rec, "action")
}

func waitCall(t *testing.T, r *recorder, want string) {
	t.Helper()
	select {
	case got := <-r.calls:
		if got != want {
			t.Fatalf("handler %s ran, want %s", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("handler %s did not run", want)
	}
}

func TestRequeueOrphans(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	rec := newRecorder()
	q := openQueue(t, db, "srv-new", rec.handlers())
	ctx := t.Context()
	for _, id := range []int64{1, 2, 3} {
		if err := q.Enqueue(ctx, ActionArgs{ActivityID: id}); err != nil {
			t.Fatal(err)
		}
	}
	// Job 1 was running on a server that died (kill -9); job 2 runs on a live
	// server; job 3 is still available.
	running := func(activityID int64, by string) {
		t.Helper()
		_, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
			attempted_at = CURRENT_TIMESTAMP, attempted_by = jsonb(json_array($1))
			WHERE kind = 'action' AND json_extract(args, '$.activity_id') = $2`, by, activityID)
		if err != nil {
			t.Fatal(err)
		}
	}
	running(1, "srv-dead")
	running(2, "srv-alive")
	if got := countJobs(t, db, "state = 'running'"); got != 2 {
		t.Fatalf("%d running jobs, want 2", got)
	}

	n, err := q.RequeueOrphans(ctx, []string{"srv-alive"})
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("RequeueOrphans = %d, want 1 (the dead server's job only)", n)
	}
	if got := countJobs(t, db, "state = 'running'"); got != 1 {
		t.Fatalf("%d running jobs after requeue, want 1 (the live server's)", got)
	}
	// Again: nothing more to do.
	if n, err := q.RequeueOrphans(ctx, []string{"srv-alive"}); err != nil || n != 0 {
		t.Fatalf("second RequeueOrphans = %d, %v", n, err)
	}

	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Stop(context.Background()) })
	waitCall(t, rec, "action")
	waitCall(t, rec, "action")
	select {
	case c := <-rec.calls:
		t.Fatalf("a third job ran (%s): the live server's running job was taken", c)
	case <-time.After(300 * time.Millisecond):
	}
	ids := rec.actionIDs()
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{1, 3}) {
		t.Fatalf("ran activities %v, want 1 and 3", ids)
	}
}

func TestRequeueOrphansKeepsOwnJobs(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	q := openQueue(t, db, "srv-me", newRecorder().handlers())
	ctx := t.Context()
	if err := q.Enqueue(ctx, LaunchArgs{NodeID: "web-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE river_job SET state = 'running', attempt = 1,
		attempted_at = CURRENT_TIMESTAMP, attempted_by = jsonb(json_array('srv-me'))`); err != nil {
		t.Fatal(err)
	}
	// This server is alive even when live does not list it.
	if n, err := q.RequeueOrphans(ctx, nil); err != nil || n != 0 {
		t.Fatalf("RequeueOrphans = %d, %v; want 0: the job is this server's own", n, err)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		attempt int
		want    time.Duration
	}{
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 4 * time.Second},
		{6, 32 * time.Second},
		{7, time.Minute},
		{20, time.Minute},
	}
	for _, tt := range tests {
		before := time.Now()
		got := backoff{}.NextRetry(&rivertype.JobRow{Attempt: tt.attempt}).Sub(before)
		if got < tt.want || got > tt.want+time.Second {
			t.Errorf("attempt %d: retry in %s, want %s", tt.attempt, got, tt.want)
		}
	}
}
