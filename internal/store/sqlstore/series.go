package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// A series is one counter of one node, or its cluster aggregate (node ""):
// samples and rollups refer to it by ID.

// seriesKey names a series.
type seriesKey struct{ cluster, counter, node string }

// seriesCacheTTL is how long resolved series IDs are trusted. SeriesPrune
// empties the cache of its own Store; the TTL bounds how long another server
// (that led before) may keep the ID of a series pruned since.
const seriesCacheTTL = 10 * time.Minute

// seriesCache maps series to their IDs. It only holds committed rows.
type seriesCache struct {
	mu   sync.Mutex
	ids  map[seriesKey]int64
	born time.Time
}

func newSeriesCache() *seriesCache {
	return &seriesCache{ids: map[seriesKey]int64{}, born: time.Now()}
}

// get returns the cached IDs of keys and the keys it does not know.
func (c *seriesCache) get(keys []seriesKey, ids map[seriesKey]int64) (missing []seriesKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.born) > seriesCacheTTL {
		c.ids, c.born = map[seriesKey]int64{}, time.Now()
	}
	for _, k := range keys {
		if id, ok := c.ids[k]; ok {
			ids[k] = id
			continue
		}
		missing = append(missing, k)
	}
	return missing
}

func (c *seriesCache) put(ids map[seriesKey]int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, id := range ids {
		c.ids[k] = id
	}
}

func (c *seriesCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ids, c.born = map[seriesKey]int64{}, time.Now()
}

// seriesIDs resolves (creating them as needed) the series of keys. It returns
// every ID and, separately, those it had to look up.
func (s *Store) seriesIDs(ctx context.Context, q queryer, keys []seriesKey) (all, looked map[seriesKey]int64, err error) {
	all = make(map[seriesKey]int64, len(keys))
	missing := s.series.get(keys, all)
	looked = make(map[seriesKey]int64, len(missing))
	for start := 0; start < len(missing); start += seriesBatch {
		batch := missing[start:min(start+seriesBatch, len(missing))]
		var b strings.Builder
		args := make([]any, 0, 3*len(batch))
		// The no-op DO UPDATE makes RETURNING yield existing rows too.
		b.WriteString(`INSERT INTO series (cluster, counter, node) VALUES `)
		for i, k := range batch {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			s.row(&b, n, 3)
			args = append(args, k.cluster, k.counter, k.node)
		}
		b.WriteString(` ON CONFLICT (cluster, counter, node) DO UPDATE SET node = excluded.node
			RETURNING id, cluster, counter, node`)
		rows, err := queryAll(ctx, q, b.String(), args, func(sc scanner) (struct {
			k  seriesKey
			id int64
		}, error) {
			var r struct {
				k  seriesKey
				id int64
			}
			err := sc.Scan(&r.id, &r.k.cluster, &r.k.counter, &r.k.node)
			return r, err
		})
		if err != nil {
			return nil, nil, fmt.Errorf("resolve series: %w", err)
		}
		for _, r := range rows {
			all[r.k], looked[r.k] = r.id, r.id
		}
	}
	return all, looked, nil
}

// row writes the placeholders of one row of a multi-row INSERT whose
// previous rows took n arguments: ($n+1, …) on PostgreSQL, (?, …) on SQLite,
// whose parser looks numbered parameters up by name (quadratic in a
// statement with thousands of them).
func (s *Store) row(b *strings.Builder, n, cols int) {
	b.WriteByte('(')
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if s.dialect == dialectSQLite {
			b.WriteByte('?')
		} else {
			fmt.Fprintf(b, "$%d", n+i+1)
		}
	}
	b.WriteByte(')')
}

// --- samples ---

// SampleInsert stores samples. A failed reading (Err set) is stored without a
// value.
func (s *Store) SampleInsert(ctx context.Context, samples []store.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	keys := make([]seriesKey, 0, 1)
	seen := map[seriesKey]bool{}
	for _, sm := range samples {
		k := seriesKey{sm.Cluster, sm.Counter, sm.Node}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	var looked map[seriesKey]int64
	err := s.inTx(ctx, func(q queryer) error {
		var ids map[seriesKey]int64
		var err error
		ids, looked, err = s.seriesIDs(ctx, q, keys)
		if err != nil {
			return err
		}
		var b strings.Builder
		args := make([]any, 0, 6*min(sampleBatch, len(samples)))
		for start := 0; start < len(samples); start += sampleBatch {
			batch := samples[start:min(start+sampleBatch, len(samples))]
			b.Reset()
			args = args[:0]
			b.WriteString(`INSERT INTO samples (series_id, at, value, err, reporting, expected) VALUES `)
			for i, sm := range batch {
				if i > 0 {
					b.WriteString(", ")
				}
				n := len(args)
				s.row(&b, n, 6)
				value := floatParam(sm.Value)
				if sm.Err != "" {
					value = sql.NullFloat64{}
				}
				args = append(args, ids[seriesKey{sm.Cluster, sm.Counter, sm.Node}], toMS(sm.At), value, sm.Err,
					sm.Reporting, sm.Expected)
			}
			if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("insert %d samples: %w", len(samples), err)
	}
	if s.tx == nil {
		// Committed: the new series exist for good (a transaction-bound
		// store cannot know whether its caller commits).
		s.series.put(looked)
	}
	return nil
}

// seriesWhere adds the conditions on the series table (aliased se) of a
// filter to w.
func seriesWhere(w *where, cluster, counter string, aggregateOnly bool, nodes []string) {
	if cluster != "" {
		w.add("se.cluster = ?", cluster)
	}
	if counter != "" {
		w.add("se.counter = ?", counter)
	}
	switch {
	case aggregateOnly:
		w.add("se.node = ?", "")
	case len(nodes) > 0:
		w.in("se.node", nodes)
	}
}

// SampleList returns samples matching f, oldest first: those at or after
// f.Since (and before f.Until, if set), the newest f.Limit of them if
// f.Limit > 0. Empty Cluster or Counter match everything.
func (s *Store) SampleList(ctx context.Context, f store.SampleFilter) ([]store.Sample, error) {
	var w where
	seriesWhere(&w, f.Cluster, f.Counter, f.AggregateOnly, f.Nodes)
	if !f.Since.IsZero() {
		w.add("sm.at >= ?", toMS(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("sm.at < ?", toMS(f.Until))
	}
	query := `SELECT se.cluster, se.counter, se.node, sm.at, sm.value, sm.err, sm.reporting, sm.expected
		FROM samples sm JOIN series se ON se.id = sm.series_id` + w.sql() + ` ORDER BY sm.at DESC, sm.id DESC`
	if f.Limit > 0 {
		query += ` LIMIT ` + w.next(f.Limit)
	}
	out, err := queryAll(ctx, s.q, query, w.args, func(sc scanner) (store.Sample, error) {
		var (
			sm    store.Sample
			at    int64
			value sql.NullFloat64
		)
		if err := sc.Scan(&sm.Cluster, &sm.Counter, &sm.Node, &at, &value, &sm.Err, &sm.Reporting, &sm.Expected); err != nil {
			return store.Sample{}, err
		}
		sm.At = fromMS(at)
		switch {
		case value.Valid:
			sm.Value = value.Float64
		case sm.Err == "":
			sm.Value = math.NaN()
		}
		return sm, nil
	})
	if err != nil {
		return nil, fmt.Errorf("list samples of %s/%s: %w", f.Cluster, f.Counter, err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// SamplePrune deletes samples older than before and returns how many it deleted.
func (s *Store) SamplePrune(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM samples WHERE at < $1`, toMS(before))
	if err != nil {
		return 0, fmt.Errorf("prune samples: %w", err)
	}
	return n, nil
}

// exec runs a statement and returns how many rows it affected.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// SeriesPrune forgets the series that have neither samples nor rollups left.
func (s *Store) SeriesPrune(ctx context.Context) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM series
		WHERE NOT EXISTS (SELECT 1 FROM samples WHERE samples.series_id = series.id)
		AND NOT EXISTS (SELECT 1 FROM rollups WHERE rollups.series_id = series.id)`)
	if err != nil {
		return 0, fmt.Errorf("prune series: %w", err)
	}
	if n > 0 {
		s.series.clear()
	}
	return n, nil
}

// --- rollups ---

// RollupCompute summarises the buckets of step starting in [from, to) from raw
// samples (src 0) or from the rollups of step src, replacing buckets computed
// before. A zero from starts at the oldest source data.
func (s *Store) RollupCompute(ctx context.Context, step, src time.Duration, from, to time.Time) (int64, error) {
	stepMS, srcMS := step.Milliseconds(), src.Milliseconds()
	switch {
	case stepMS <= 0 || step%time.Millisecond != 0:
		return 0, fmt.Errorf("compute rollups: step %s is not a positive number of milliseconds", step)
	case src < 0 || src >= step || (srcMS > 0 && stepMS%srcMS != 0):
		return 0, fmt.Errorf("compute rollups of %s: source resolution %s does not divide it", step, src)
	case !from.IsZero() && toMS(from)%stepMS != 0, toMS(to)%stepMS != 0:
		return 0, fmt.Errorf("compute rollups of %s: bounds %s and %s are not multiples of the step", step, from, to)
	}
	fromMS := toMS(from)
	if from.IsZero() {
		fromMS = math.MinInt64
	}
	// CAST: PostgreSQL cannot infer a parameter's type in a select list.
	var query string
	if src == 0 {
		query = `INSERT INTO rollups (series_id, step_ms, at, n, errs, v_avg, v_min, v_max, last_err)
			SELECT series_id, CAST($1 AS BIGINT), at - at % $1, COUNT(value),
				SUM(CASE WHEN value IS NULL THEN 1 ELSE 0 END), AVG(value), MIN(value), MAX(value), MAX(err)
			FROM samples WHERE at >= $2 AND at < $3
			GROUP BY series_id, at - at % $1`
	} else {
		query = `INSERT INTO rollups (series_id, step_ms, at, n, errs, v_avg, v_min, v_max, last_err)
			SELECT series_id, CAST($1 AS BIGINT), at - at % $1, SUM(n), SUM(errs),
				SUM(v_avg * n) / NULLIF(SUM(n), 0), MIN(v_min), MAX(v_max), MAX(last_err)
			FROM rollups WHERE step_ms = $4 AND at >= $2 AND at < $3
			GROUP BY series_id, at - at % $1`
	}
	query += `
		ON CONFLICT (series_id, step_ms, at) DO UPDATE SET
			n = excluded.n, errs = excluded.errs, v_avg = excluded.v_avg,
			v_min = excluded.v_min, v_max = excluded.v_max, last_err = excluded.last_err`
	args := []any{stepMS, fromMS, toMS(to)}
	if src > 0 {
		args = append(args, srcMS)
	}
	n, err := s.exec(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("compute rollups of %s from %s to %s: %w", step, from.Format(time.RFC3339), to.Format(time.RFC3339), err)
	}
	return n, nil
}

// RollupList returns the rollups matching f, oldest bucket first (then by
// cluster, counter and node).
func (s *Store) RollupList(ctx context.Context, f store.RollupFilter) ([]store.Rollup, error) {
	if f.Step <= 0 {
		return nil, fmt.Errorf("list rollups of %s/%s: no step", f.Cluster, f.Counter)
	}
	var w where
	w.add("r.step_ms = ?", f.Step.Milliseconds())
	seriesWhere(&w, f.Cluster, f.Counter, f.AggregateOnly, f.Nodes)
	if !f.Since.IsZero() {
		w.add("r.at >= ?", toMS(f.Since))
	}
	if !f.Until.IsZero() {
		w.add("r.at < ?", toMS(f.Until))
	}
	out, err := queryAll(ctx, s.q, `SELECT se.cluster, se.counter, se.node, r.step_ms, r.at, r.n, r.errs,
			r.v_avg, r.v_min, r.v_max, r.last_err
		FROM rollups r JOIN series se ON se.id = r.series_id`+w.sql()+`
		ORDER BY r.at, se.cluster, se.counter, se.node`, w.args,
		func(sc scanner) (store.Rollup, error) {
			var (
				r           store.Rollup
				stepMS, at  int64
				avg, mn, mx sql.NullFloat64
			)
			if err := sc.Scan(&r.Cluster, &r.Counter, &r.Node, &stepMS, &at, &r.Count, &r.Errors, &avg, &mn, &mx, &r.LastErr); err != nil {
				return store.Rollup{}, err
			}
			r.Step, r.At = time.Duration(stepMS)*time.Millisecond, fromMS(at)
			r.Avg, r.Min, r.Max = nanIfNull(avg), nanIfNull(mn), nanIfNull(mx)
			return r, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list rollups of %s/%s: %w", f.Cluster, f.Counter, err)
	}
	return out, nil
}

// RollupPrune deletes the rollups of step whose bucket starts before before.
func (s *Store) RollupPrune(ctx context.Context, step time.Duration, before time.Time) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM rollups WHERE step_ms = $1 AND at < $2`, step.Milliseconds(), toMS(before))
	if err != nil {
		return 0, fmt.Errorf("prune rollups of %s: %w", step, err)
	}
	return n, nil
}

// nanIfNull is v's value, NaN for NULL.
func nanIfNull(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}
