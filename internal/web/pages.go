package web

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/store"
)

// sparkWindow is how far back the dashboard's sparklines look.
const sparkWindow = 10 * time.Minute

// clusterRow is one line of the dashboard.
type clusterRow struct {
	api.ClusterView
	Health      string
	HealthClass string
	Starting    int
	Draining    int
	Failed      int
	// Counter is the cluster's main counter (its first), Latest its newest
	// aggregate, LatestErr why that failed.
	Counter   string
	Latest    string
	LatestErr string
	Spark     sparkline
	Last      *store.Activity
}

type dashboardView struct {
	Page
	Clusters []clusterRow
	Nodes    int
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s *session) error {
	rows, err := u.dashboardRows(r.Context())
	if err != nil {
		return err
	}
	v := &dashboardView{Page: u.base(r, s, "Clusters", "dashboard"), Clusters: rows}
	for _, c := range rows {
		v.Nodes += c.InService + c.Starting + c.Draining + c.Failed
	}
	u.render(w, r, http.StatusOK, "dashboard", "layout", v)
	return nil
}

func (u *UI) dashboardLive(w http.ResponseWriter, r *http.Request, s *session) error {
	rows, err := u.dashboardRows(r.Context())
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "dashboard", "dashboard-rows", &dashboardView{Page: u.base(r, s, "", ""), Clusters: rows})
	return nil
}

// dashboardRows reads every cluster: three queries for all of them, then
// two small indexed ones per cluster (its last activity, its sparkline).
func (u *UI) dashboardRows(ctx context.Context) ([]clusterRow, error) {
	views, err := u.data.Clusters(ctx)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	rows := make([]clusterRow, 0, len(views))
	configs := u.ctl.Clusters()
	for i, v := range views {
		cc := configs[i]
		row := clusterRow{ClusterView: v}
		row.Starting = v.Nodes[store.NodePending] + v.Nodes[store.NodeProvisioning] + v.Nodes[store.NodeConfiguring]
		row.Draining, row.Failed = v.Nodes[store.NodeDraining], v.Nodes[store.NodeFailed]
		var reading *store.Sample
		if len(cc.Counters) > 0 {
			k := cc.Counters[0]
			row.Counter = k.Name
			if rd, ok := u.ctl.Latest(cc.Name, k.Name); ok {
				reading = &rd.Aggregate
				if rd.Aggregate.OK() {
					row.Latest = num(rd.Aggregate.Value)
				} else {
					row.LatestErr = rd.Aggregate.Err
				}
			}
			samples, err := u.sparks.recent(ctx, u.st, cc.Name, k.Name, now)
			if err != nil {
				return nil, err
			}
			row.Spark = newSparkline(samples, now.Add(-sparkWindow), now, thresholdsOf(cc, k.Name))
		}
		row.Health, row.HealthClass = clusterHealth(v, reading)
		acts, err := u.st.ActivityList(ctx, store.ActivityFilter{Cluster: cc.Name, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(acts) > 0 {
			row.Last = &acts[0]
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// clusterHealth says in a few words how a cluster is doing, and the CSS
// class of that (ok, busy, warn, bad).
func clusterHealth(v api.ClusterView, reading *store.Sample) (string, string) {
	starting := v.Nodes[store.NodePending] + v.Nodes[store.NodeProvisioning] + v.Nodes[store.NodeConfiguring]
	switch {
	case v.Nodes[store.NodeFailed] > 0:
		return fmt.Sprintf("replacing %d failed node(s)", v.Nodes[store.NodeFailed]), "bad"
	case starting > 0:
		return fmt.Sprintf("scaling out: %d starting", starting), "busy"
	case v.Nodes[store.NodeDraining] > 0:
		return fmt.Sprintf("scaling in: %d draining", v.Nodes[store.NodeDraining]), "busy"
	case v.InService < v.Desired:
		return fmt.Sprintf("%d of %d in service", v.InService, v.Desired), "bad"
	case reading != nil && !reading.OK():
		return "counter failing", "warn"
	default:
		return "healthy", "ok"
	}
}

// nodeRow is one line of a cluster's node table.
type nodeRow struct {
	store.Node
	Health      string
	HealthClass string
	HealthTitle string
	// Values are the node's newest reading of each counter, in order.
	Values []string
}

// triggerRow is a trigger with its progress in words.
type triggerRow struct {
	controller.TriggerStatus
	// Progress says where the trigger stands ("past threshold for 40 s of 60 s").
	Progress string
	// PastFor and For (seconds) draw the progress bar when past the threshold.
	PastFor float64
	ForSecs float64
	Cooling bool
	Fired   string
	// ForText and CooldownText are the trigger's durations for people.
	ForText      string
	CooldownText string
}

// chartSpec is one graph: where its data comes from.
type chartSpec struct {
	Counter string
	Title   string
	Note    string
	Src     string
}

type clusterPageView struct {
	Page
	api.ClusterDetail
	Cfg *config.Cluster
	// CanExec says whether the cluster's nodes are reached over SSH (an
	// ssh: section or the static provider), so a command can run on them.
	CanExec     bool
	Health      string
	HealthClass string
	Counters    []string
	NodeRows    []nodeRow
	TriggerRows []triggerRow
	Charts      []chartSpec
	// NodesTotal counts the live nodes; NodeRows may show fewer unless
	// AllNodes.
	NodesTotal int
	AllNodes   bool
	// Exec says why running a command on every node is not offered.
	Exec string
	// OOB marks the live parts for htmx's out-of-band swap.
	OOB bool
}

func (u *UI) clusterPage(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.clusterView(r, s)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "cluster", "layout", v)
	return nil
}

func (u *UI) clusterLive(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.clusterView(r, s)
	if err != nil {
		return err
	}
	v.OOB = true
	u.render(w, r, http.StatusOK, "cluster", "cluster-live", v)
	return nil
}

func (u *UI) clusterView(r *http.Request, s *session) (*clusterPageView, error) {
	name := r.PathValue("name")
	d, err := u.data.Cluster(r.Context(), name, 10)
	if err != nil {
		return nil, err
	}
	cc, err := u.data.ClusterConfig(name)
	if err != nil {
		return nil, err
	}
	v := &clusterPageView{Page: u.base(r, s, cc.Name, "dashboard"), ClusterDetail: d, Cfg: cc,
		CanExec: cc.SSH != nil || cc.Provider.Type == "static"}
	if !v.CanExec {
		v.Exec = "Running a command on every node goes over SSH: give the cluster an ssh: section (user, keys, known_hosts) to use it."
	}
	var main *store.Sample
	for i, k := range cc.Counters {
		v.Counters = append(v.Counters, k.Name)
		if rd, ok := d.Readings[k.Name]; ok && i == 0 {
			main = &rd.Aggregate
		}
		v.Charts = append(v.Charts, chartSpec{Counter: k.Name,
			Title: fmt.Sprintf("%s (%s, %s over nodes, every %s)", k.Name, k.Type, aggregateWord(k), k.Interval),
			Src:   "/ui/data/clusters/" + url.PathEscape(cc.Name) + "/counters/" + url.PathEscape(k.Name) + "?since=15m"})
	}
	v.Health, v.HealthClass = clusterHealth(d.ClusterView, main)
	now := time.Now()
	v.AllNodes = r.URL.Query().Get("nodes") == "all"
	for _, n := range d.NodeList {
		row := nodeRow{Node: n}
		row.Health, row.HealthClass, row.HealthTitle = nodeHealth(n, u.ctl.HealthResults(cc.Name, n.ID), cc.HealthCheck, now)
		for _, k := range cc.Counters {
			row.Values = append(row.Values, nodeReading(d.Readings[k.Name], n.ID))
		}
		v.NodeRows = append(v.NodeRows, row)
	}
	if !v.AllNodes {
		v.NodeRows = pickRows(v.NodeRows, maxNodeRows)
	}
	v.NodesTotal = len(d.NodeList)
	for _, t := range d.TriggerState {
		v.TriggerRows = append(v.TriggerRows, triggerProgress(t, cc.Trigger(t.Name), now))
	}
	return v, nil
}

// maxNodeRows is how many nodes a cluster page lists unless asked for all.
const maxNodeRows = 100

// pickRows keeps at most n rows, those that need attention first (not in
// service, in maintenance, failing their health check), in their order.
func pickRows(rows []nodeRow, n int) []nodeRow {
	if len(rows) <= n {
		return rows
	}
	keep := make([]bool, len(rows))
	left := n
	for pass := range 2 {
		for i, r := range rows {
			if left == 0 {
				break
			}
			notable := r.State != store.NodeInService || r.Maintenance || r.HealthClass == "bad"
			if !keep[i] && (pass == 1 || notable) {
				keep[i] = true
				left--
			}
		}
	}
	out := make([]nodeRow, 0, n)
	for i, r := range rows {
		if keep[i] {
			out = append(out, r)
		}
	}
	return out
}

func aggregateWord(k *config.Counter) string {
	if k.Scope == "cluster" {
		return "read once for the cluster"
	}
	return k.Aggregate
}

// nodeReading is a node's newest sample of a counter, as text.
func nodeReading(rd controller.CounterReading, nodeID string) string {
	for _, smp := range rd.Nodes {
		if smp.Node == nodeID {
			if !smp.OK() {
				return "error"
			}
			return num(smp.Value)
		}
	}
	return "–"
}

// nodeHealth describes a node's newest health check.
func nodeHealth(n store.Node, rs []controller.HealthResult, hc config.HealthCheck, now time.Time) (text, class, title string) {
	switch {
	case n.Maintenance:
		return "not checked: maintenance", "muted", "nodes in maintenance are out of healing"
	case hc.Type == "none":
		return "no health check", "muted", ""
	case n.State != store.NodeInService:
		return "–", "muted", ""
	case len(rs) == 0:
		return "not checked yet", "muted", "results are kept in the memory of the server that runs the controller"
	}
	last := rs[len(rs)-1]
	if last.OK {
		return "ok " + ago(now, last.At), "ok", hc.Type + " check passed at " + last.At.Format(time.DateTime)
	}
	return fmt.Sprintf("failing (%d of %d)", last.FailsInRow, hc.UnhealthyThreshold), "bad", last.Error
}

// triggerProgress says where a trigger stands.
func triggerProgress(t controller.TriggerStatus, tc *config.Trigger, now time.Time) triggerRow {
	row := triggerRow{TriggerStatus: t}
	st := t.State
	var forD time.Duration
	row.ForText, row.CooldownText = t.For, t.Cooldown
	if tc != nil {
		forD = tc.For.D()
		row.ForText, row.CooldownText = secs(forD), secs(tc.Cooldown.D())
		if tc.Cooldown == 0 {
			row.CooldownText = "none"
		}
	}
	row.ForSecs = forD.Seconds()
	switch {
	case now.Before(st.CooldownUntil):
		row.Cooling = true
		row.Progress = fmt.Sprintf("cooling down until %s (%s left)", clock(st.CooldownUntil), secs(st.CooldownUntil.Sub(now)))
	case !st.PastSince.IsZero():
		past := now.Sub(st.PastSince)
		row.PastFor = min(past.Seconds(), row.ForSecs)
		row.Progress = fmt.Sprintf("past threshold for %s of %s (last value %s)", secs(past), secs(forD), num(st.LastValue))
	default:
		row.Progress = "not past its threshold"
		if st.LastValue != 0 || !st.LastFiredAt.IsZero() {
			row.Progress += " (last value " + num(st.LastValue) + ")"
		}
	}
	if st.Firings > 0 {
		row.Fired = fmt.Sprintf("%d time(s), last %s", st.Firings, ago(now, st.LastFiredAt))
	} else {
		row.Fired = "never"
	}
	return row
}

// thresholdsOf returns the thresholds of the triggers that watch a counter.
func thresholdsOf(cc *config.Cluster, counterName string) []threshold {
	var out []threshold
	for _, t := range cc.Triggers {
		for _, c := range t.Conditions() {
			if c.Counter != counterName {
				continue
			}
			th := threshold{Trigger: t.Name}
			if c.Above != nil {
				th.Value, th.Label = *c.Above, fmt.Sprintf("%s: above %s", t.Name, num(*c.Above))
			} else if c.Below != nil {
				th.Value, th.Label = *c.Below, fmt.Sprintf("%s: below %s", t.Name, num(*c.Below))
			} else {
				continue
			}
			out = append(out, th)
		}
	}
	return out
}

// nodeCounter is a node's newest reading of one counter.
type nodeCounter struct {
	Name  string
	Value string
	Err   string
	At    time.Time
}

type nodePageView struct {
	Page
	api.NodeDetail
	Cfg          *config.Cluster
	HealthText   string
	HealthClass  string
	Health       []controller.HealthResult
	Counters     []nodeCounter
	Charts       []chartSpec
	Launch       *store.Activity
	LaunchParent *store.Activity
	Activities   []store.Activity
	Log          string
	LogNote      string
	OOB          bool
}

func (u *UI) nodePage(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.nodeView(r, s)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "node", "layout", v)
	return nil
}

func (u *UI) nodeLive(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.nodeView(r, s)
	if err != nil {
		return err
	}
	v.OOB = true
	u.render(w, r, http.StatusOK, "node", "node-live", v)
	return nil
}

// nodeLogLines is how much of a node's log its page shows.
const nodeLogLines = 60

func (u *UI) nodeView(r *http.Request, s *session) (*nodePageView, error) {
	ctx := r.Context()
	name, id := r.PathValue("name"), r.PathValue("node")
	cc, err := u.data.ClusterConfig(name)
	if err != nil {
		return nil, err
	}
	d, err := u.data.Node(ctx, name, id)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	v := &nodePageView{Page: u.base(r, s, d.ID, "dashboard"), NodeDetail: d, Cfg: cc}
	rs := u.ctl.HealthResults(name, id)
	v.HealthText, v.HealthClass, _ = nodeHealth(d.Node, rs, cc.HealthCheck, now)
	slices.Reverse(rs)
	v.Health = rs
	for _, k := range cc.Counters {
		nc := nodeCounter{Name: k.Name, Value: "–"}
		if rd, ok := u.ctl.Latest(name, k.Name); ok {
			for _, smp := range rd.Nodes {
				if smp.Node == id {
					nc.At, nc.Err = smp.At, smp.Err
					if smp.OK() {
						nc.Value = num(smp.Value)
					}
				}
			}
		}
		v.Counters = append(v.Counters, nc)
		if k.Scope != "cluster" {
			v.Charts = append(v.Charts, chartSpec{Counter: k.Name, Title: k.Name + " on " + id + " and the cluster's " + k.Aggregate,
				Src: "/ui/data/clusters/" + url.PathEscape(name) + "/counters/" + url.PathEscape(k.Name) + "?since=15m&node=" + url.QueryEscape(id)})
		}
	}
	if d.LaunchActivity != 0 {
		if a, err := u.st.ActivityGet(ctx, d.LaunchActivity); err == nil {
			v.Launch = &a
			if a.ParentID != 0 {
				if p, err := u.st.ActivityGet(ctx, a.ParentID); err == nil {
					v.LaunchParent = &p
				}
			}
		}
	}
	v.Activities, err = u.st.ActivityList(ctx, store.ActivityFilter{Cluster: name, Node: id, Limit: 50})
	if err != nil {
		return nil, err
	}
	v.Log, v.LogNote = u.nodeLog(d.Node)
	return v, nil
}

// nodeLog returns the end of a node's log, if its provider keeps one in the
// data directory (the process provider does).
func (u *UI) nodeLog(n store.Node) (string, string) {
	path := n.Meta["log"]
	if path == "" {
		return "", "This node's provider keeps no log on the server."
	}
	dir, err := filepath.Abs(u.opts.DataDir)
	if err != nil || u.opts.DataDir == "" {
		return "", "The node's log is not shown: the server's data directory is unknown."
	}
	abs, err := filepath.Abs(path)
	if err != nil || !strings.HasPrefix(abs, dir+string(filepath.Separator)) {
		return "", "The node's log is outside the data directory: not shown."
	}
	text, err := tailFile(abs, nodeLogLines, 64<<10)
	if err != nil {
		return "", "Cannot read the node's log: " + err.Error()
	}
	return text, fmt.Sprintf("The last %d lines of %s.", nodeLogLines, abs)
}

// tailFile returns the last n lines of a file, reading at most max bytes.
func tailFile(path string, n int, maxBytes int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer func() { _ = f.Close() }()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	off := max(st.Size()-maxBytes, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return "", err
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // a partial first line
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n"), nil
}

// activityKinds are the kinds offered in the activities filter.
var activityKinds = []string{"trigger", "scale", "deploy_node", "remove_node", "local_script",
	"node_failed", "remove_orphan", "maintenance"}

var activityStatuses = []store.ActivityStatus{store.ActivityPending, store.ActivityRunning,
	store.ActivitySucceeded, store.ActivityFailed, store.ActivitySkipped}

type activitiesView struct {
	Page
	Filter   store.ActivityFilter
	Query    string
	Clusters []string
	Kinds    []string
	Statuses []store.ActivityStatus
	Acts     []store.Activity
}

func (u *UI) activitiesPage(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.activitiesView(r, s)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "activities", "layout", v)
	return nil
}

func (u *UI) activitiesLive(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.activitiesView(r, s)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "activities", "activities-rows", v)
	return nil
}

func (u *UI) activitiesView(r *http.Request, s *session) (*activitiesView, error) {
	q := r.URL.Query()
	f := store.ActivityFilter{Cluster: q.Get("cluster"), Kind: q.Get("kind"), Status: store.ActivityStatus(q.Get("status")), Limit: 100}
	if f.Cluster != "" {
		if _, err := u.data.ClusterConfig(f.Cluster); err != nil {
			return nil, err
		}
	}
	if f.Status != "" && !slices.Contains(activityStatuses, f.Status) {
		return nil, fmt.Errorf("%w: status %q is not one of pending, running, succeeded, failed, skipped", errBadInput, f.Status)
	}
	kinds := slices.Clone(activityKinds)
	if f.Kind != "" && !slices.Contains(kinds, f.Kind) {
		kinds = append(kinds, f.Kind)
	}
	v := &activitiesView{Page: u.base(r, s, "Activities", "activities"), Filter: f, Kinds: kinds, Statuses: activityStatuses}
	for _, cc := range u.ctl.Clusters() {
		v.Clusters = append(v.Clusters, cc.Name)
	}
	keep := url.Values{}
	for _, k := range []string{"cluster", "kind", "status"} {
		if val := q.Get(k); val != "" {
			keep.Set(k, val)
		}
	}
	v.Query = keep.Encode()
	var err error
	v.Acts, err = u.st.ActivityList(r.Context(), f)
	return v, err
}

type activityPageView struct {
	Page
	api.ActivityDetail
	Parent *store.Activity
	Params string
	// StepParams holds each step's parameters, secrets hidden.
	StepParams map[int64]string
	Done       bool
	OOB        bool
}

func (u *UI) activityPage(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.activityView(r, s)
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "activity", "layout", v)
	return nil
}

func (u *UI) activityLive(w http.ResponseWriter, r *http.Request, s *session) error {
	v, err := u.activityView(r, s)
	if err != nil {
		return err
	}
	v.OOB = true
	u.render(w, r, http.StatusOK, "activity", "activity-live", v)
	return nil
}

func (u *UI) activityView(r *http.Request, s *session) (*activityPageView, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: activity %q is not a number", errBadInput, r.PathValue("id"))
	}
	d, err := u.data.Activity(r.Context(), id)
	if err != nil {
		return nil, err
	}
	v := &activityPageView{Page: u.base(r, s, fmt.Sprintf("Activity #%d", id), "activities"), ActivityDetail: d,
		Params: redactJSON(d.Params), StepParams: map[int64]string{}, Done: d.Status.Done()}
	for _, st := range d.Steps {
		v.StepParams[st.ID] = redactJSON(st.Params)
		v.Done = v.Done && st.Status.Done()
	}
	if d.ParentID != 0 {
		if p, err := u.st.ActivityGet(r.Context(), d.ParentID); err == nil {
			v.Parent = &p
		}
	}
	return v, nil
}
