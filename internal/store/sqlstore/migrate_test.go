package sqlstore

import (
	"context"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// checkSeriesMigration rebuilds s's schema at version 1, stores samples the
// way version 1 did, migrates to the latest version, and checks that every
// sample is still there with its series and that new samples join them.
func checkSeriesMigration(t *testing.T, s *Store, reset string) {
	t.Helper()
	ctx := t.Context()
	db := s.DB()
	if _, err := db.ExecContext(ctx, reset); err != nil {
		t.Fatal(err)
	}
	if _, err := migrateTo(ctx, db, s.dialect, 1); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, row := range []struct {
		node  string
		at    time.Time
		value any
		err   string
		rep   int
	}{
		{"", at, 1.5, "", 2},
		{"web-1", at, 1.0, "", 0},
		{"web-2", at, nil, "refused", 0},
		{"", at.Add(time.Second), 2.5, "", 2},
	} {
		if _, err := db.ExecContext(ctx, `INSERT INTO samples (cluster, counter, node, at, value, err, reporting)
			VALUES ('web', 'cpu', $1, $2, $3, $4, $5)`, row.node, row.at.UnixMilli(), row.value, row.err, row.rep); err != nil {
			t.Fatal(err)
		}
	}
	n, err := migrate(ctx, db, s.dialect)
	if err != nil || n < 1 {
		t.Fatalf("migrate after version 1: %d applied, %v", n, err)
	}
	s.series.clear()
	if err := s.SampleInsert(ctx, []store.Sample{{Cluster: "web", Counter: "cpu", Node: "web-1", At: at.Add(time.Second), Value: 3, Expected: 2}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.SampleList(ctx, store.SampleFilter{Cluster: "web", Counter: "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Sample{
		{Cluster: "web", Counter: "cpu", At: at, Value: 1.5, Reporting: 2},
		{Cluster: "web", Counter: "cpu", Node: "web-1", At: at, Value: 1},
		{Cluster: "web", Counter: "cpu", Node: "web-2", At: at, Err: "refused"},
		{Cluster: "web", Counter: "cpu", At: at.Add(time.Second), Value: 2.5, Reporting: 2},
		{Cluster: "web", Counter: "cpu", Node: "web-1", At: at.Add(time.Second), Value: 3, Expected: 2},
	}
	if len(got) != len(want) {
		t.Fatalf("after the migration: %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("sample %d after the migration: %+v, want %+v", i, got[i], want[i])
		}
	}
	var series int
	if err := db.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM series`).Scan(&series); err != nil || series != 3 {
		t.Fatalf("%d series, %v; want 3 (aggregate, web-1, web-2)", series, err)
	}
}

func TestMigrateSamplesToSeriesSQLite(t *testing.T) {
	t.Parallel()
	s := openSQLiteTest(t)
	rows, err := s.DB().QueryContext(t.Context(), `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	if err != nil {
		t.Fatal(err)
	}
	drop := ""
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		drop += "DROP TABLE " + name + ";"
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	checkSeriesMigration(t, s, drop)
}

func TestMigrateSamplesToSeriesPostgres(t *testing.T) {
	t.Parallel()
	s := openPostgresTest(t, postgresBase(t))
	checkSeriesMigration(t, s, `DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
}
