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
// what was wrong with s, quoting it (cut to about 100 bytes), and wraps
// ErrNotANumber.
func ParseNumber(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, fmt.Errorf("%q is out of range: %w", Short(s), ErrNotANumber)
	case err != nil:
		return 0, fmt.Errorf("%q is %w", Short(s), ErrNotANumber)
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, fmt.Errorf("%q is not a finite number: %w", Short(s), ErrNotANumber)
	}
	return v, nil
}

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
