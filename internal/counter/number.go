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
		return 0, numberError(fmt.Sprintf("%q is out of range", Short(s)))
	case err != nil:
		return 0, numberError(fmt.Sprintf("%q is not a number", Short(s)))
	case math.IsNaN(v) || math.IsInf(v, 0):
		return 0, numberError(fmt.Sprintf("%q is not a finite number", Short(s)))
	}
	return v, nil
}

// numberError is ParseNumber's error: it matches ErrNotANumber without
// repeating it.
type numberError string

func (e numberError) Error() string { return string(e) }

func (e numberError) Is(target error) bool { return target == ErrNotANumber }

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
