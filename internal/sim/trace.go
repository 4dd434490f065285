package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Point is one step of a trace: the demand (requests per second) over
// [At, At+step).
type Point struct {
	At    time.Time
	Value float64
	// Missing marks a step without data inside a short gap: its demand is
	// unknown, and policies see no reading.
	Missing bool
	// Jump marks the first point after a gap longer than MaxGap: the clock
	// jumps to it and nothing is accounted in between.
	Jump bool
}

// Trace is a request-rate series on a regular step.
type Trace struct {
	Step   time.Duration
	Points []Point
	// Skipped is the total time of the gaps jumped over; Gaps counts them.
	Skipped time.Duration
	Gaps    int
}

// ReadOptions says how to read a trace.
type ReadOptions struct {
	// Step is the step of a one-column trace (default 1m); a trace with
	// timestamps has the most common interval between them as its step.
	Step time.Duration
	// Start is the time of a one-column trace's first value (default
	// 2000-01-03T00:00:00Z, a Monday).
	Start time.Time
	// Counts says the values are request counts per step, not requests per
	// second: they are divided by the step.
	Counts bool
	// MaxGap is the longest gap simulated as missing data (default 1h);
	// longer ones are jumped over.
	MaxGap time.Duration
}

// DefaultStart is the time of a one-column trace's first value.
var DefaultStart = time.Date(2000, 1, 3, 0, 0, 0, 0, time.UTC)

// ReadFile reads the trace at path.
func ReadFile(path string, opts ReadOptions) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading trace: %w", err)
	}
	defer func() { _ = f.Close() }()
	t, err := Read(f, opts)
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	return t, nil
}

// row is one parsed line.
type row struct {
	line    int
	at      time.Time
	value   float64
	missing bool
}

// Read reads a trace: CSV lines "timestamp,value" (RFC 3339 or unix seconds;
// a header line is allowed), or one value per line. Blank lines and lines
// starting with # are ignored. An empty value is a step without data.
func Read(r io.Reader, opts ReadOptions) (*Trace, error) {
	if opts.Step == 0 {
		opts.Step = time.Minute
	}
	if opts.Step < 0 {
		return nil, fmt.Errorf("step %s is negative", opts.Step)
	}
	if opts.Start.IsZero() {
		opts.Start = DefaultStart
	}
	if opts.MaxGap == 0 {
		opts.MaxGap = time.Hour
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	var rows []row
	columns, n, first := 0, 0, true
	for sc.Scan() {
		n++
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Split(text, ",")
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		if first {
			first = false
			columns = len(fields)
			if columns > 2 {
				return nil, fmt.Errorf("line %d: %d columns: write timestamp,value or one value per line", n, columns)
			}
			if _, err := parseValue(fields[len(fields)-1]); err != nil && fields[len(fields)-1] != "" {
				continue // a header
			}
		}
		if len(fields) != columns {
			return nil, fmt.Errorf("line %d: %d columns, the first line has %d", n, len(fields), columns)
		}
		rw := row{line: n}
		v := fields[len(fields)-1]
		if v == "" {
			rw.missing = true
		} else {
			f, err := parseValue(v)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			rw.value = f
		}
		if columns == 2 {
			at, err := parseTime(fields[0])
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			if len(rows) > 0 && !at.After(rows[len(rows)-1].at) {
				return nil, fmt.Errorf("line %d: timestamp %s is not after the previous one (%s)", n,
					at.Format(time.RFC3339), rows[len(rows)-1].at.Format(time.RFC3339))
			}
			rw.at = at
		} else {
			rw.at = opts.Start.Add(time.Duration(len(rows)) * opts.Step)
		}
		rows = append(rows, rw)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errors.New("no values: write timestamp,value lines or one value per line")
	}
	step := opts.Step
	if columns == 2 {
		step = inferStep(rows)
	}
	t := &Trace{Step: step, Points: make([]Point, 0, len(rows))}
	for i, rw := range rows {
		value := rw.value
		if opts.Counts {
			value /= step.Seconds()
		}
		p := Point{At: rw.at, Value: value, Missing: rw.missing}
		if i > 0 {
			prev := rows[i-1].at
			gap := rw.at.Sub(prev)
			switch {
			case gap-step > opts.MaxGap:
				p.Jump = true
				t.Gaps++
				t.Skipped += gap - step
			default:
				for at := prev.Add(step); rw.at.Sub(at) >= step/2; at = at.Add(step) {
					t.Points = append(t.Points, Point{At: at, Missing: true})
				}
			}
		}
		t.Points = append(t.Points, p)
	}
	return t, nil
}

func parseValue(s string) (float64, error) {
	f, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return 0, fmt.Errorf("value %q is not a number", s)
	case math.IsNaN(f) || math.IsInf(f, 0):
		return 0, fmt.Errorf("value %q is not a finite number", s)
	case f < 0:
		return 0, fmt.Errorf("value %s is negative: a request rate is 0 or more", s)
	}
	return f, nil
}

func parseTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02 15:04:05Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) && !math.IsInf(f, 0) {
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("timestamp %q is neither RFC 3339 (2006-01-02T15:04:05Z) nor unix seconds", s)
}

// inferStep returns the most common interval between timestamps (which
// increase).
func inferStep(rows []row) time.Duration {
	if len(rows) < 2 {
		return time.Minute
	}
	count := map[time.Duration]int{}
	for i := 1; i < len(rows); i++ {
		if d := rows[i].at.Sub(rows[i-1].at); d > 0 {
			count[d]++
		}
	}
	steps := make([]time.Duration, 0, len(count))
	for d := range count {
		steps = append(steps, d)
	}
	sort.Slice(steps, func(i, j int) bool {
		if count[steps[i]] != count[steps[j]] {
			return count[steps[i]] > count[steps[j]]
		}
		return steps[i] < steps[j]
	})
	return steps[0]
}

// Peak returns the highest demand of the trace.
func (t *Trace) Peak() float64 {
	peak := 0.0
	for _, p := range t.Points {
		if !p.Missing {
			peak = max(peak, p.Value)
		}
	}
	return peak
}

// Scale multiplies every value by f.
func (t *Trace) Scale(f float64) {
	for i := range t.Points {
		t.Points[i].Value *= f
	}
}

// Span is the time the trace covers, gaps jumped over excluded.
func (t *Trace) Span() time.Duration {
	return time.Duration(len(t.Points)) * t.Step
}
