package policy

import (
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/plugin"
)

func iptr(i int) *int { return &i }

// sched builds a scheduled policy's configuration as the validator would.
func sched(t *testing.T, spec, zone string, dur time.Duration, min, max, desired *int) *config.Scheduled {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	s.(*cron.SpecSchedule).Location = loc
	return &config.Scheduled{Schedule: spec, Timezone: zone, Duration: plugin.Duration(dur), Min: min, Max: max, Desired: desired,
		Cron: s, Location: loc}
}

func TestScheduledWindow(t *testing.T) {
	t.Parallel()
	paris, _ := time.LoadLocation("Europe/Paris")
	cfg := sched(t, "0 8 * * 1-5", "Europe/Paris", 10*time.Hour, iptr(5), nil, nil)
	tests := []struct {
		at   time.Time
		ok   bool
		min  int
		from time.Time
	}{
		{time.Date(2026, 11, 23, 7, 59, 0, 0, paris), false, 0, time.Time{}}, // Monday before 08:00
		{time.Date(2026, 11, 23, 8, 0, 0, 0, paris), true, 5, time.Date(2026, 11, 23, 8, 0, 0, 0, paris)},
		{time.Date(2026, 11, 23, 17, 59, 0, 0, paris), true, 5, time.Date(2026, 11, 23, 8, 0, 0, 0, paris)},
		{time.Date(2026, 11, 23, 18, 0, 0, 0, paris), false, 0, time.Time{}},
		{time.Date(2026, 11, 28, 9, 0, 0, 0, paris), false, 0, time.Time{}}, // Saturday
		{time.Date(2026, 11, 30, 9, 0, 0, 0, paris), true, 5, time.Date(2026, 11, 30, 8, 0, 0, 0, paris)},
	}
	for _, tt := range tests {
		// A fresh policy each time: the first call searches back.
		p := NewScheduled("office", cfg, time.Time{})
		r, ok := p.Recommend(State{Now: tt.at, Min: 1, Max: 20, Desired: 2})
		if ok != tt.ok {
			t.Fatalf("%s: ok = %v, want %v (%+v)", tt.at, ok, tt.ok, r)
		}
		if ok && (r.Bounds == nil || !r.Bounds.Window || r.Bounds.Min != tt.min || r.Bounds.Max != -1 || !r.Bounds.Since.Equal(tt.from) || r.Sized) {
			t.Fatalf("%s: %+v bounds %+v", tt.at, r, r.Bounds)
		}
	}
	// The same through one policy fed a minute at a time.
	p := NewScheduled("office", cfg, time.Time{})
	inWindow := 0
	for now := time.Date(2026, 11, 23, 0, 0, 0, 0, paris); now.Before(time.Date(2026, 11, 30, 0, 0, 0, 0, paris)); now = now.Add(time.Minute) {
		if r, ok := p.Recommend(State{Now: now, Min: 1, Max: 20}); ok && r.Bounds != nil && r.Bounds.Window {
			inWindow++
		}
	}
	if want := 5 * 10 * 60; inWindow != want {
		t.Errorf("%d minutes in the window over a week, want %d", inWindow, want)
	}
}

// TestScheduledTimeZone: 08:00 in Paris is 07:00 UTC in winter, 06:00 UTC in
// summer.
func TestScheduledTimeZone(t *testing.T) {
	t.Parallel()
	cfg := sched(t, "0 8 * * *", "Europe/Paris", time.Hour, iptr(3), nil, nil)
	for _, tt := range []struct {
		day  time.Time
		hour int
	}{
		{time.Date(2026, 3, 28, 0, 0, 0, 0, time.UTC), 7}, // the day before the change to summer time
		{time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC), 6},
		{time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC), 7},
	} {
		p := NewScheduled("s", cfg, time.Time{})
		var first time.Time
		for now := tt.day; now.Before(tt.day.Add(24 * time.Hour)); now = now.Add(time.Minute) {
			if _, ok := p.Recommend(State{Now: now, Min: 1, Max: 20}); ok {
				first = now
				break
			}
		}
		if first.Hour() != tt.hour || first.Minute() != 0 {
			t.Errorf("%s: window starts at %s UTC, want %02d:00", tt.day.Format("2006-01-02"), first.Format("15:04"), tt.hour)
		}
	}
}

func TestScheduledDesired(t *testing.T) {
	t.Parallel()
	cfg := sched(t, "0 8 * * *", "UTC", 0, nil, nil, iptr(6))
	day := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	at := func(h, m int) time.Time { return day.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

	t.Run("set once at each firing", func(t *testing.T) {
		t.Parallel()
		p := NewScheduled("morning", cfg, time.Time{})
		var fired []time.Time
		for now := at(7, 0); now.Before(at(7, 0).Add(48 * time.Hour)); now = now.Add(time.Minute) {
			if r, ok := p.Recommend(State{Now: now, Min: 1, Max: 20, Desired: 2}); ok {
				if !r.Exact || !r.Sized || r.Desired != 6 || !strings.Contains(r.Why(), "desired 6 at "+now.Format("Mon")+" 08:00 UTC") {
					t.Fatalf("%s: %+v", now, r)
				}
				fired = append(fired, now)
			}
		}
		if len(fired) != 2 || !fired[0].Equal(at(8, 0)) || !fired[1].Equal(at(32, 0)) {
			t.Fatalf("fired at %v, want 08:00 on two days", fired)
		}
		if !p.Applied().Equal(at(32, 0)) {
			t.Errorf("Applied() = %s", p.Applied())
		}
	})
	t.Run("a new policy does not fire for a firing before it started", func(t *testing.T) {
		t.Parallel()
		p := NewScheduled("morning", cfg, time.Time{})
		if r, ok := p.Recommend(State{Now: at(8, 5), Desired: 2}); ok {
			t.Fatalf("fired at start: %+v", r)
		}
	})
	t.Run("a restart within the catch-up time sets it", func(t *testing.T) {
		t.Parallel()
		p := NewScheduled("morning", cfg, at(8, 0).Add(-24*time.Hour))
		if r, ok := p.Recommend(State{Now: at(8, 10), Desired: 2}); !ok || !r.Exact {
			t.Fatalf("not set 10 minutes late: %+v %v", r, ok)
		}
	})
	t.Run("a firing missed by more than the catch-up time is skipped", func(t *testing.T) {
		t.Parallel()
		p := NewScheduled("morning", cfg, at(8, 0).Add(-24*time.Hour))
		if r, ok := p.Recommend(State{Now: at(9, 0), Desired: 2}); ok {
			t.Fatalf("set an hour late: %+v", r)
		}
		if !p.Applied().Equal(at(8, 0)) {
			t.Errorf("the skipped firing is not marked handled: %s", p.Applied())
		}
	})
	t.Run("a jump over days (a gap in a trace)", func(t *testing.T) {
		t.Parallel()
		p := NewScheduled("morning", cfg, time.Time{})
		p.Recommend(State{Now: at(7, 0)})
		if _, ok := p.Recommend(State{Now: at(8, 0).Add(72 * time.Hour)}); !ok {
			t.Fatal("no firing after the jump")
		}
	})
}
