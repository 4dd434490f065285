// Package jobs runs goscaler's durable work — action steps, node launches and
// node terminations — as River jobs in the same database as the store (SQLite
// or PostgreSQL), with retries and backoff.
//
// Durability rules:
//   - Every job is unique by its arguments (an activity or node ID) among
//     unfinished jobs, so enqueueing the same work twice, for example when
//     recovering after a crash, makes one job.
//   - A job left "running" by a server that died (kill -9) is made available
//     again by the next server: at once on SQLite (one server per data
//     directory), or once the dead server's heartbeat is stale on PostgreSQL.
//     Handlers are idempotent, so the re-run completes the work once in effect.
package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// Handlers do the work of each job kind. attempt is 1 on the first try.
type Handlers struct {
	RunAction     func(ctx context.Context, activityID int64, attempt int) error
	LaunchNode    func(ctx context.Context, nodeID string, attempt int) error
	TerminateNode func(ctx context.Context, nodeID string, attempt int) error
}

// ActionArgs is the job of one action step.
type ActionArgs struct {
	ActivityID int64 `json:"activity_id"`
}

// Kind names the job kind.
func (ActionArgs) Kind() string { return "action" }

// LaunchArgs is the job that brings one node into service.
type LaunchArgs struct {
	NodeID string `json:"node_id"`
}

// Kind names the job kind.
func (LaunchArgs) Kind() string { return "launch_node" }

// TerminateArgs is the job that drains and terminates one node.
type TerminateArgs struct {
	NodeID string `json:"node_id"`
}

// Kind names the job kind.
func (TerminateArgs) Kind() string { return "terminate_node" }

// unfinished are the job states in which an identical job is not inserted
// again. A finished (completed, discarded, cancelled) job does not block a new
// one: every handler is idempotent, so running again after completion is safe
// and is how stuck work is retried.
var unfinished = []rivertype.JobState{rivertype.JobStateAvailable, rivertype.JobStatePending,
	rivertype.JobStateRetryable, rivertype.JobStateRunning, rivertype.JobStateScheduled}

// MaxAttempts is how often a job is tried before it is discarded.
const MaxAttempts = 6

// Queue enqueues and runs jobs.
type Queue interface {
	// Enqueue inserts a job unless an identical one exists.
	Enqueue(ctx context.Context, args river.JobArgs) error
	// Start runs workers until Stop.
	Start(ctx context.Context) error
	// Stop waits for running jobs to finish (or ctx to be done).
	Stop(ctx context.Context) error
	// RequeueOrphans makes jobs left running by dead servers available again;
	// live lists the IDs of servers that are alive (this one included).
	RequeueOrphans(ctx context.Context, live []string) (int, error)
}

// Options configures a Queue.
type Options struct {
	// ClientID identifies this server in the jobs' attempted_by (its server ID).
	ClientID string
	// Workers is how many jobs run at once.
	Workers  int
	Handlers Handlers
	Logger   *slog.Logger
	// PollInterval is how often the queue looks for new jobs (SQLite has no
	// LISTEN/NOTIFY).
	PollInterval time.Duration
}

// OpenSQLite migrates River's tables into db and returns a queue on it.
func OpenSQLite(ctx context.Context, db *sql.DB, opts Options) (Queue, error) {
	return open[*sql.Tx](ctx, riversqlite.New(db), db, opts)
}

// OpenPostgres migrates River's tables into pool's database and returns a queue on it.
func OpenPostgres(ctx context.Context, pool *pgxpool.Pool, db *sql.DB, opts Options) (Queue, error) {
	return open[pgx.Tx](ctx, riverpgxv5.New(pool), db, opts)
}

func open[TTx any](ctx context.Context, driver riverdriver.Driver[TTx], db *sql.DB, opts Options) (Queue, error) {
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: quiet(opts.Logger)})
	if err != nil {
		return nil, fmt.Errorf("jobs: preparing migrations: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("jobs: migrating the job tables: %w", err)
	}
	workers := river.NewWorkers()
	h := opts.Handlers
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[ActionArgs]) error {
		return h.RunAction(ctx, j.Args.ActivityID, j.Attempt)
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[LaunchArgs]) error {
		return h.LaunchNode(ctx, j.Args.NodeID, j.Attempt)
	}))
	river.AddWorker(workers, river.WorkFunc(func(ctx context.Context, j *river.Job[TerminateArgs]) error {
		return h.TerminateNode(ctx, j.Args.NodeID, j.Attempt)
	}))
	n := opts.Workers
	if n <= 0 {
		n = 20
	}
	poll := opts.PollInterval
	if poll <= 0 {
		poll = 200 * time.Millisecond
	}
	client, err := river.NewClient(driver, &river.Config{
		ID:                opts.ClientID,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: n}},
		Workers:           workers,
		Logger:            quiet(opts.Logger),
		MaxAttempts:       MaxAttempts,
		FetchPollInterval: poll,
		FetchCooldown:     min(poll, 5*time.Millisecond),
		// Steps bound their own time (boot timeout, script timeout, drain
		// timeout); a job timeout would cut a long but healthy launch short.
		JobTimeout:  -1,
		RetryPolicy: backoff{},
	})
	if err != nil {
		return nil, fmt.Errorf("jobs: creating the River client: %w", err)
	}
	return &queue[TTx]{client: client, db: db, id: opts.ClientID}, nil
}

// quiet lowers River's own logging to warnings: its info lines are noise to an operator.
func quiet(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.Default()
	}
	return slog.New(levelFilter{Handler: l.Handler(), min: slog.LevelWarn}).With("component", "river")
}

type levelFilter struct {
	slog.Handler
	min slog.Level
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= f.min && f.Handler.Enabled(ctx, l)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{Handler: f.Handler.WithAttrs(a), min: f.min}
}

func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{Handler: f.Handler.WithGroup(name), min: f.min}
}

// backoff retries after 1s, 2s, 4s, … capped at one minute: cluster work is
// urgent, unlike River's default of attempt⁴ seconds.
type backoff struct{}

func (backoff) NextRetry(j *rivertype.JobRow) time.Time {
	d := time.Second << min(j.Attempt-1, 6)
	return time.Now().Add(min(d, time.Minute))
}

type queue[TTx any] struct {
	client *river.Client[TTx]
	db     *sql.DB
	id     string
}

func (q *queue[TTx]) Enqueue(ctx context.Context, args river.JobArgs) error {
	_, err := q.client.Insert(ctx, args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: unfinished}})
	if err != nil {
		return fmt.Errorf("jobs: enqueueing %s: %w", args.Kind(), err)
	}
	return nil
}

func (q *queue[TTx]) Start(ctx context.Context) error {
	if err := q.client.Start(ctx); err != nil {
		return fmt.Errorf("jobs: starting: %w", err)
	}
	return nil
}

func (q *queue[TTx]) Stop(ctx context.Context) error {
	// Give running jobs a moment to finish, then cancel them: every handler
	// resumes from the store, so a cancelled job is finished by the next start.
	soft, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := q.client.Stop(soft); err == nil {
		return nil
	}
	err := q.client.StopAndCancel(ctx)
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("jobs: stopping: %w", err)
	}
	return nil
}

func (q *queue[TTx]) RequeueOrphans(ctx context.Context, live []string) (int, error) {
	alive := map[string]bool{q.id: true}
	for _, id := range live {
		alive[id] = true
	}
	res, err := q.client.JobList(ctx, river.NewJobListParams().States(rivertype.JobStateRunning).First(1000))
	if err != nil {
		return 0, fmt.Errorf("jobs: listing running jobs: %w", err)
	}
	n := 0
	for _, j := range res.Jobs {
		if len(j.AttemptedBy) > 0 && alive[j.AttemptedBy[len(j.AttemptedBy)-1]] {
			continue
		}
		// River has no API to take back a running job; this is the same
		// transition its stuck-job rescuer makes, guarded by the state.
		r, err := q.db.ExecContext(ctx, `UPDATE river_job SET state = 'available' WHERE id = $1 AND state = 'running'`, j.ID)
		if err != nil {
			return n, fmt.Errorf("jobs: requeueing job %d: %w", j.ID, err)
		}
		if c, _ := r.RowsAffected(); c > 0 {
			n++
		}
	}
	return n, nil
}
