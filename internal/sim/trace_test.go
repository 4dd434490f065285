package sim

import (
	"strings"
	"testing"
	"time"
)

func TestReadTrace(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		src     string
		opts    ReadOptions
		step    time.Duration
		values  []float64 // -1: missing
		jumps   []int
		skipped time.Duration
	}{
		{"csv with a header", "timestamp,requests\n2026-01-05T00:00:00Z,10\n2026-01-05T00:01:00Z,20\n", ReadOptions{}, time.Minute, []float64{10, 20}, nil, 0},
		{"csv with an offset and counts", "2026-01-05T00:00:00-04:00,60\n2026-01-05T00:01:00-04:00,120\n", ReadOptions{Counts: true}, time.Minute, []float64{1, 2}, nil, 0},
		{"unix seconds, 10 s step", "1767571200,1\n1767571210,2\n1767571220,3\n", ReadOptions{}, 10 * time.Second, []float64{1, 2, 3}, nil, 0},
		{"one value per line", "# rps\n5\n\n6.5\n7\n", ReadOptions{Step: 30 * time.Second}, 30 * time.Second, []float64{5, 6.5, 7}, nil, 0},
		{"an empty value is missing", "2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,\n2026-01-05T00:02:00Z,3\n", ReadOptions{}, time.Minute, []float64{1, -1, 3}, nil, 0},
		{"a short gap is missing data", "2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,2\n2026-01-05T00:04:00Z,5\n", ReadOptions{}, time.Minute, []float64{1, 2, -1, -1, 5}, nil, 0},
		{"a long gap is jumped over", "2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,2\n2026-01-05T03:01:00Z,3\n", ReadOptions{}, time.Minute, []float64{1, 2, 3}, []int{2}, 3*time.Hour - time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tr, err := Read(strings.NewReader(tt.src), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if tr.Step != tt.step || len(tr.Points) != len(tt.values) {
				t.Fatalf("step %s, %d points %+v; want %s, %d", tr.Step, len(tr.Points), tr.Points, tt.step, len(tt.values))
			}
			for i, v := range tt.values {
				p := tr.Points[i]
				if (v < 0) != p.Missing || (v >= 0 && p.Value != v) {
					t.Errorf("point %d = %+v, want %g", i, p, v)
				}
				if i > 0 && !p.Jump && p.At.Sub(tr.Points[i-1].At) != tr.Step {
					t.Errorf("point %d at %s is not a step after the previous one", i, p.At)
				}
			}
			var jumps []int
			for i, p := range tr.Points {
				if p.Jump {
					jumps = append(jumps, i)
				}
			}
			if len(jumps) != len(tt.jumps) || (len(jumps) > 0 && jumps[0] != tt.jumps[0]) || tr.Skipped != tt.skipped || tr.Gaps != len(tt.jumps) {
				t.Errorf("jumps %v skipped %s, want %v %s", jumps, tr.Skipped, tt.jumps, tt.skipped)
			}
		})
	}
	one, _ := Read(strings.NewReader("1\n2\n"), ReadOptions{})
	if !one.Points[0].At.Equal(DefaultStart) || one.Step != time.Minute {
		t.Errorf("one-column defaults: %+v", one)
	}
}

func TestReadTraceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ src, want string }{
		{"", "no values"},
		{"# only a comment\n", "no values"},
		{"2026-01-05T00:01:00Z,1\n2026-01-05T00:00:00Z,2\n", "line 2: timestamp 2026-01-05T00:00:00Z is not after the previous one"},
		{"2026-01-05T00:00:00Z,1\n2026-01-05T00:01:00Z,-3\n", "line 2: value -3 is negative"},
		{"1\n2\nlots\n", `line 3: value "lots" is not a number`},
		{"1,2,3\n", "line 1: 3 columns"},
		{"2026-01-05T00:00:00Z,1\n7\n", "line 2: 1 columns, the first line has 2"},
		{"yesterday,1\n", `line 1: timestamp "yesterday" is neither RFC 3339`},
		{"1\nNaN\n", "not a finite number"},
	}
	for _, tt := range tests {
		_, err := Read(strings.NewReader(tt.src), ReadOptions{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Read(%q) = %v, want %q", tt.src, err, tt.want)
		}
	}
	if _, err := ReadFile("testdata/nope.csv", ReadOptions{}); err == nil || !strings.Contains(err.Error(), "reading trace") {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}
