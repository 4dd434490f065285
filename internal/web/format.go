package web

import (
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// funcs are the templates' helpers.
var funcs = template.FuncMap{
	"ago":      func(t time.Time) string { return ago(time.Now(), t) },
	"clock":    clock,
	"full":     func(t time.Time) string { return t.Format("2006-01-02 15:04:05 MST") },
	"iso":      func(t time.Time) string { return t.Format(time.RFC3339) },
	"took":     took,
	"num":      num,
	"asset":    asset,
	"state":    func(s store.NodeState) string { return strings.ReplaceAll(string(s), "_", " ") },
	"kind":     func(k string) string { return strings.ReplaceAll(k, "_", " ") },
	"short":    short,
	"plus":     func(a, b int) int { return a + b },
	"isZero":   func(t time.Time) bool { return t.IsZero() },
	"statusOK": func(s store.ActivityStatus) bool { return s == store.ActivitySucceeded },
}

// ago says how long before now t was: "12 s ago", "3 min ago".
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		return "in " + secs(-d)
	}
	return secs(d) + " ago"
}

// secs writes a duration for people: "40 s", "3 min 5 s", "2 h 10 min".
func secs(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		m, s := int(d.Minutes()), int(d.Seconds())%60
		if s == 0 {
			return fmt.Sprintf("%d min", m)
		}
		return fmt.Sprintf("%d min %d s", m, s)
	case d < 48*time.Hour:
		h, m := int(d.Hours()), int(d.Minutes())%60
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	default:
		return fmt.Sprintf("%d days", int(d.Hours()/24))
	}
}

// clock writes a time of day, with the date if it is not today.
func clock(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	t = t.Local()
	if y, m, d := time.Now().Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04:05")
}

// took is an activity's duration so far or in all.
func took(start, end time.Time) string {
	if start.IsZero() {
		return "–"
	}
	if end.IsZero() {
		return secs(time.Since(start)) + " so far"
	}
	d := end.Sub(start)
	switch {
	case d < time.Second:
		return fmt.Sprintf("%d ms", d.Milliseconds())
	case d < 10*time.Second:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	default:
		return secs(d)
	}
}

// num writes a reading: at most two decimals, no trailing zeros.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return fmt.Sprint(v)
	}
	return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
}

// short cuts text to n runes.
func short(n int, s string) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// secretWords mark the keys whose values the UI never shows.
var secretWords = []string{"password", "passwd", "secret", "token", "credential", "private", "apikey", "api_key", "access_key", "auth"}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}

// redactJSON pretty-prints an action's parameters with the value of every
// key that looks like a secret replaced.
func redactJSON(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "(parameters are not JSON)"
	}
	b, err := json.MarshalIndent(redact(v), "", "  ")
	if err != nil {
		return "(parameters cannot be shown)"
	}
	return string(b)
}

func redact(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if secretKey(k) {
				t[k] = "•••••• (hidden)"
				continue
			}
			t[k] = redact(val)
		}
	case []any:
		for i := range t {
			t[i] = redact(t[i])
		}
	}
	return v
}
