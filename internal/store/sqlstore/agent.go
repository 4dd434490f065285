package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/goscaler/goscaler/internal/store"
)

// --- agent reports ---

// AgentReportList returns the agent reports received at or after since, by node.
func (s *Store) AgentReportList(ctx context.Context, since time.Time) ([]store.AgentReport, error) {
	out, err := queryAll(ctx, s.q, `SELECT node_id, cluster, received_at, counters FROM agent_reports
		WHERE received_at >= $1 ORDER BY node_id`, []any{toMS(since)},
		func(sc scanner) (store.AgentReport, error) {
			var (
				r        store.AgentReport
				at       int64
				counters string
			)
			if err := sc.Scan(&r.Node, &r.Cluster, &at, &counters); err != nil {
				return store.AgentReport{}, err
			}
			r.ReceivedAt = fromMS(at)
			if err := json.Unmarshal([]byte(counters), &r.Counters); err != nil {
				return store.AgentReport{}, fmt.Errorf("agent report of node %q: decode counters: %w", r.Node, err)
			}
			return r, nil
		})
	if err != nil {
		return nil, fmt.Errorf("list agent reports: %w", err)
	}
	return out, nil
}

// AgentReportPrune deletes the reports received before before.
func (s *Store) AgentReportPrune(ctx context.Context, before time.Time) (int64, error) {
	n, err := s.exec(ctx, `DELETE FROM agent_reports WHERE received_at < $1`, toMS(before))
	if err != nil {
		return 0, fmt.Errorf("prune agent reports: %w", err)
	}
	return n, nil
}

// AgentReportPut stores each report, replacing the previous report of its
// node (the last one wins when a node appears twice).
func (s *Store) AgentReportPut(ctx context.Context, reports []store.AgentReport) error {
	latest := map[string]int{}
	var order []string
	for i, r := range reports {
		if r.Node == "" {
			return fmt.Errorf("put agent report of cluster %q: empty node", r.Cluster)
		}
		if _, ok := latest[r.Node]; !ok {
			order = append(order, r.Node)
		}
		latest[r.Node] = i
	}
	if len(order) == 0 {
		return nil
	}
	err := s.inTx(ctx, func(q queryer) error {
		for start := 0; start < len(order); start += sampleBatch {
			batch := order[start:min(start+sampleBatch, len(order))]
			var b strings.Builder
			args := make([]any, 0, 4*len(batch))
			b.WriteString(`INSERT INTO agent_reports (node_id, cluster, received_at, counters) VALUES `)
			for i, node := range batch {
				r := reports[latest[node]]
				counters := r.Counters
				if counters == nil {
					counters = map[string]store.AgentReading{}
				}
				enc, err := json.Marshal(counters)
				if err != nil {
					return fmt.Errorf("agent report of node %q: encode counters: %w", node, err)
				}
				if i > 0 {
					b.WriteString(", ")
				}
				n := len(args)
				s.row(&b, n, 4)
				args = append(args, node, r.Cluster, toMS(r.ReceivedAt), string(enc))
			}
			b.WriteString(` ON CONFLICT (node_id) DO UPDATE SET cluster = excluded.cluster,
				received_at = excluded.received_at, counters = excluded.counters`)
			if _, err := q.ExecContext(ctx, b.String(), args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("put %d agent reports: %w", len(order), err)
	}
	return nil
}
