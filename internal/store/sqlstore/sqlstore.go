// Package sqlstore implements store.Store on SQLite (modernc.org/sqlite) and
// PostgreSQL (pgx) with plain database/sql and hand-written SQL.
//
// Both dialects share the queries: $1..$n placeholders, INSERT … ON CONFLICT
// and RETURNING work on both. What differs lives in the migrations (identity
// columns, column types) and in a few explicit branches (row locking).
// Times are BIGINT unix milliseconds UTC, 0 meaning the zero time.Time.
package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/goscaler/goscaler/internal/store"
)

const (
	dialectSQLite   = "sqlite"
	dialectPostgres = "postgres"

	// sqliteParams are appended to every SQLite DSN.
	sqliteParams = "_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_txlock=immediate"

	// defaultActivityLimit is ActivityList's limit when the filter has none.
	defaultActivityLimit = 100
	// sampleBatch is how many samples one INSERT carries.
	sampleBatch = 500
	// seriesBatch is how many series one INSERT … RETURNING resolves.
	seriesBatch = 300
)

// queryer is what *sql.DB and *sql.Tx have in common: every query of the Store
// goes through one, so that a transaction-bound Store never touches the pool.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Store is a store.Store backed by SQLite or PostgreSQL.
type Store struct {
	db      *sql.DB
	pool    *pgxpool.Pool // PostgreSQL only
	dialect string
	q       queryer // db, or tx when the Store is bound to a transaction
	tx      *sql.Tx
	// series caches the IDs of series; shared with transaction-bound copies.
	series *seriesCache
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) and migrates the database.
//
// dsn "" means SQLite at filepath.Join(dataDir, "goscaler.db"); "sqlite:PATH" or
// a path ending in .db means SQLite at PATH; "postgres://…" or "postgresql://…"
// means PostgreSQL.
func Open(ctx context.Context, dsn, dataDir string) (*Store, error) {
	dialect, target, err := parseDSN(dsn, dataDir)
	if err != nil {
		return nil, err
	}
	var s *Store
	switch dialect {
	case dialectSQLite:
		s, err = openSQLite(ctx, target)
	default:
		s, err = openPostgres(ctx, target)
	}
	if err != nil {
		return nil, err
	}
	if _, err := migrate(ctx, s.db, s.dialect); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	return s, nil
}

// parseDSN returns the dialect and, for SQLite, the database file path or, for
// PostgreSQL, the connection string.
func parseDSN(dsn, dataDir string) (dialect, target string, err error) {
	lower := strings.ToLower(dsn)
	switch {
	case dsn == "":
		if dataDir == "" {
			return "", "", errors.New("open store: no database DSN and no data directory")
		}
		return dialectSQLite, filepath.Join(dataDir, "goscaler.db"), nil
	case strings.HasPrefix(lower, "postgres://"), strings.HasPrefix(lower, "postgresql://"):
		return dialectPostgres, dsn, nil
	case strings.HasPrefix(lower, "sqlite:"):
		p := dsn[len("sqlite:"):]
		// Accept the URL-like sqlite:///abs/path and sqlite://rel/path too.
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return "", "", errors.New("open store: sqlite: DSN without a path")
		}
		if strings.Contains(p, "?") {
			return "", "", fmt.Errorf("open store: sqlite path %q: query parameters are not supported", p)
		}
		return dialectSQLite, p, nil
	case strings.HasSuffix(dsn, ".db"):
		if strings.Contains(dsn, "?") {
			return "", "", fmt.Errorf("open store: sqlite path %q: query parameters are not supported", dsn)
		}
		return dialectSQLite, dsn, nil
	default:
		// Do not echo dsn: it may hold a password.
		return "", "", errors.New(`open store: unrecognized database DSN (want "", "sqlite:PATH", a path ending in .db, or postgres://…)`)
	}
}

func openSQLite(ctx context.Context, path string) (*Store, error) {
	if path != ":memory:" {
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return nil, fmt.Errorf("open sqlite %s: create directory: %w", path, err)
		}
	}
	db, err := sql.Open("sqlite", path+"?"+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	// SQLite has one writer; one connection also keeps transactions from
	// waiting on each other's locks (and makes :memory: a single database).
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return &Store{db: db, dialect: dialectSQLite, q: db, series: newSeriesCache()}, nil
}

func openPostgres(ctx context.Context, dsn string) (*Store, error) {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	return &Store{db: db, pool: pool, dialect: dialectPostgres, q: db, series: newSeriesCache()}, nil
}

// DB returns the database/sql handle (both dialects).
func (s *Store) DB() *sql.DB { return s.db }

// Pool returns the pgx pool on PostgreSQL, nil on SQLite.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Dialect names the database: "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// Close releases the database. It fails on a transaction-bound Store.
func (s *Store) Close() error {
	if s.tx != nil {
		return errors.New("sqlstore: Close called on a transaction-bound store")
	}
	err := s.db.Close()
	if s.pool != nil {
		s.pool.Close()
	}
	return err
}

// Tx runs fn with a Store bound to one transaction, committed if fn returns
// nil and rolled back otherwise (fn's error is returned as is).
func (s *Store) Tx(ctx context.Context, fn func(store.Store) error) error {
	if s.tx != nil {
		return errors.New("sqlstore: nested Tx on a transaction-bound store")
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	done := false
	defer func() {
		if !done {
			_ = tx.Rollback() // fn panicked
		}
	}()
	ts := &Store{db: s.db, pool: s.pool, dialect: s.dialect, q: tx, tx: tx, series: s.series}
	if err := fn(ts); err != nil {
		done = true
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			return errors.Join(err, fmt.Errorf("rollback: %w", rbErr))
		}
		return err
	}
	done = true
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// inTx runs fn in the Store's transaction if it is bound to one, otherwise in a
// new transaction.
func (s *Store) inTx(ctx context.Context, fn func(q queryer) error) error {
	if s.tx != nil {
		return fn(s.tx)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// forUpdate is the row-locking suffix of a SELECT in a transaction: PostgreSQL
// needs it, SQLite transactions (BEGIN IMMEDIATE) already hold the write lock.
func (s *Store) forUpdate() string {
	if s.dialect == dialectPostgres {
		return " FOR UPDATE"
	}
	return ""
}

// --- helpers ---

// scanner is *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// toMS converts t to unix milliseconds, the zero time to 0.
func toMS(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS converts unix milliseconds to a UTC time, 0 to the zero time.
func fromMS(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// nowMS is the current time in unix milliseconds.
func nowMS() int64 { return time.Now().UnixMilli() }

// floatParam stores NaN as NULL (SQLite cannot hold NaN).
func floatParam(v float64) sql.NullFloat64 {
	return sql.NullFloat64{Float64: v, Valid: !math.IsNaN(v)}
}

// isUnique reports whether err is a unique-constraint violation.
func isUnique(err error) bool {
	if err == nil {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505"
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return true
		}
	}
	return strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// where accumulates AND-ed conditions with numbered placeholders.
type where struct {
	conds []string
	args  []any
}

// add appends cond, whose "?" is replaced by the next placeholder, with arg.
func (w *where) add(cond string, arg any) {
	w.args = append(w.args, arg)
	w.conds = append(w.conds, strings.Replace(cond, "?", fmt.Sprintf("$%d", len(w.args)), 1))
}

// in appends "col IN (…)" for vals.
func (w *where) in(col string, vals []string) {
	ph := make([]string, len(vals))
	for i, v := range vals {
		w.args = append(w.args, v)
		ph[i] = fmt.Sprintf("$%d", len(w.args))
	}
	w.conds = append(w.conds, col+" IN ("+strings.Join(ph, ", ")+")")
}

// next returns the next placeholder for arg.
func (w *where) next(arg any) string {
	w.args = append(w.args, arg)
	return fmt.Sprintf("$%d", len(w.args))
}

// sql returns " WHERE …" or "".
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// queryAll runs a query and scans every row with scan.
func queryAll[T any](ctx context.Context, q queryer, query string, args []any, scan func(scanner) (T, error)) ([]T, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// --- activities ---

const activityCols = `id, parent_id, cluster, node, trigger_name, kind, cause, status, step, params, output, error, created_at, started_at, finished_at`

func scanActivity(sc scanner) (store.Activity, error) {
	var (
		a                                store.Activity
		status, params                   string
		createdAt, startedAt, finishedAt int64
	)
	err := sc.Scan(&a.ID, &a.ParentID, &a.Cluster, &a.Node, &a.Trigger, &a.Kind, &a.Cause, &status, &a.Step,
		&params, &a.Output, &a.Error, &createdAt, &startedAt, &finishedAt)
	if err != nil {
		return store.Activity{}, err
	}
	a.Status = store.ActivityStatus(status)
	if params != "" {
		a.Params = json.RawMessage(params)
	}
	a.CreatedAt, a.StartedAt, a.FinishedAt = fromMS(createdAt), fromMS(startedAt), fromMS(finishedAt)
	return a, nil
}

// ActivityCreate inserts a and returns it with ID and CreatedAt set.
func (s *Store) ActivityCreate(ctx context.Context, a store.Activity) (store.Activity, error) {
	if len(a.Params) > 0 && !json.Valid(a.Params) {
		return store.Activity{}, fmt.Errorf("create activity %q of cluster %q: params are not valid JSON", a.Kind, a.Cluster)
	}
	created := toMS(a.CreatedAt)
	if created == 0 {
		created = nowMS()
	}
	out, err := scanActivity(s.q.QueryRowContext(ctx, `INSERT INTO activities
		(parent_id, cluster, node, trigger_name, kind, cause, status, step, params, output, error, created_at, started_at, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
		RETURNING `+activityCols,
		a.ParentID, a.Cluster, a.Node, a.Trigger, a.Kind, a.Cause, string(a.Status), a.Step, string(a.Params),
		a.Output, a.Error, created, toMS(a.StartedAt), toMS(a.FinishedAt)))
	if err != nil {
		return store.Activity{}, fmt.Errorf("create activity %q of cluster %q: %w", a.Kind, a.Cluster, err)
	}
	return out, nil
}

// ActivityGet returns one activity or store.ErrNotFound.
func (s *Store) ActivityGet(ctx context.Context, id int64) (store.Activity, error) {
	a, err := scanActivity(s.q.QueryRowContext(ctx, `SELECT `+activityCols+` FROM activities WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Activity{}, fmt.Errorf("activity %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Activity{}, fmt.Errorf("get activity %d: %w", id, err)
	}
	return a, nil
}

// ActivityList returns activities matching f, newest (largest ID) first.
func (s *Store) ActivityList(ctx context.Context, f store.ActivityFilter) ([]store.Activity, error) {
	var w where
	if f.Cluster != "" {
		w.add("cluster = ?", f.Cluster)
	}
	if f.Node != "" {
		w.add("node = ?", f.Node)
	}
	if f.Kind != "" {
		w.add("kind = ?", f.Kind)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	if f.ParentID != 0 {
		w.add("parent_id = ?", f.ParentID)
	}
	if f.AfterID != 0 {
		w.add("id > ?", f.AfterID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultActivityLimit
	}
	query := `SELECT ` + activityCols + ` FROM activities` + w.sql() + ` ORDER BY id DESC LIMIT `
	query += w.next(limit)
	out, err := queryAll(ctx, s.q, query, w.args, scanActivity)
	if err != nil {
		return nil, fmt.Errorf("list activities: %w", err)
	}
	return out, nil
}

// ActivityUpdate applies the non-zero fields of u to the activity;
// store.ErrNotFound if it does not exist.
func (s *Store) ActivityUpdate(ctx context.Context, id int64, u store.ActivityUpdate) (store.Activity, error) {
	args := []any{id}
	var sets []string
	set := func(col string, v any) {
		args = append(args, v)
		sets = append(sets, fmt.Sprintf("%s = $%d", col, len(args)))
	}
	if u.Status != "" {
		set("status", string(u.Status))
	}
	if u.Output != "" {
		set("output", u.Output)
	}
	if u.Error != "" {
		set("error", u.Error)
	}
	if !u.StartedAt.IsZero() {
		set("started_at", toMS(u.StartedAt))
	}
	if !u.FinishedAt.IsZero() {
		set("finished_at", toMS(u.FinishedAt))
	}
	if len(sets) == 0 {
		return s.ActivityGet(ctx, id)
	}
	a, err := scanActivity(s.q.QueryRowContext(ctx,
		`UPDATE activities SET `+strings.Join(sets, ", ")+` WHERE id = $1 RETURNING `+activityCols, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Activity{}, fmt.Errorf("activity %d: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Activity{}, fmt.Errorf("update activity %d: %w", id, err)
	}
	return a, nil
}

// --- clusters ---

const clusterCols = `name, min_size, max_size, desired, created_at, updated_at, stopped`

func scanCluster(sc scanner) (store.Cluster, error) {
	var (
		c                    store.Cluster
		createdAt, updatedAt int64
	)
	if err := sc.Scan(&c.Name, &c.Min, &c.Max, &c.Desired, &createdAt, &updatedAt, &c.Stopped); err != nil {
		return store.Cluster{}, err
	}
	c.CreatedAt, c.UpdatedAt = fromMS(createdAt), fromMS(updatedAt)
	return c, nil
}

// ClusterDelete removes a cluster's row (its nodes and history stay). Deleting
// a cluster that does not exist is not an error.
func (s *Store) ClusterDelete(ctx context.Context, name string) error {
	if _, err := s.q.ExecContext(ctx, `DELETE FROM clusters WHERE name = $1`, name); err != nil {
		return fmt.Errorf("delete cluster %q: %w", name, err)
	}
	return nil
}

// ClusterGet returns one cluster or store.ErrNotFound.
func (s *Store) ClusterGet(ctx context.Context, name string) (store.Cluster, error) {
	c, err := scanCluster(s.q.QueryRowContext(ctx, `SELECT `+clusterCols+` FROM clusters WHERE name = $1`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Cluster{}, fmt.Errorf("cluster %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Cluster{}, fmt.Errorf("get cluster %q: %w", name, err)
	}
	return c, nil
}

// ClusterList returns every cluster, by name.
func (s *Store) ClusterList(ctx context.Context) ([]store.Cluster, error) {
	out, err := queryAll(ctx, s.q, `SELECT `+clusterCols+` FROM clusters ORDER BY name`, nil, scanCluster)
	if err != nil {
		return nil, fmt.Errorf("list clusters: %w", err)
	}
	return out, nil
}

// ClusterSetDesired sets the desired size (not clamped: the caller decides);
// store.ErrNotFound if the cluster does not exist.
func (s *Store) ClusterSetDesired(ctx context.Context, name string, desired int) (store.Cluster, error) {
	if desired < 0 {
		return store.Cluster{}, fmt.Errorf("cluster %q: negative desired size %d", name, desired)
	}
	c, err := scanCluster(s.q.QueryRowContext(ctx,
		`UPDATE clusters SET desired = $2, updated_at = $3 WHERE name = $1 RETURNING `+clusterCols,
		name, desired, nowMS()))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Cluster{}, fmt.Errorf("cluster %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Cluster{}, fmt.Errorf("set desired size of cluster %q: %w", name, err)
	}
	return c, nil
}

// ClusterSetStopped marks a cluster stopped (kept at zero nodes) or started;
// store.ErrNotFound if the cluster does not exist.
func (s *Store) ClusterSetStopped(ctx context.Context, name string, stopped bool) (store.Cluster, error) {
	c, err := scanCluster(s.q.QueryRowContext(ctx,
		`UPDATE clusters SET stopped = $2, updated_at = $3 WHERE name = $1 RETURNING `+clusterCols,
		name, stopped, nowMS()))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Cluster{}, fmt.Errorf("cluster %q: %w", name, store.ErrNotFound)
	}
	if err != nil {
		return store.Cluster{}, fmt.Errorf("set stopped of cluster %q: %w", name, err)
	}
	return c, nil
}

// ClusterUpsert creates the cluster with c's fields (Desired clamped into
// [Min, Max], CreatedAt kept if set), or updates Min and Max of an existing one
// and clamps its Desired into [Min, Max], keeping it otherwise. Stopped is
// set on creation and kept on update.
func (s *Store) ClusterUpsert(ctx context.Context, c store.Cluster) (store.Cluster, error) {
	if c.Name == "" {
		return store.Cluster{}, errors.New("upsert cluster: empty name")
	}
	if c.Min < 0 || c.Max < c.Min {
		return store.Cluster{}, fmt.Errorf("upsert cluster %q: invalid bounds min %d, max %d", c.Name, c.Min, c.Max)
	}
	desired := min(max(c.Desired, c.Min), c.Max)
	now := nowMS()
	created := toMS(c.CreatedAt)
	if created == 0 {
		created = now
	}
	out, err := scanCluster(s.q.QueryRowContext(ctx, `INSERT INTO clusters (`+clusterCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (name) DO UPDATE SET
			min_size = excluded.min_size,
			max_size = excluded.max_size,
			desired = CASE
				WHEN clusters.desired < excluded.min_size THEN excluded.min_size
				WHEN clusters.desired > excluded.max_size THEN excluded.max_size
				ELSE clusters.desired END,
			updated_at = excluded.updated_at
		RETURNING `+clusterCols,
		c.Name, c.Min, c.Max, desired, created, now, c.Stopped))
	if err != nil {
		return store.Cluster{}, fmt.Errorf("upsert cluster %q: %w", c.Name, err)
	}
	return out, nil
}

// --- leader lease ---

// LeaderAttemptElect makes holder the leader of name until now+ttl if there is
// no leader, the lease expired (expiry <= now), or holder already holds it. It
// reports whether holder is the leader afterwards.
func (s *Store) LeaderAttemptElect(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, fmt.Errorf("elect leader %q: empty name or holder %q", name, holder)
	}
	if ttl <= 0 {
		return false, fmt.Errorf("elect leader %q: non-positive ttl %s", name, ttl)
	}
	// The WHERE of DO UPDATE leaves a live lease of another holder alone, in
	// which case nothing is returned.
	var got string
	err := s.q.QueryRowContext(ctx, `INSERT INTO leader_leases (name, holder, elected_at, expires_at)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET
			holder = excluded.holder,
			elected_at = CASE WHEN leader_leases.holder = excluded.holder
				THEN leader_leases.elected_at ELSE excluded.elected_at END,
			expires_at = excluded.expires_at
		WHERE leader_leases.holder = excluded.holder OR leader_leases.expires_at <= excluded.elected_at
		RETURNING holder`,
		name, holder, toMS(now), toMS(now.Add(ttl))).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("elect leader %q: %w", name, err)
	}
	return got == holder, nil
}

// LeaderResign gives up the lease if holder holds it.
func (s *Store) LeaderResign(ctx context.Context, name, holder string) error {
	if _, err := s.q.ExecContext(ctx, `DELETE FROM leader_leases WHERE name = $1 AND holder = $2`, name, holder); err != nil {
		return fmt.Errorf("resign leader %q: %w", name, err)
	}
	return nil
}

// --- meta ---

// MetaGet returns a value of the key/value table or store.ErrNotFound.
func (s *Store) MetaGet(ctx context.Context, key string) (string, error) {
	var v string
	err := s.q.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("meta %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get meta %q: %w", key, err)
	}
	return v, nil
}

// MetaSet stores value under key, replacing any previous value.
func (s *Store) MetaSet(ctx context.Context, key, value string) error {
	_, err := s.q.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("set meta %q: %w", key, err)
	}
	return nil
}

// MetaSetIfAbsent stores value under key unless the key exists, and returns the
// stored value either way.
func (s *Store) MetaSetIfAbsent(ctx context.Context, key, value string) (string, error) {
	var v string
	// The no-op DO UPDATE makes RETURNING yield the existing row.
	err := s.q.QueryRowContext(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = meta.value
		RETURNING value`, key, value).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("set meta %q: %w", key, err)
	}
	return v, nil
}

// --- nodes ---

const nodeCols = `id, cluster, state, machine_id, address, launch_activity, launch_index, maintenance, reason, meta, created_at, updated_at, in_service_at, terminated_at`

func scanNode(sc scanner) (store.Node, error) {
	var (
		n                                          store.Node
		state, meta                                string
		createdAt, updatedAt, inService, terminate int64
	)
	err := sc.Scan(&n.ID, &n.Cluster, &state, &n.MachineID, &n.Address, &n.LaunchActivity, &n.LaunchIndex,
		&n.Maintenance, &n.Reason, &meta, &createdAt, &updatedAt, &inService, &terminate)
	if err != nil {
		return store.Node{}, err
	}
	n.State = store.NodeState(state)
	if meta != "" && meta != "{}" {
		if err := json.Unmarshal([]byte(meta), &n.Meta); err != nil {
			return store.Node{}, fmt.Errorf("node %q: decode meta: %w", n.ID, err)
		}
	}
	n.CreatedAt, n.UpdatedAt = fromMS(createdAt), fromMS(updatedAt)
	n.InServiceAt, n.TerminatedAt = fromMS(inService), fromMS(terminate)
	return n, nil
}

func encodeMeta(m map[string]string) (string, error) {
	if len(m) == 0 {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// insertNodeEvent records a state change of node id.
func insertNodeEvent(ctx context.Context, q queryer, id string, at int64, from, to store.NodeState, reason string) error {
	_, err := q.ExecContext(ctx, `INSERT INTO node_events (node_id, at, from_state, to_state, reason)
		VALUES ($1, $2, $3, $4, $5)`, id, at, string(from), string(to), reason)
	if err != nil {
		return fmt.Errorf("record event of node %q: %w", id, err)
	}
	return nil
}

// NodeCreate inserts a node (CreatedAt kept if set) and records a NodeEvent
// from "" to n.State; store.ErrConflict if its ID, or its (LaunchActivity,
// LaunchIndex) pair when LaunchActivity != 0, already exists.
func (s *Store) NodeCreate(ctx context.Context, n store.Node) (store.Node, error) {
	if n.ID == "" {
		return store.Node{}, fmt.Errorf("create node of cluster %q: empty ID", n.Cluster)
	}
	meta, err := encodeMeta(n.Meta)
	if err != nil {
		return store.Node{}, fmt.Errorf("create node %q: encode meta: %w", n.ID, err)
	}
	now := nowMS()
	created := toMS(n.CreatedAt)
	if created == 0 {
		created = now
	}
	var out store.Node
	err = s.inTx(ctx, func(q queryer) error {
		var err error
		out, err = scanNode(q.QueryRowContext(ctx, `INSERT INTO nodes (`+nodeCols+`)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
			RETURNING `+nodeCols,
			n.ID, n.Cluster, string(n.State), n.MachineID, n.Address, n.LaunchActivity, n.LaunchIndex,
			n.Maintenance, n.Reason, meta, created, now, toMS(n.InServiceAt), toMS(n.TerminatedAt)))
		if isUnique(err) {
			return fmt.Errorf("node %q (launch %d/%d): %w", n.ID, n.LaunchActivity, n.LaunchIndex, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("create node %q: %w", n.ID, err)
		}
		return insertNodeEvent(ctx, q, n.ID, now, "", n.State, n.Reason)
	})
	if err != nil {
		return store.Node{}, err
	}
	return out, nil
}

// NodeEvents returns a node's state changes, oldest first (none for an unknown node).
func (s *Store) NodeEvents(ctx context.Context, id string) ([]store.NodeEvent, error) {
	out, err := queryAll(ctx, s.q, `SELECT node_id, at, from_state, to_state, reason
		FROM node_events WHERE node_id = $1 ORDER BY id`, []any{id},
		func(sc scanner) (store.NodeEvent, error) {
			var (
				e        store.NodeEvent
				at       int64
				from, to string
			)
			if err := sc.Scan(&e.NodeID, &at, &from, &to, &e.Reason); err != nil {
				return store.NodeEvent{}, err
			}
			e.At, e.From, e.To = fromMS(at), store.NodeState(from), store.NodeState(to)
			return e, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list events of node %q: %w", id, err)
	}
	return out, nil
}

// NodeGet returns one node or store.ErrNotFound.
func (s *Store) NodeGet(ctx context.Context, id string) (store.Node, error) {
	n, err := scanNode(s.q.QueryRowContext(ctx, `SELECT `+nodeCols+` FROM nodes WHERE id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Node{}, fmt.Errorf("node %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return store.Node{}, fmt.Errorf("get node %q: %w", id, err)
	}
	return n, nil
}

// NodeList returns nodes matching f, oldest (by CreatedAt, then ID) first.
func (s *Store) NodeList(ctx context.Context, f store.NodeFilter) ([]store.Node, error) {
	var w where
	if f.Cluster != "" {
		w.add("cluster = ?", f.Cluster)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		w.in("state", states)
	}
	out, err := queryAll(ctx, s.q, `SELECT `+nodeCols+` FROM nodes`+w.sql()+` ORDER BY created_at, id`, w.args, scanNode)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	return out, nil
}

// NodeNextSeq returns the next number for naming a node of cluster (1, 2, …),
// never the same twice for one cluster.
func (s *Store) NodeNextSeq(ctx context.Context, cluster string) (int64, error) {
	var seq int64
	err := s.q.QueryRowContext(ctx, `INSERT INTO node_seq (cluster, seq) VALUES ($1, 1)
		ON CONFLICT (cluster) DO UPDATE SET seq = node_seq.seq + 1
		RETURNING seq`, cluster).Scan(&seq)
	if err != nil {
		return 0, fmt.Errorf("next node number of cluster %q: %w", cluster, err)
	}
	return seq, nil
}

// NodeUpdate stores every field of n (by n.ID) except CreatedAt, which never
// changes, and sets UpdatedAt. If n.State differs from the stored state it
// records a NodeEvent with n.Reason. store.ErrNotFound if the node does not
// exist; store.ErrConflict if its new (LaunchActivity, LaunchIndex) is taken.
func (s *Store) NodeUpdate(ctx context.Context, n store.Node) (store.Node, error) {
	meta, err := encodeMeta(n.Meta)
	if err != nil {
		return store.Node{}, fmt.Errorf("update node %q: encode meta: %w", n.ID, err)
	}
	now := nowMS()
	var out store.Node
	err = s.inTx(ctx, func(q queryer) error {
		var old string
		err := q.QueryRowContext(ctx, `SELECT state FROM nodes WHERE id = $1`+s.forUpdate(), n.ID).Scan(&old)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("node %q: %w", n.ID, store.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("update node %q: %w", n.ID, err)
		}
		out, err = scanNode(q.QueryRowContext(ctx, `UPDATE nodes SET
				cluster = $2, state = $3, machine_id = $4, address = $5, launch_activity = $6,
				launch_index = $7, maintenance = $8, reason = $9, meta = $10, updated_at = $11,
				in_service_at = $12, terminated_at = $13
			WHERE id = $1 RETURNING `+nodeCols,
			n.ID, n.Cluster, string(n.State), n.MachineID, n.Address, n.LaunchActivity,
			n.LaunchIndex, n.Maintenance, n.Reason, meta, now,
			toMS(n.InServiceAt), toMS(n.TerminatedAt)))
		if isUnique(err) {
			return fmt.Errorf("node %q (launch %d/%d): %w", n.ID, n.LaunchActivity, n.LaunchIndex, store.ErrConflict)
		}
		if err != nil {
			return fmt.Errorf("update node %q: %w", n.ID, err)
		}
		if store.NodeState(old) == n.State {
			return nil
		}
		return insertNodeEvent(ctx, q, n.ID, now, store.NodeState(old), n.State, n.Reason)
	})
	if err != nil {
		return store.Node{}, err
	}
	return out, nil
}

// --- servers ---

// ServerHeartbeat upserts s (by ID); a zero HeartbeatAt means now.
func (s *Store) ServerHeartbeat(ctx context.Context, srv store.Server) error {
	if srv.ID == "" {
		return errors.New("server heartbeat: empty server ID")
	}
	hb := toMS(srv.HeartbeatAt)
	if hb == 0 {
		hb = nowMS()
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO servers (id, hostname, pid, started_at, heartbeat_at)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (id) DO UPDATE SET
			hostname = excluded.hostname,
			pid = excluded.pid,
			started_at = excluded.started_at,
			heartbeat_at = excluded.heartbeat_at`,
		srv.ID, srv.Hostname, srv.PID, toMS(srv.StartedAt), hb)
	if err != nil {
		return fmt.Errorf("heartbeat of server %q: %w", srv.ID, err)
	}
	return nil
}

// ServerList returns the servers, newest heartbeat first.
func (s *Store) ServerList(ctx context.Context) ([]store.Server, error) {
	out, err := queryAll(ctx, s.q, `SELECT id, hostname, pid, started_at, heartbeat_at
		FROM servers ORDER BY heartbeat_at DESC, id`, nil,
		func(sc scanner) (store.Server, error) {
			var (
				srv           store.Server
				started, beat int64
			)
			if err := sc.Scan(&srv.ID, &srv.Hostname, &srv.PID, &started, &beat); err != nil {
				return store.Server{}, err
			}
			srv.StartedAt, srv.HeartbeatAt = fromMS(started), fromMS(beat)
			return srv, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list servers: %w", err)
	}
	return out, nil
}

// --- trigger states ---

const triggerStateCols = `cluster, trigger_name, past_since, last_value, last_fired_at, cooldown_until, firings`

func scanTriggerState(sc scanner) (store.TriggerState, error) {
	var (
		ts                    store.TriggerState
		past, fired, cooldown int64
		last                  sql.NullFloat64
	)
	if err := sc.Scan(&ts.Cluster, &ts.Trigger, &past, &last, &fired, &cooldown, &ts.Firings); err != nil {
		return store.TriggerState{}, err
	}
	ts.PastSince, ts.LastFiredAt, ts.CooldownUntil = fromMS(past), fromMS(fired), fromMS(cooldown)
	ts.LastValue = math.NaN()
	if last.Valid {
		ts.LastValue = last.Float64
	}
	return ts, nil
}

// TriggerStateGet returns a trigger's state or store.ErrNotFound.
func (s *Store) TriggerStateGet(ctx context.Context, cluster, trigger string) (store.TriggerState, error) {
	ts, err := scanTriggerState(s.q.QueryRowContext(ctx, `SELECT `+triggerStateCols+`
		FROM trigger_states WHERE cluster = $1 AND trigger_name = $2`, cluster, trigger))
	if errors.Is(err, sql.ErrNoRows) {
		return store.TriggerState{}, fmt.Errorf("trigger %q of cluster %q: %w", trigger, cluster, store.ErrNotFound)
	}
	if err != nil {
		return store.TriggerState{}, fmt.Errorf("get trigger %q of cluster %q: %w", trigger, cluster, err)
	}
	return ts, nil
}

// TriggerStateList returns the trigger states of a cluster ("" for all), by
// cluster and trigger.
func (s *Store) TriggerStateList(ctx context.Context, cluster string) ([]store.TriggerState, error) {
	var w where
	if cluster != "" {
		w.add("cluster = ?", cluster)
	}
	out, err := queryAll(ctx, s.q, `SELECT `+triggerStateCols+` FROM trigger_states`+w.sql()+
		` ORDER BY cluster, trigger_name`, w.args, scanTriggerState)
	if err != nil {
		return nil, fmt.Errorf("list trigger states of cluster %q: %w", cluster, err)
	}
	return out, nil
}

// TriggerStatePut stores ts, replacing any state of the same trigger.
func (s *Store) TriggerStatePut(ctx context.Context, ts store.TriggerState) error {
	if ts.Cluster == "" || ts.Trigger == "" {
		return fmt.Errorf("put trigger state: empty cluster %q or trigger %q", ts.Cluster, ts.Trigger)
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO trigger_states (`+triggerStateCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (cluster, trigger_name) DO UPDATE SET
			past_since = excluded.past_since,
			last_value = excluded.last_value,
			last_fired_at = excluded.last_fired_at,
			cooldown_until = excluded.cooldown_until,
			firings = excluded.firings`,
		ts.Cluster, ts.Trigger, toMS(ts.PastSince), floatParam(ts.LastValue), toMS(ts.LastFiredAt),
		toMS(ts.CooldownUntil), ts.Firings)
	if err != nil {
		return fmt.Errorf("put trigger %q of cluster %q: %w", ts.Trigger, ts.Cluster, err)
	}
	return nil
}
