// Package store is goscaler's durable state: clusters, nodes and their state
// history, counter samples and their rollups, agent reports, trigger state,
// activities, server heartbeats and the leader lease. One interface, Store, is
// implemented for SQLite and PostgreSQL by package sqlstore; package storetest
// holds the conformance suite both pass.
//
// Times are stored as UTC unix milliseconds; a zero time.Time means "unset".
// Methods are named Noun+Verb and sorted alphabetically.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned (wrapped) when a row asked for by key does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when an insert collides with an existing key.
var ErrConflict = errors.New("already exists")

// Cluster is the runtime state of a cluster. Its definition lives in the
// configuration; the store keeps its bounds and desired size so that a restart
// or another replica sees the same target.
type Cluster struct {
	Name    string `json:"name"`
	Min     int    `json:"min"`
	Max     int    `json:"max"`
	Desired int    `json:"desired"`
	// Stopped keeps the cluster at zero nodes, whatever Desired says, until
	// it is started again (Desired is kept for that start).
	Stopped   bool      `json:"stopped"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Target is the number of nodes the cluster must have: Desired, or 0 when it
// is stopped.
func (c Cluster) Target() int {
	if c.Stopped {
		return 0
	}
	return c.Desired
}

// NodeState is a step in a node's life.
type NodeState string

// Node states. A node moves pending → provisioning → configuring → in_service →
// draining → terminated; any state may go to failed (which is followed by
// terminated once its machine is gone).
const (
	NodePending      NodeState = "pending"
	NodeProvisioning NodeState = "provisioning"
	NodeConfiguring  NodeState = "configuring"
	NodeInService    NodeState = "in_service"
	NodeDraining     NodeState = "draining"
	NodeTerminated   NodeState = "terminated"
	NodeFailed       NodeState = "failed"
)

// Active reports whether a node in this state counts toward the cluster's size.
func (s NodeState) Active() bool {
	switch s {
	case NodePending, NodeProvisioning, NodeConfiguring, NodeInService:
		return true
	default:
		return false
	}
}

// Gone reports whether the node's machine is (or must be) gone for good.
func (s NodeState) Gone() bool { return s == NodeTerminated }

// Node is one machine of a cluster.
type Node struct {
	ID      string    `json:"id"`
	Cluster string    `json:"cluster"`
	State   NodeState `json:"state"`
	// MachineID is the provider's identifier of the machine; empty until created.
	MachineID string `json:"machine_id,omitempty"`
	// Address is host:port where the node serves; empty until created.
	Address string `json:"address,omitempty"`
	// LaunchActivity is the activity that created the node; with LaunchIndex it
	// is unique, which makes launches idempotent under retries.
	LaunchActivity int64 `json:"launch_activity,omitempty"`
	LaunchIndex    int   `json:"launch_index"`
	// Maintenance takes the node out of rotation and out of healing.
	Maintenance bool `json:"maintenance"`
	// Reason says why the node is in its current state.
	Reason string `json:"reason,omitempty"`
	// Meta holds provider details (pid, process start time, …).
	Meta         map[string]string `json:"meta,omitempty"`
	CreatedAt    time.Time         `json:"created_at"`
	UpdatedAt    time.Time         `json:"updated_at"`
	InServiceAt  time.Time         `json:"in_service_at"`
	TerminatedAt time.Time         `json:"terminated_at"`
}

// NodeEvent is one state change of a node.
type NodeEvent struct {
	NodeID string    `json:"node_id"`
	At     time.Time `json:"at"`
	From   NodeState `json:"from"`
	To     NodeState `json:"to"`
	Reason string    `json:"reason"`
}

// NodeFilter selects nodes. Zero fields match everything.
type NodeFilter struct {
	Cluster string
	// States, if not empty, keeps nodes in one of these states.
	States []NodeState
}

// Sample is one reading of a counter: for a node, or the cluster aggregate when
// Node is empty. A failed reading has Err set and no Value: missing data is
// never a zero.
type Sample struct {
	Cluster string    `json:"cluster"`
	Counter string    `json:"counter"`
	Node    string    `json:"node,omitempty"`
	At      time.Time `json:"at"`
	Value   float64   `json:"value"`
	Err     string    `json:"error,omitempty"`
	// Reporting is, for an aggregate, how many nodes contributed a value.
	Reporting int `json:"reporting,omitempty"`
	// Expected is, for an aggregate, how many nodes were read (in service and
	// not in maintenance): Reporting < Expected means some nodes are missing.
	Expected int `json:"expected,omitempty"`
}

// OK reports whether the sample holds a value.
func (s Sample) OK() bool { return s.Err == "" }

// MarshalJSON writes a failed reading's value as null: missing data is never
// shown as a zero.
func (s Sample) MarshalJSON() ([]byte, error) {
	type plain Sample
	if s.OK() {
		return json.Marshal(plain(s))
	}
	return json.Marshal(struct {
		plain
		Value *float64 `json:"value"`
	}{plain: plain(s)})
}

// SampleFilter selects samples of one counter. Node "" with AggregateOnly
// selects the aggregate series only.
type SampleFilter struct {
	Cluster       string
	Counter       string
	Since         time.Time
	AggregateOnly bool
	// Until, if not zero, keeps the samples before it.
	Until time.Time
	// Nodes, if not empty, keeps the samples of these nodes ("" is the
	// aggregate series).
	Nodes []string
	// Limit keeps the newest Limit samples (0: no limit). Results are oldest first.
	Limit int
}

// Rollup summarises the samples of one series (a counter of one node, or its
// aggregate when Node is empty) over one bucket of time: older history is
// kept at coarser resolutions.
type Rollup struct {
	Cluster string `json:"cluster"`
	Counter string `json:"counter"`
	Node    string `json:"node,omitempty"`
	// Step is the bucket's width; At its start, a multiple of Step since the
	// Unix epoch.
	Step time.Duration `json:"step"`
	At   time.Time     `json:"at"`
	// Count is how many readings of the bucket had a value, Errors how many
	// failed. Avg, Min and Max are over the Count values; NaN when Count is 0.
	Count  int     `json:"count"`
	Errors int     `json:"errors"`
	Avg    float64 `json:"avg"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	// LastErr is one error message of the bucket ("" without errors).
	LastErr string `json:"last_error,omitempty"`
}

// RollupFilter selects the rollups of one resolution. Zero fields match
// everything but Step, which is required.
type RollupFilter struct {
	Cluster string
	Counter string
	Step    time.Duration
	// Since and Until bound the bucket starts: Since <= At < Until.
	Since         time.Time
	Until         time.Time
	AggregateOnly bool
	// Nodes, if not empty, keeps these nodes ("" is the aggregate series).
	Nodes []string
}

// AgentReading is one counter value pushed by a node's agent, or why the
// agent could not measure it.
type AgentReading struct {
	Value float64 `json:"value"`
	Err   string  `json:"error,omitempty"`
}

// AgentReport is the latest heartbeat of a node's agent with the counters it
// measured.
type AgentReport struct {
	Node    string `json:"node"`
	Cluster string `json:"cluster"`
	// ReceivedAt is when a server received it (the server's clock).
	ReceivedAt time.Time               `json:"received_at"`
	Counters   map[string]AgentReading `json:"counters"`
}

// TriggerState is what the trigger evaluator must remember across restarts.
type TriggerState struct {
	Cluster string `json:"cluster"`
	Trigger string `json:"trigger"`
	// PastSince is when the current streak of past-threshold samples began
	// (zero: no streak).
	PastSince     time.Time `json:"past_since"`
	LastValue     float64   `json:"last_value"`
	LastFiredAt   time.Time `json:"last_fired_at"`
	CooldownUntil time.Time `json:"cooldown_until"`
	Firings       int64     `json:"firings"`
}

// ActivityStatus is the outcome of an activity.
type ActivityStatus string

// Activity statuses.
const (
	ActivityPending   ActivityStatus = "pending"
	ActivityRunning   ActivityStatus = "running"
	ActivitySucceeded ActivityStatus = "succeeded"
	ActivityFailed    ActivityStatus = "failed"
	// ActivitySkipped marks a step that did not run because an earlier one failed.
	ActivitySkipped ActivityStatus = "skipped"
)

// Done reports whether the status is final.
func (s ActivityStatus) Done() bool {
	return s == ActivitySucceeded || s == ActivityFailed || s == ActivitySkipped
}

// Activity is one entry of the history: a decision or an action, with its cause.
type Activity struct {
	ID int64 `json:"id"`
	// ParentID links an action step to the decision that ordered it (0: none).
	ParentID int64  `json:"parent_id,omitempty"`
	Cluster  string `json:"cluster"`
	Node     string `json:"node,omitempty"`
	Trigger  string `json:"trigger,omitempty"`
	// Kind is what happened: trigger, scale, deploy_node, remove_node,
	// local_script, node_failed, replace_node, …
	Kind   string         `json:"kind"`
	Cause  string         `json:"cause"`
	Status ActivityStatus `json:"status"`
	// Step orders the actions of one decision (0, 1, 2, …).
	Step int `json:"step"`
	// Params is the action's configuration snapshot (JSON).
	Params     json.RawMessage `json:"params,omitempty"`
	Output     string          `json:"output,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  time.Time       `json:"started_at"`
	FinishedAt time.Time       `json:"finished_at"`
}

// ActivityFilter selects activities, newest first. Zero fields match everything.
type ActivityFilter struct {
	Cluster string
	// Node keeps the activities about one node.
	Node     string
	Kind     string
	Status   ActivityStatus
	ParentID int64
	// AfterID keeps activities with a larger ID (for --follow).
	AfterID int64
	// Limit caps the result (0: 100).
	Limit int
}

// ActivityUpdate changes an activity's outcome. Zero fields are left as they are.
type ActivityUpdate struct {
	Status     ActivityStatus
	Output     string
	Error      string
	StartedAt  time.Time
	FinishedAt time.Time
}

// Server is one running goscaler server process, known by its heartbeat.
type Server struct {
	ID          string    `json:"id"`
	Hostname    string    `json:"hostname"`
	PID         int       `json:"pid"`
	StartedAt   time.Time `json:"started_at"`
	HeartbeatAt time.Time `json:"heartbeat_at"`
}

// Store is goscaler's durable state.
//
// Implementations must be safe for concurrent use. Tx runs fn with a Store bound
// to one transaction: fn must use only the Store it is given, must not call Tx
// again, and is committed if it returns nil.
type Store interface {
	// AgentReportList returns the agent reports received at or after since, by node.
	AgentReportList(ctx context.Context, since time.Time) ([]AgentReport, error)
	// AgentReportPrune deletes the reports received before before and returns how
	// many it deleted.
	AgentReportPrune(ctx context.Context, before time.Time) (int64, error)
	// AgentReportPut stores each report, replacing the previous report of its node.
	AgentReportPut(ctx context.Context, reports []AgentReport) error

	// ActivityCreate inserts a and returns it with ID and CreatedAt set (a.CreatedAt
	// is kept if not zero).
	ActivityCreate(ctx context.Context, a Activity) (Activity, error)
	// ActivityGet returns one activity or ErrNotFound.
	ActivityGet(ctx context.Context, id int64) (Activity, error)
	// ActivityList returns activities matching f, newest (largest ID) first.
	ActivityList(ctx context.Context, f ActivityFilter) ([]Activity, error)
	// ActivityUpdate applies u to the activity; ErrNotFound if it does not exist.
	ActivityUpdate(ctx context.Context, id int64, u ActivityUpdate) (Activity, error)

	// ClusterDelete removes a cluster's row (its nodes and history stay).
	ClusterDelete(ctx context.Context, name string) error
	// ClusterGet returns one cluster or ErrNotFound.
	ClusterGet(ctx context.Context, name string) (Cluster, error)
	// ClusterList returns every cluster, by name.
	ClusterList(ctx context.Context) ([]Cluster, error)
	// ClusterSetDesired sets the desired size; ErrNotFound if the cluster does not exist.
	ClusterSetDesired(ctx context.Context, name string, desired int) (Cluster, error)
	// ClusterSetStopped marks a cluster stopped or started; ErrNotFound if it does
	// not exist. Desired is left as it is.
	ClusterSetStopped(ctx context.Context, name string, stopped bool) (Cluster, error)
	// ClusterUpsert creates the cluster with c's fields, or updates Min and Max of an
	// existing one and clamps its Desired into [Min, Max] (its Desired is otherwise
	// kept: a restart must not forget a scale-out; so is Stopped).
	ClusterUpsert(ctx context.Context, c Cluster) (Cluster, error)

	// LeaderAttemptElect makes holder the leader of name until now+ttl if there is no
	// leader, the lease expired, or holder already holds it. It reports whether
	// holder is the leader afterwards.
	LeaderAttemptElect(ctx context.Context, name, holder string, now time.Time, ttl time.Duration) (bool, error)
	// LeaderResign gives up the lease if holder holds it.
	LeaderResign(ctx context.Context, name, holder string) error

	// MetaGet returns a value of the key/value table or ErrNotFound.
	MetaGet(ctx context.Context, key string) (string, error)
	// MetaSet stores value under key, replacing any previous value.
	MetaSet(ctx context.Context, key, value string) error
	// MetaSetIfAbsent stores value under key unless the key exists, and returns the
	// stored value either way.
	MetaSetIfAbsent(ctx context.Context, key, value string) (string, error)

	// NodeCreate inserts a node; ErrConflict if its ID, or its (LaunchActivity,
	// LaunchIndex) pair when LaunchActivity != 0, already exists. It records a
	// NodeEvent from "" to n.State.
	NodeCreate(ctx context.Context, n Node) (Node, error)
	// NodeEvents returns a node's state changes, oldest first.
	NodeEvents(ctx context.Context, id string) ([]NodeEvent, error)
	// NodeGet returns one node or ErrNotFound.
	NodeGet(ctx context.Context, id string) (Node, error)
	// NodeList returns nodes matching f, oldest (by CreatedAt, then ID) first.
	NodeList(ctx context.Context, f NodeFilter) ([]Node, error)
	// NodeNextSeq returns the next number for naming a node of cluster (1, 2, …),
	// never the same twice for one cluster.
	NodeNextSeq(ctx context.Context, cluster string) (int64, error)
	// NodeUpdate stores every field of n (by n.ID) and sets UpdatedAt. If n.State
	// differs from the stored state it records a NodeEvent with n.Reason.
	// ErrNotFound if the node does not exist.
	NodeUpdate(ctx context.Context, n Node) (Node, error)

	// RollupCompute summarises into rollups of step the data of the buckets
	// that start in [from, to) (from and to are multiples of step): raw samples
	// when src is 0, otherwise the rollups of step src (step must be a
	// multiple of src). A bucket computed again is replaced. A zero from starts
	// at the bucket of the oldest source data. It returns how many rollups it
	// wrote.
	RollupCompute(ctx context.Context, step, src time.Duration, from, to time.Time) (int64, error)
	// RollupList returns the rollups matching f, oldest bucket first.
	RollupList(ctx context.Context, f RollupFilter) ([]Rollup, error)
	// RollupPrune deletes the rollups of step whose bucket starts before
	// before and returns how many it deleted.
	RollupPrune(ctx context.Context, step time.Duration, before time.Time) (int64, error)

	// SampleInsert stores samples.
	SampleInsert(ctx context.Context, samples []Sample) error
	// SampleList returns samples matching f, oldest first.
	SampleList(ctx context.Context, f SampleFilter) ([]Sample, error)
	// SamplePrune deletes samples older than before and returns how many it deleted.
	SamplePrune(ctx context.Context, before time.Time) (int64, error)
	// SeriesPrune forgets the series (a counter of a node, or its aggregate)
	// that have neither samples nor rollups left, and returns how many.
	SeriesPrune(ctx context.Context) (int64, error)

	// ServerHeartbeat upserts s (by ID) with HeartbeatAt.
	ServerHeartbeat(ctx context.Context, s Server) error
	// ServerList returns the servers, newest heartbeat first.
	ServerList(ctx context.Context) ([]Server, error)

	// TriggerStateGet returns a trigger's state or ErrNotFound.
	TriggerStateGet(ctx context.Context, cluster, trigger string) (TriggerState, error)
	// TriggerStateList returns the trigger states of a cluster ("" for all).
	TriggerStateList(ctx context.Context, cluster string) ([]TriggerState, error)
	// TriggerStatePut stores s, replacing any state of the same trigger.
	TriggerStatePut(ctx context.Context, s TriggerState) error

	// Tx runs fn in a transaction (see the type's doc).
	Tx(ctx context.Context, fn func(Store) error) error
	// Dialect names the database: "sqlite" or "postgres".
	Dialect() string
	// Close releases the database.
	Close() error
}

// MarshalJSON writes {"value": v}, or {"error": "…"} for a failed reading
// (never a zero value).
func (r AgentReading) MarshalJSON() ([]byte, error) {
	if r.Err != "" {
		return json.Marshal(struct {
			Err string `json:"error"`
		}{r.Err})
	}
	return json.Marshal(struct {
		Value float64 `json:"value"`
	}{r.Value})
}

// UnmarshalJSON reads {"value": v}, {"error": "…"}, a bare number (a value)
// or a bare string (an error).
func (r *AgentReading) UnmarshalJSON(data []byte) error {
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case float64:
		*r = AgentReading{Value: x}
		return nil
	case string:
		if x == "" {
			return errors.New("an empty error message: send a value or say why there is none")
		}
		*r = AgentReading{Err: x}
		return nil
	case map[string]any:
	default:
		return errors.New(`a counter reading must be a number, {"value": N} or {"error": "why"}`)
	}
	var obj struct {
		Value *float64 `json:"value"`
		Err   string   `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&obj); err != nil {
		return fmt.Errorf(`a counter reading must be {"value": N} or {"error": "why"}: %w`, err)
	}
	switch {
	case obj.Value != nil && obj.Err != "":
		return errors.New("a counter reading has both a value and an error")
	case obj.Err != "":
		*r = AgentReading{Err: obj.Err}
	case obj.Value != nil:
		*r = AgentReading{Value: *obj.Value}
	default:
		return errors.New(`a counter reading has neither "value" nor "error"`)
	}
	return nil
}
