package api

import (
	"net/http"
	"time"
)

// ExecRequest is the body of POST /api/v1/clusters/{name}/exec.
type ExecRequest struct {
	// Command is a line run with sh -c on each node.
	Command string `json:"command"`
	// Nodes are the node IDs to run on; empty: every in-service node.
	Nodes []string `json:"nodes,omitempty"`
	// Timeout bounds the command on each node ("30s"); default 5m.
	Timeout string `json:"timeout,omitempty"`
}

func (a *api) exec(r *http.Request) (any, int, error) {
	var req ExecRequest
	if err := decode(r, &req); err != nil {
		return nil, 0, err
	}
	var timeout time.Duration
	if req.Timeout != "" {
		d, err := time.ParseDuration(req.Timeout)
		if err != nil || d <= 0 {
			return nil, 0, badRequest("timeout %q is not a positive duration such as 30s", req.Timeout)
		}
		timeout = d
	}
	rep, err := a.ctl.Exec(r.Context(), r.PathValue("name"), req.Command, req.Nodes, timeout)
	return rep, 0, err
}

func (a *api) nodeSSH(r *http.Request) (any, int, error) {
	info, err := a.ctl.NodeSSH(r.Context(), r.PathValue("name"), r.PathValue("node"))
	return info, 0, err
}

func (a *api) reconfigure(r *http.Request) (any, int, error) {
	act, err := a.ctl.Reconfigure(r.Context(), r.PathValue("name"), r.PathValue("node"))
	return act, 0, err
}
