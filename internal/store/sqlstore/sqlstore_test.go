package sqlstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/storetest"
)

const defaultTestPostgres = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

func openSQLiteTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), "", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openSQLiteTest(t) })
}

// postgresBase returns the base DSN of the test PostgreSQL, skipping the test
// (failing it when CI=true) if the server cannot be reached.
func postgresBase(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("GOSCALER_TEST_POSTGRES")
	if dsn == "" {
		dsn = defaultTestPostgres
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err == nil {
		err = conn.Ping(ctx)
		_ = conn.Close(context.Background())
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL unreachable (set GOSCALER_TEST_POSTGRES): %v", err)
		}
		t.Skipf("PostgreSQL unreachable, skipping (set GOSCALER_TEST_POSTGRES; with CI=true this fails): %v", err)
	}
	return dsn
}

// openPostgresTest creates a fresh database on the server of base, opens a
// Store on it and drops the database when the test ends.
func openPostgresTest(t *testing.T, base string) *Store {
	t.Helper()
	ctx := t.Context()
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	name := "goscaler_test_" + hex.EncodeToString(b)

	admin := func(sql string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close(context.Background()) }()
		_, err = conn.Exec(ctx, sql)
		return err
	}
	if err := admin(`CREATE DATABASE ` + name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := admin(`DROP DATABASE IF EXISTS ` + name + ` WITH (FORCE)`); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse GOSCALER_TEST_POSTGRES: %v", err)
	}
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "4") // many tests run at once
	u.RawQuery = q.Encode()

	s, err := Open(ctx, u.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // runs before the drop
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	base := postgresBase(t)
	storetest.Run(t, func(t *testing.T) store.Store { return openPostgresTest(t, base) })
}

func TestParseDSN(t *testing.T) {
	t.Parallel()
	tests := []struct {
		dsn, dataDir    string
		dialect, target string
		wantErr         bool
	}{
		{"", "/var/lib/goscaler", "sqlite", "/var/lib/goscaler/goscaler.db", false},
		{"", "", "", "", true},
		{"sqlite:/tmp/x.db", "/data", "sqlite", "/tmp/x.db", false},
		{"sqlite:rel/state", "/data", "sqlite", "rel/state", false},
		{"sqlite:///abs/x.sqlite", "", "sqlite", "/abs/x.sqlite", false},
		{"sqlite::memory:", "", "sqlite", ":memory:", false},
		{"sqlite:", "/data", "", "", true},
		{"sqlite:/tmp/x.db?mode=ro", "", "", "", true},
		{"/srv/goscaler.db", "/data", "sqlite", "/srv/goscaler.db", false},
		{"state.db", "", "sqlite", "state.db", false},
		{"postgres://u:p@h:5432/db?sslmode=disable", "/data", "postgres", "postgres://u:p@h:5432/db?sslmode=disable", false},
		{"postgresql://h/db", "", "postgres", "postgresql://h/db", false},
		{"mysql://u:secret@h/db", "", "", "", true},
		{"/srv/goscaler.sqlite", "", "", "", true},
	}
	for _, tc := range tests {
		dialect, target, err := parseDSN(tc.dsn, tc.dataDir)
		if tc.wantErr {
			if err == nil {
				t.Errorf("parseDSN(%q, %q) = %q, %q; want an error", tc.dsn, tc.dataDir, dialect, target)
			} else if strings.Contains(err.Error(), "secret") {
				t.Errorf("parseDSN(%q) error leaks the password: %v", tc.dsn, err)
			}
			continue
		}
		if err != nil || dialect != tc.dialect || target != tc.target {
			t.Errorf("parseDSN(%q, %q) = %q, %q, %v; want %q, %q", tc.dsn, tc.dataDir, dialect, target, err, tc.dialect, tc.target)
		}
	}
}

func TestOpenSQLiteCreatesDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	s, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Close() }()
	if s.Dialect() != "sqlite" || s.Pool() != nil || s.DB() == nil {
		t.Fatalf("Dialect %q, Pool %v, DB %v", s.Dialect(), s.Pool(), s.DB())
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&^0o750 != 0 {
		t.Errorf("data dir mode %v, want at most 0750", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "goscaler.db")); err != nil {
		t.Fatal(err)
	}
	var mode string
	if err := s.DB().QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}

	// The sqlite: form and a .db path open the same kind of database.
	for _, dsn := range []string{"sqlite:" + filepath.Join(dir, "other"), filepath.Join(dir, "third.db")} {
		s2, err := Open(t.Context(), dsn, "")
		if err != nil {
			t.Fatalf("Open(%q): %v", dsn, err)
		}
		_ = s2.Close()
	}
}

func TestOpenBadDSN(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, dsn := range []string{"nonsense", "postgres://nobody@127.0.0.1:1/x?connect_timeout=1", "sqlite:" + filepath.Join(t.TempDir(), "f", "\x00.db")} {
		if s, err := Open(ctx, dsn, ""); err == nil {
			_ = s.Close()
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

// testMigrateTwice checks that migrating an up-to-date database is a no-op.
func testMigrateTwice(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	if _, err := s.ClusterUpsert(ctx, store.Cluster{Name: "web", Max: 3, Desired: 2}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		n, err := migrate(ctx, s.DB(), s.Dialect())
		if err != nil || n != 0 {
			t.Fatalf("migrate again = %d, %v; want 0, nil", n, err)
		}
	}
	var count, max int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*), MAX(version) FROM schema_migrations`).Scan(&count, &max); err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(s.Dialect())
	if err != nil {
		t.Fatal(err)
	}
	if count != len(ms) || max != ms[len(ms)-1].version {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d up to %d", count, max, len(ms), ms[len(ms)-1].version)
	}
	if c, err := s.ClusterGet(ctx, "web"); err != nil || c.Desired != 2 {
		t.Fatalf("data after migrate: %+v, %v", c, err)
	}
}

func TestMigrateTwiceSQLite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openSQLiteTest(t)
	testMigrateTwice(t, s)

	// Reopening an existing file migrates nothing and keeps the data.
	s1, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s1.MetaSetIfAbsent(t.Context(), "k", "v"); err != nil {
		t.Fatal(err)
	}
	_ = s1.Close()
	s2, err := Open(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s2.Close() }()
	if v, err := s2.MetaGet(t.Context(), "k"); err != nil || v != "v" {
		t.Fatalf("MetaGet after reopen = %q, %v", v, err)
	}
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	base := postgresBase(t)
	s := openPostgresTest(t, base)
	if s.Pool() == nil || s.Dialect() != "postgres" {
		t.Fatalf("Pool %v, Dialect %q", s.Pool(), s.Dialect())
	}
	testMigrateTwice(t, s)

	// Concurrent migrators on a fresh database serialize on the advisory lock.
	s2 := openPostgresTest(t, base)
	if _, err := s2.DB().ExecContext(t.Context(), `DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	all, err := loadMigrations(dialectPostgres)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
		errs  []error
	)
	for range 4 {
		wg.Go(func() {
			n, err := migrate(t.Context(), s2.DB(), dialectPostgres)
			mu.Lock()
			defer mu.Unlock()
			total += n
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil || total != len(all) {
		t.Fatalf("concurrent migrate applied %d in all, %v; want %d (each migration once), nil", total, err, len(all))
	}
	testMigrateTwice(t, s2)
}

func TestLoadMigrations(t *testing.T) {
	t.Parallel()
	for _, d := range []string{dialectSQLite, dialectPostgres} {
		ms, err := loadMigrations(d)
		if err != nil || len(ms) == 0 || ms[0].version != 1 {
			t.Fatalf("loadMigrations(%s) = %d migrations, %v", d, len(ms), err)
		}
		for i := 1; i < len(ms); i++ {
			if ms[i].version <= ms[i-1].version {
				t.Fatalf("migrations of %s out of order", d)
			}
		}
	}
}

// TestTxBoundStore checks the implementation details of a transaction-bound Store.
func TestTxBoundStore(t *testing.T) {
	t.Parallel()
	s := openSQLiteTest(t)
	err := s.Tx(t.Context(), func(tx store.Store) error {
		if err := tx.Close(); err == nil {
			t.Error("Close on a transaction-bound store succeeded")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A panic in fn rolls back and leaves the store usable.
	func() {
		defer func() { _ = recover() }()
		_ = s.Tx(t.Context(), func(tx store.Store) error {
			if _, err := tx.MetaSetIfAbsent(t.Context(), "k", "v"); err != nil {
				return err
			}
			panic("boom")
		})
	}()
	if _, err := s.MetaGet(t.Context(), "k"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MetaGet after panicking Tx: %v, want ErrNotFound", err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	s := openSQLiteTest(t)
	ctx := t.Context()
	if _, err := s.ActivityCreate(ctx, store.Activity{Kind: "scale", Params: json.RawMessage(`{bad`)}); err == nil {
		t.Error("ActivityCreate with invalid params JSON succeeded")
	}
	if _, err := s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 3, Max: 1}); err == nil {
		t.Error("ClusterUpsert with min > max succeeded")
	}
	if _, err := s.ClusterUpsert(ctx, store.Cluster{}); err == nil {
		t.Error("ClusterUpsert without a name succeeded")
	}
	if _, err := s.NodeCreate(ctx, store.Node{Cluster: "web"}); err == nil {
		t.Error("NodeCreate without an ID succeeded")
	}
	if _, err := s.LeaderAttemptElect(ctx, "l", "a", time.Now(), 0); err == nil {
		t.Error("LeaderAttemptElect with ttl 0 succeeded")
	}
	// Creating a cluster clamps its desired size.
	c, err := s.ClusterUpsert(ctx, store.Cluster{Name: "web", Min: 2, Max: 4, Desired: 9})
	if err != nil || c.Desired != 4 {
		t.Errorf("ClusterUpsert(create, desired above max) = %+v, %v; want desired 4", c, err)
	}
}

// TestNaN checks that NaN values, which SQLite cannot hold, round-trip.
func TestNaN(t *testing.T) {
	t.Parallel()
	s := openSQLiteTest(t)
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_000).UTC()
	if err := s.SampleInsert(ctx, []store.Sample{
		{Cluster: "web", Counter: "ratio", At: at, Value: math.NaN()},
		{Cluster: "web", Counter: "ratio", At: at.Add(time.Second), Value: math.Inf(1)},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "ratio"})
	if err != nil || len(got) != 2 || !math.IsNaN(got[0].Value) || !got[0].OK() || !math.IsInf(got[1].Value, 1) {
		t.Fatalf("SampleList = %+v, %v; want NaN then +Inf", got, err)
	}
	if err := s.TriggerStatePut(ctx, store.TriggerState{Cluster: "web", Trigger: "t", LastValue: math.NaN()}); err != nil {
		t.Fatal(err)
	}
	ts, err := s.TriggerStateGet(ctx, "web", "t")
	if err != nil || !math.IsNaN(ts.LastValue) {
		t.Fatalf("TriggerStateGet = %+v, %v; want LastValue NaN", ts, err)
	}
}
