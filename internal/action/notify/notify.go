// Package notify is what the notification actions (email, webhook) share:
// the event they report — the cluster, the trigger, its cause, the counter
// values and the outcome of the firing's earlier steps — and the templates
// of their text.
package notify

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/goscaler/goscaler/internal/action"
)

// MaxStepOutput bounds what an event keeps of each earlier step's output.
const MaxStepOutput = 1 << 10

// Step is the outcome of an earlier step of the firing.
type Step struct {
	Step   int    `json:"step"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	Output string `json:"output,omitempty"`
}

// Event is what a notification reports.
type Event struct {
	Cluster string `json:"cluster"`
	Trigger string `json:"trigger,omitempty"`
	Cause   string `json:"cause,omitempty"`
	// ActivityID is the notification step's activity; FiringID the firing's.
	ActivityID int64 `json:"activity_id"`
	FiringID   int64 `json:"firing_id,omitempty"`
	// Counters are the cluster's latest counter values by name.
	Counters map[string]string `json:"counters,omitempty"`
	Steps    []Step            `json:"steps,omitempty"`
	// Outcome sums the earlier steps up in one line.
	Outcome string    `json:"outcome"`
	Time    time.Time `json:"time"`
}

// NewEvent builds the event of a run.
func NewEvent(r action.Run, now time.Time) Event {
	e := Event{Cluster: r.Cluster, Trigger: r.Trigger, Cause: r.Activity.Cause, ActivityID: r.Activity.ID,
		FiringID: r.Activity.ParentID, Counters: map[string]string{}, Time: now.UTC()}
	for k, v := range r.Vars {
		if name, ok := strings.CutPrefix(k, "Counter_"); ok {
			e.Counters[name] = v
		}
	}
	var parts []string
	for _, s := range r.Steps {
		st := Step{Step: s.Step + 1, Kind: s.Kind, Status: string(s.Status), Error: s.Error, Output: cut(s.Output, MaxStepOutput)}
		e.Steps = append(e.Steps, st)
		p := fmt.Sprintf("step %d (%s) %s", st.Step, st.Kind, st.Status)
		if st.Error != "" {
			p += ": " + firstLine(st.Error)
		}
		parts = append(parts, p)
	}
	e.Outcome = "no earlier steps"
	if len(parts) > 0 {
		e.Outcome = strings.Join(parts, "; ")
	}
	return e
}

// Data is the data of a notification's templates: every variable of the run
// ({{.Cluster}}, {{.Trigger}}, {{.Cause}}, {{.Counter_load}}, …) and
// {{.Outcome}}, {{.Steps}}, {{.Counters}}, {{.ActivityID}}, {{.FiringID}},
// {{.Time}}.
func Data(r action.Run, e Event) map[string]any {
	d := make(map[string]any, len(r.Vars)+8)
	for k, v := range r.Vars {
		d[k] = v
	}
	d["Cluster"], d["Trigger"], d["Cause"] = e.Cluster, e.Trigger, e.Cause
	d["Outcome"], d["Steps"], d["Counters"] = e.Outcome, e.Steps, e.Counters
	d["ActivityID"], d["FiringID"], d["Time"] = e.ActivityID, e.FiringID, e.Time.Format(time.RFC3339)
	return d
}

// Summary is the default one-paragraph text of an event.
const Summary = `[goscaler] cluster {{.Cluster}}: trigger {{.Trigger}} fired
Cause: {{.Cause}}
{{if .Counters}}Counters:{{range $k, $v := .Counters}} {{$k}}={{$v}}{{end}}
{{end}}Outcome so far: {{.Outcome}}
Activity: {{.ActivityID}}{{if .FiringID}} (firing {{.FiringID}}){{end}}
`

// Parse parses a notification template; a variable that is not defined is
// an error when it is rendered.
func Parse(name, src string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return t, nil
}

// Render renders t over data.
func Render(t *template.Template, data map[string]any) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%w: %w", action.ErrPermanent, err)
	}
	return b.String(), nil
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…[" + strconv.Itoa(len(s)-n) + " more bytes]"
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
