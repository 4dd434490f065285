package policy

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/goscaler/goscaler/internal/config"
)

func pred(c config.Predictive) *Predictive {
	if c.Counter == "" {
		c.Counter = "rps"
	}
	if c.Target == 0 {
		c.Target = 100
	}
	if c.PerNode == nil {
		c.PerNode = bptr(false)
	}
	return NewPredictive("forecast", &c)
}

// total is a state of n nodes with a total load reading.
func total(now time.Time, n int, load float64) State {
	return State{Now: now, Min: 1, Max: 40, Desired: n, InService: n, BootTime: 2 * time.Minute,
		Readings: map[string]Reading{"rps": {Value: load, At: now, Interval: time.Minute}}}
}

func TestPredictiveLevelAndSpread(t *testing.T) {
	t.Parallel()
	p := pred(config.Predictive{Confidence: 0.9})
	if math.Abs(p.z-1.2816) > 1e-3 {
		t.Fatalf("z of 0.9 = %g", p.z)
	}
	p.Observe(t0, 100)
	p.Observe(t0.Add(time.Minute), 200)
	a := 1 - math.Exp2(-1.0/10) // one minute of a 10-minute half-life
	b := 1 - math.Exp2(-1.0/30)
	if want := 100 + a*100; math.Abs(p.level-want) > 1e-9 {
		t.Errorf("level %g, want %g", p.level, want)
	}
	if want := b * 100 * 100; math.Abs(p.spread-want) > 1e-9 {
		t.Errorf("spread %g, want %g", p.spread, want)
	}
	p.Observe(t0.Add(30*time.Second), 1e6) // older than the newest: ignored
	if p.readings != 2 {
		t.Errorf("an old reading was fed")
	}
}

func TestPredictiveRecommend(t *testing.T) {
	t.Parallel()
	t.Run("nothing before enough readings", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{})
		for i := range ForecastMinReadings - 1 {
			if r, ok := p.Recommend(total(t0.Add(time.Duration(i)*time.Minute), 4, 400)); ok {
				t.Fatalf("reading %d: %+v", i, r)
			}
		}
	})
	t.Run("a steady load asks for what it needs", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{})
		var r Recommendation
		for i := range 10 {
			r, _ = p.Recommend(total(t0.Add(time.Duration(i)*time.Minute), 6, 430))
		}
		if r.Desired != 5 || !strings.Contains(r.Why(), "forecast load 430 in the next 2m0s (level 430 + 1.28 × spread 0) at target 100 per node") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("a noisy load asks for headroom", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{Confidence: 0.95})
		var r Recommendation
		for i := range 120 {
			load := 400.0
			if i%2 == 1 {
				load = 500
			}
			r, _ = p.Recommend(total(t0.Add(time.Duration(i)*time.Minute), 5, load))
		}
		// Level about 450, one-step errors about ±50: 450 + 1.64 × 50 = 532.
		if r.Desired != 6 || math.Abs(p.Last.Load-532) > 10 {
			t.Fatalf("%+v, forecast %+v", r, p.Last)
		}
	})
	t.Run("missing data holds", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{})
		for i := range 10 {
			p.Recommend(total(t0.Add(time.Duration(i)*time.Minute), 4, 50))
		}
		s := total(t0.Add(10*time.Minute), 4, 0)
		s.Readings["rps"] = Reading{At: s.Now, Err: "timeout", Interval: time.Minute}
		if r, ok := p.Recommend(s); !ok || r.Desired != 4 || !strings.Contains(r.Why(), "missing data never scales in") {
			t.Fatalf("%+v %v", r, ok)
		}
	})
	t.Run("forecast only recommends nothing", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{ForecastOnly: true})
		for i := range 10 {
			if r, ok := p.Recommend(total(t0.Add(time.Duration(i)*time.Minute), 4, 800)); ok {
				t.Fatalf("%+v", r)
			}
		}
		if p.Last.Nodes != 8 || !strings.Contains(p.Last.String(), "→ 8 node(s)") {
			t.Fatalf("forecast %v", p.Last)
		}
	})
	t.Run("per node: the aggregate times the serving nodes", func(t *testing.T) {
		t.Parallel()
		p := pred(config.Predictive{PerNode: bptr(true)})
		var r Recommendation
		for i := range 10 {
			s := total(t0.Add(time.Duration(i)*time.Minute), 4, 150) // 150 per node on 4: 600
			r, _ = p.Recommend(s)
		}
		if r.Desired != 6 {
			t.Fatalf("%+v", r)
		}
	})
}

// TestPredictiveSeasonal: after days of a load that jumps at 09:00, capacity
// rises before 09:00; a policy without that history does not see it coming.
func TestPredictiveSeasonal(t *testing.T) {
	t.Parallel()
	day0 := time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
	load := func(t time.Time) float64 {
		if h := t.Hour(); h >= 9 && h < 17 {
			return 500
		}
		return 100
	}
	with := pred(config.Predictive{})
	for now := day0; now.Before(day0.Add(3*24*time.Hour + 8*time.Hour + 50*time.Minute)); now = now.Add(time.Minute) {
		with.Recommend(total(now, 5, load(now)))
	}
	without := pred(config.Predictive{})
	for now := day0.Add(3*24*time.Hour + 8*time.Hour); now.Before(day0.Add(3*24*time.Hour + 8*time.Hour + 50*time.Minute)); now = now.Add(time.Minute) {
		without.Recommend(total(now, 5, load(now)))
	}
	at := day0.Add(3*24*time.Hour + 8*time.Hour + 56*time.Minute) // 08:56, the lead reaches 08:58
	rw, _ := with.Recommend(total(at, 1, 100))
	ro, _ := without.Recommend(total(at, 1, 100))
	if ro.Desired != 1 {
		t.Fatalf("without history: %+v", ro)
	}
	if rw.Desired < 2 || with.Last.Shape <= 1 || !strings.Contains(rw.Why(), "× seasonal") {
		t.Fatalf("with history: %+v (forecast %v)", rw, with.Last)
	}
	// The same rise a day without history of that weekday still counts
	// (daily seasonality); the shape stays within its bounds.
	if with.Last.Shape > forecastShapeMax {
		t.Fatalf("shape %g", with.Last.Shape)
	}
}
