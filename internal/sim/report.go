package sim

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// WriteTable writes the report as a plain-text table.
func (r *Report) WriteTable(w io.Writer) error {
	t := r.Trace
	fmt.Fprintf(w, "trace: %d steps of %s (%s)", len(t.Points), t.Step, fmtDuration(t.Span()))
	if t.Gaps > 0 {
		fmt.Fprintf(w, ", %d gap(s) skipped (%s)", t.Gaps, fmtDuration(t.Skipped))
	}
	fmt.Fprintf(w, ", peak %s rps\n", strconv.FormatFloat(t.Peak(), 'f', 1, 64))
	m := r.Model
	fmt.Fprintf(w, "model: %s rps per node, boot time %s, noise %s%%, counter %s (%s)\n\n",
		strconv.FormatFloat(m.RPSPerNode, 'f', -1, 64), m.BootTime, strconv.FormatFloat(m.Noise*100, 'f', -1, 64),
		r.Feed.Counter, map[bool]string{true: "per node", false: "total"}[r.Feed.PerNode])
	width := len("oracle (lower bound)")
	for _, res := range r.Results {
		width = max(width, len([]rune(res.Name)))
	}
	fmt.Fprintf(w, "%-*s  %10s  %9s  %21s  %15s  %10s\n", width, "strategy", "node-hours", "vs oracle", "under-provisioned min", "scaling actions", "peak nodes")
	for _, res := range r.Results {
		fmt.Fprintf(w, "%-*s  %10.1f  %9s  %21.0f  %15d  %10d\n", width, res.Name, res.NodeHours, r.vsOracle(res), res.UnderMinutes, res.ScalingActions(), res.PeakNodes)
	}
	o := r.Oracle
	fmt.Fprintf(w, "%-*s  %10.1f  %9s  %21.0f  %15s  %10d\n", width, "oracle (lower bound)", o.NodeHours, "", o.UnderMinutes, "", o.PeakNodes)
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	return nil
}

func (r *Report) vsOracle(res *Result) string {
	if r.Oracle == nil || r.Oracle.NodeHours == 0 {
		return "—"
	}
	return fmt.Sprintf("%+.1f%%", (res.NodeHours/r.Oracle.NodeHours-1)*100)
}

// WriteCSV writes the runs step by step: the timestamp and the demand, then,
// for each strategy (its name prefixes its columns), the nodes (booting ones
// included), the nodes in service, the serving capacity and whether the step
// was under-provisioned. The runs must have kept their steps.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"timestamp", "demand_rps"}
	all := append(append([]*Result{}, r.Results...), r.Oracle)
	for _, res := range all {
		p := res.Name + ": "
		head = append(head, p+"nodes", p+"in_service", p+"capacity_rps", p+"under")
	}
	if err := cw.Write(head); err != nil {
		return err
	}
	for i, p := range r.Trace.Points {
		demand := strconv.FormatFloat(p.Value, 'f', -1, 64)
		if p.Missing {
			demand = ""
		}
		row := []string{p.At.Format(time.RFC3339), demand}
		for _, res := range all {
			if i >= len(res.Steps) {
				return fmt.Errorf("run %q did not keep its steps", res.Name)
			}
			s := res.Steps[i]
			row = append(row, strconv.Itoa(s.Nodes), strconv.Itoa(s.InService),
				strconv.FormatFloat(s.Capacity, 'f', -1, 64), strconv.FormatBool(s.Under))
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// chart is one SVG plot.
type chart struct {
	Title           string
	Width, Height   int
	Peak, Demand    string // SVG paths
	Capacity, Nodes string
	Under           []mark // columns with under-provisioned steps
	YTicks          []tick
	NodeTicks       []tick
	XTicks          []tick
	PlotW, PlotH    int
}

// mark is a column with under-provisioned steps: its height grows with their share.
type mark struct {
	X, H float64
}

type tick struct {
	Pos   float64
	Label string
}

// htmlRow is one line of the HTML summary.
type htmlRow struct {
	Name      string
	NodeHours string
	VsOracle  string
	Under     string
	Actions   string
	Peak      string
}

// WriteHTML writes a self-contained page (inline SVG, no script, nothing
// fetched): the summary table and, for each run, demand, serving capacity
// and nodes over time, with the under-provisioned steps marked; then the
// same over the day the cluster's policies were under-provisioned the most.
func (r *Report) WriteHTML(w io.Writer) error {
	all := append(append([]*Result{}, r.Results...), r.Oracle)
	for _, res := range all {
		if len(res.Steps) != len(r.Trace.Points) {
			return fmt.Errorf("run %q did not keep its steps", res.Name)
		}
	}
	var rows []htmlRow
	for _, res := range r.Results {
		rows = append(rows, htmlRow{res.Name, fmt.Sprintf("%.1f", res.NodeHours), r.vsOracle(res),
			fmt.Sprintf("%.0f", res.UnderMinutes), strconv.Itoa(res.ScalingActions()), strconv.Itoa(res.PeakNodes)})
	}
	rows = append(rows, htmlRow{"oracle (lower bound)", fmt.Sprintf("%.1f", r.Oracle.NodeHours), "",
		fmt.Sprintf("%.0f", r.Oracle.UnderMinutes), "", strconv.Itoa(r.Oracle.PeakNodes)})
	var charts, zoom []chart
	n := len(r.Trace.Points)
	for _, res := range all {
		charts = append(charts, r.plot(res, 0, n))
	}
	// The day the policies missed the most.
	from, to := r.worstDay(r.Results[0])
	if to > from {
		for _, res := range all {
			zoom = append(zoom, r.plot(res, from, to))
		}
	}
	var sub string
	if to > from {
		sub = r.Trace.Points[from].At.Format("Mon 2006-01-02 15:04") + " – " + r.Trace.Points[to-1].At.Add(r.Trace.Step).Format("15:04 MST")
	}
	var head strings.Builder
	_ = r.WriteTable(&head)
	bw := bufio.NewWriter(w)
	err := page.Execute(bw, map[string]any{"Cluster": r.Cluster, "Rows": rows, "Charts": charts, "Zoom": zoom, "ZoomSpan": sub,
		"Head": strings.SplitN(head.String(), "\n\n", 2)[0], "Notes": r.Notes})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// worstDay returns the steps of the 24 hours with the most under-provisioned
// steps of res (or the busiest 24 hours when there are none).
func (r *Report) worstDay(res *Result) (int, int) {
	pts := r.Trace.Points
	win := int(24 * time.Hour / r.Trace.Step)
	if win <= 0 || len(pts) <= win {
		return 0, len(pts)
	}
	score := func(i int) float64 {
		if res.Steps[i].Under {
			return 1e9
		}
		return pts[i].Value
	}
	cur := 0.0
	for i := range win {
		cur += score(i)
	}
	best, at := cur, 0
	for i := win; i < len(pts); i++ {
		cur += score(i) - score(i-win)
		if cur > best {
			best, at = cur, i-win+1
		}
	}
	return at, at + win
}

// plot draws steps [from, to) of res, at most one column per pixel: each
// column shows the mean and the highest demand of the steps it covers, the
// mean serving capacity and nodes, and how many of its steps were
// under-provisioned (the height of the red mark).
func (r *Report) plot(res *Result, from, to int) chart {
	const w, h, left, right, top, bottom = 1100, 260, 60, 50, 10, 30
	pw, ph := w-left-right, h-top-bottom
	pts := r.Trace.Points[from:to]
	steps := res.Steps[from:to]
	cols := min(len(pts), pw)
	maxY, maxN := 0.0, 0
	for i, p := range pts {
		maxY = max(maxY, p.Value, steps[i].Capacity)
		maxN = max(maxN, steps[i].Nodes)
	}
	maxY = niceCeil(maxY)
	maxN = max((maxN+3)/4*4, 4)
	c := chart{Title: res.Name, Width: w, Height: h, PlotW: pw, PlotH: ph}
	x := func(col int) float64 { return float64(left) + float64(col)*float64(pw)/float64(cols) }
	y := func(v float64) float64 { return float64(top) + float64(ph)*(1-v/maxY) }
	yn := func(v float64) float64 { return float64(top) + float64(ph)*(1-v/float64(maxN)) }
	var peak, dem, capa, nodes strings.Builder
	for col := range cols {
		a, b := col*len(pts)/cols, (col+1)*len(pts)/cols
		hi, sum, known := 0.0, 0.0, 0
		cp, nd, under := 0.0, 0.0, 0
		for i := a; i < b; i++ {
			if !pts[i].Missing {
				hi, sum = max(hi, pts[i].Value), sum+pts[i].Value
				known++
			}
			cp += steps[i].Capacity
			nd += float64(steps[i].Nodes)
			if steps[i].Under {
				under++
			}
		}
		n := float64(b - a)
		cmd := "L"
		if col == 0 {
			cmd = "M"
		}
		if known > 0 {
			fmt.Fprintf(&peak, "%s%.1f %.1f ", cmd, x(col), y(hi))
			fmt.Fprintf(&dem, "%s%.1f %.1f ", cmd, x(col), y(sum/float64(known)))
		}
		fmt.Fprintf(&capa, "%s%.1f %.1f H%.1f ", cmd, x(col), y(cp/n), x(col+1))
		fmt.Fprintf(&nodes, "%s%.1f %.1f H%.1f ", cmd, x(col), yn(nd/n), x(col+1))
		if under > 0 {
			c.Under = append(c.Under, mark{X: x(col), H: 2 + 10*float64(under)/n})
		}
	}
	c.Peak, c.Demand, c.Capacity, c.Nodes = peak.String(), dem.String(), capa.String(), nodes.String()
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		c.YTicks = append(c.YTicks, tick{y(v), strconv.FormatFloat(v, 'f', -1, 64)})
		nv := float64(maxN) * float64(i) / 4
		c.NodeTicks = append(c.NodeTicks, tick{yn(nv), strconv.FormatFloat(nv, 'f', -1, 64)})
	}
	layout := "Jan 2"
	if to-from <= int(48*time.Hour/r.Trace.Step) {
		layout = "15:04"
	}
	for i := 0; i <= 8; i++ {
		col := i * (cols - 1) / 8
		idx := col * len(pts) / cols
		c.XTicks = append(c.XTicks, tick{x(col), pts[idx].At.Format(layout)})
	}
	return c
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtDuration(d time.Duration) string {
	days := int(d / (24 * time.Hour))
	rest := d - time.Duration(days)*24*time.Hour
	if days == 0 {
		return rest.String()
	}
	return fmt.Sprintf("%dd%s", days, strings.TrimSuffix(rest.Round(time.Minute).String(), "0s"))
}

var page = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>goscaler simulation: {{.Cluster}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1150px}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
svg{display:block;margin:.5em 0 1.5em}h2{font-size:1.1em;margin:1.2em 0 .2em}
.legend span{margin-right:1.5em}.p{color:#c9d6e8}.d{color:#5a7fb0}.c{color:#1a7f37}.n{color:#b35c00}.u{color:#d1242f}
pre{background:#f6f8fa;padding:.6em}
</style></head><body>
<h1>Simulation of cluster {{.Cluster}}</h1>
<pre>{{.Head}}</pre>
<table><tr><th>strategy</th><th>node-hours</th><th>vs oracle</th><th>under-provisioned min</th><th>scaling actions</th><th>peak nodes</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{.NodeHours}}</td><td>{{.VsOracle}}</td><td>{{.Under}}</td><td>{{.Actions}}</td><td>{{.Peak}}</td></tr>
{{end}}</table>
{{range .Notes}}<p>Note: {{.}}</p>{{end}}
<p class="legend"><span class="p">■ highest demand</span><span class="d">■ mean demand (rps, left axis)</span><span class="c">■ serving capacity (rps)</span><span class="n">■ nodes, booting ones included (right axis)</span><span class="u">■ under-provisioned</span></p>
<p>Each column of pixels covers several steps: it shows their highest and mean demand, their mean capacity and nodes, and a red mark as tall as the share of them that was under-provisioned.</p>
{{range .Charts}}{{template "chart" .}}{{end}}
{{if .Zoom}}<h1>The day the policies were under-provisioned the most</h1><p>{{.ZoomSpan}}</p>{{range .Zoom}}{{template "chart" .}}{{end}}{{end}}
</body></html>
{{define "chart"}}<h2>{{.Title}}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="{{.Width}}" height="{{.Height}}" viewBox="0 0 {{.Width}} {{.Height}}" role="img" aria-label="{{.Title}}">
<rect x="60" y="10" width="{{.PlotW}}" height="{{.PlotH}}" fill="#fff" stroke="#ccc"/>
{{range .YTicks}}<line x1="60" x2="1050" y1="{{.Pos}}" y2="{{.Pos}}" stroke="#eee"/><text x="55" y="{{.Pos}}" font-size="10" text-anchor="end" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .NodeTicks}}<text x="1055" y="{{.Pos}}" font-size="10" fill="#b35c00" dominant-baseline="middle">{{.Label}}</text>{{end}}
{{range .XTicks}}<text x="{{.Pos}}" y="250" font-size="10" text-anchor="middle">{{.Label}}</text>{{end}}
{{range .Under}}<rect x="{{.X}}" y="230" width="1" height="{{.H}}" fill="#d1242f"/>{{end}}
<path d="{{.Peak}}" fill="none" stroke="#c9d6e8" stroke-width="1"/>
<path d="{{.Demand}}" fill="none" stroke="#5a7fb0" stroke-width="1"/>
<path d="{{.Capacity}}" fill="none" stroke="#1a7f37" stroke-width="1.2"/>
<path d="{{.Nodes}}" fill="none" stroke="#b35c00" stroke-width="0.8" stroke-dasharray="3 2"/>
</svg>{{end}}
`))
