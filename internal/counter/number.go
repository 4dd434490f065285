package counter

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrNotANumber is wrapped by ParseNumber when the text is not a finite
// number.
var ErrNotANumber = errors.New("not a number")

// ParseNumber parses s (already trimmed) as a finite float64. Its error says
// what was wrong with s, quoting it (cut to about 100 bytes), and matches
// ErrNotANumber.
func ParseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, Mark(fmt.Errorf("%q is out of range", Short(s)), ErrNotANumber)
	case err != nil:
		return 0, Mark(fmt.Errorf("%q is not a number", Short(s)), ErrNotANumber)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, Mark(fmt.Errorf("%q is not a finite number", Short(s)), ErrNotANumber)
	}
	return v, nil
}

// Mark returns an error with err's message that matches both err and kind
// (errors.Is), for a message that already says what kind says.
func Mark(err, kind error) error { return &marked{err: err, kind: kind} }

type marked struct{ err, kind error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// Short cuts s to about 100 bytes (on a rune boundary), marking the cut with
// "…", for quoting remote output in an error.
func Short(s string) string {
	const n = 100
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i] + "…"
}
