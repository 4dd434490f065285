package perfdata

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// watermarkKey is the meta key holding how far the rollups of step are
// computed (the end of the last computed bucket, unix milliseconds).
func watermarkKey(step time.Duration) string {
	return "rollup_watermark_" + strconv.FormatInt(step.Milliseconds(), 10)
}

// maxCatchUp bounds the source span one pass rolls up, so that a server that
// was down for long catches up over several passes instead of one long
// transaction.
const maxCatchUp = 6 * time.Hour

// seriesPruneEvery is how often series without data are forgotten.
const seriesPruneEvery = time.Hour

// Downsampler computes the rollups of completed buckets and prunes every level
// past its retention. It never prunes data that is not rolled up yet: after a
// long stop, older raw samples are rolled up first. Only one Downsampler may
// run per database at a time (the leader's).
type Downsampler struct {
	Store     store.Store
	Retention Retention
	// Settle is how long after a bucket ends its samples may still be
	// stored (the longest counter interval and timeout).
	Settle time.Duration

	marks      map[time.Duration]time.Time // by step; loaded from the store
	lastSeries time.Time
}

// Pass is what one Run did.
type Pass struct {
	Rolled map[time.Duration]int64 // rollups written, by step
	Pruned int64                   // samples and rollups deleted
	Series int64                   // series forgotten
}

// Run does one pass at now.
func (d *Downsampler) Run(ctx context.Context, now time.Time) (Pass, error) {
	pass := Pass{Rolled: map[time.Duration]int64{}}
	if len(d.Retention) == 0 {
		return pass, errors.New("downsampling: no retention")
	}
	if d.marks == nil {
		d.marks = map[time.Duration]time.Time{}
		for _, l := range d.Retention[1:] {
			v, err := d.Store.MetaGet(ctx, watermarkKey(l.Step))
			switch {
			case errors.Is(err, store.ErrNotFound):
				d.marks[l.Step] = time.Time{}
			case err != nil:
				d.marks = nil
				return pass, err
			default:
				ms, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					d.marks = nil
					return pass, fmt.Errorf("rollup watermark %q is not a number: %w", v, err)
				}
				d.marks[l.Step] = time.UnixMilli(ms).UTC()
			}
		}
	}
	// Roll up, finest first: each level from the previous one.
	for i := 1; i < len(d.Retention); i++ {
		l := d.Retention[i]
		src := d.Retention[i-1].Step
		to := floorTime(now.Add(-d.Settle), l.Step)
		if src > 0 {
			// Only what the finer rollup has completed.
			to = minTime(to, floorTime(d.marks[src], l.Step))
		}
		from := d.marks[l.Step]
		if !from.IsZero() && to.Sub(from) > maxCatchUp {
			to = floorTime(from.Add(maxCatchUp), l.Step)
		}
		if to.UnixMilli() <= 0 || !from.IsZero() && !to.After(from) {
			continue
		}
		n, err := d.Store.RollupCompute(ctx, l.Step, src, from, to)
		if err != nil {
			return pass, err
		}
		if err := d.Store.MetaSet(ctx, watermarkKey(l.Step), strconv.FormatInt(to.UnixMilli(), 10)); err != nil {
			return pass, err
		}
		d.marks[l.Step] = to
		pass.Rolled[l.Step] = n
	}
	// Prune each level past its retention, but never what the next coarser
	// level has not rolled up yet.
	for i, l := range d.Retention {
		before := now.Add(-l.Keep)
		if i+1 < len(d.Retention) {
			before = minTime(before, d.marks[d.Retention[i+1].Step])
		}
		var n int64
		var err error
		if i == 0 {
			n, err = d.Store.SamplePrune(ctx, before)
		} else {
			n, err = d.Store.RollupPrune(ctx, l.Step, before)
		}
		if err != nil {
			return pass, err
		}
		pass.Pruned += n
	}
	if now.Sub(d.lastSeries) >= seriesPruneEvery {
		n, err := d.Store.SeriesPrune(ctx)
		if err != nil {
			return pass, err
		}
		d.lastSeries, pass.Series = now, n
	}
	return pass, nil
}
