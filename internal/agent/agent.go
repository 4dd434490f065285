package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/goscaler/goscaler/internal/counter"
	execcounter "github.com/goscaler/goscaler/internal/counter/exec"
	"github.com/goscaler/goscaler/internal/store"
)

// HeartbeatPath is the API path agents post their reports to.
const HeartbeatPath = "/api/v1/agent/heartbeat"

// Heartbeat is the body of POST /api/v1/agent/heartbeat.
type Heartbeat struct {
	Node string `json:"node"`
	// Cluster is optional; when set it must be the node's.
	Cluster  string                        `json:"cluster,omitempty"`
	Counters map[string]store.AgentReading `json:"counters"`
}

// Counter is a counter the agent measures: a shell command whose output is
// a number.
type Counter struct {
	Name  string
	Shell string
}

// ParseCounter reads a --counter flag: name=shell command.
func ParseCounter(s string) (Counter, error) {
	name, shell, ok := strings.Cut(s, "=")
	name, shell = strings.TrimSpace(name), strings.TrimSpace(shell)
	if !ok || name == "" || shell == "" {
		return Counter{}, fmt.Errorf("counter %q: write it as name=shell-command, such as load='cut -d\" \" -f1 /proc/loadavg'", s)
	}
	if err := ValidName(name); err != nil {
		return Counter{}, err
	}
	return Counter{Name: name, Shell: shell}, nil
}

// ValidName checks a pushed counter's name.
func ValidName(name string) error {
	if name == "" || len(name) > 100 {
		return fmt.Errorf("counter name %q must have 1 to 100 characters", name)
	}
	for _, r := range name {
		if !nameRune(r) {
			return fmt.Errorf("counter name %q: use letters, digits, _ - . and : only", name)
		}
	}
	return nil
}

// nameRune reports whether r may be part of a counter name.
func nameRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-.:", r)
}

// Options configures an agent.
type Options struct {
	// Server is the base URL of a goscaler server (http://host:8080).
	Server string
	// Token is sent as a bearer token (one of the server's agent_tokens or
	// api_tokens); empty for a server without tokens.
	Token   string
	Node    string
	Cluster string
	// Interval is how often the agent measures and reports.
	Interval time.Duration
	Counters []Counter
	Logger   *slog.Logger
	// Client is the HTTP client (default: a client with a timeout of Interval).
	Client *http.Client
	// OnReport, if set, is called after each report with its outcome.
	OnReport func(Heartbeat, error)
}

// Run measures and reports every interval until ctx is done. A server that
// cannot be reached is retried at the next interval: the agent never gives up.
func Run(ctx context.Context, o Options) error {
	if o.Node == "" {
		return errors.New("agent: no node ID: pass --node or set GOSCALER_NODE (the process provider sets it)")
	}
	if o.Server == "" {
		return errors.New("agent: no server URL: pass --server or set GOSCALER_SERVER")
	}
	if o.Interval <= 0 {
		return fmt.Errorf("agent: interval %s must be positive", o.Interval)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: max(o.Interval, 2*time.Second)}
	}
	sources := map[string]counter.Source{}
	for _, c := range o.Counters {
		if _, dup := sources[c.Name]; dup {
			return fmt.Errorf("agent: counter %q is given twice", c.Name)
		}
		src, err := (&execcounter.Config{Shell: c.Shell}).New(counter.Env{Cluster: o.Cluster, Counter: c.Name, Logger: o.Logger})
		if err != nil {
			return fmt.Errorf("agent: counter %q: %w", c.Name, err)
		}
		sources[c.Name] = src
	}
	url := strings.TrimRight(o.Server, "/") + HeartbeatPath
	log := o.Logger.With("node", o.Node)
	log.Info("agent started", "server", o.Server, "interval", o.Interval, "counters", len(o.Counters))
	t := time.NewTicker(o.Interval)
	defer t.Stop()
	failing := false
	var lastLogged time.Time
	for {
		hb := measure(ctx, o, sources)
		err := post(ctx, o.Client, url, o.Token, hb)
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil && (!failing || time.Since(lastLogged) >= time.Minute):
			log.Warn("reporting to the server failed; retrying every interval", "err", err)
			failing, lastLogged = true, time.Now()
		case err == nil && failing:
			log.Info("reporting to the server again")
			failing = false
		}
		if o.OnReport != nil {
			o.OnReport(hb, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// measure reads every counter at once, each within the interval.
func measure(ctx context.Context, o Options, sources map[string]counter.Source) Heartbeat {
	hb := Heartbeat{Node: o.Node, Cluster: o.Cluster, Counters: map[string]store.AgentReading{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, src := range sources {
		wg.Go(func() {
			rctx, cancel := context.WithTimeout(ctx, o.Interval)
			defer cancel()
			v, err := src.Read(rctx, counter.Target{Cluster: o.Cluster, NodeID: o.Node})
			r := store.AgentReading{Value: v}
			if err != nil {
				r = store.AgentReading{Err: err.Error()}
			}
			mu.Lock()
			hb.Counters[name] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	return hb
}

// post sends one heartbeat.
func post(ctx context.Context, client *http.Client, url, token string, hb Heartbeat) error {
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("bad server URL: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 == 2 {
		return nil
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, e.Error.Message)
	}
	return fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(data)))
}
