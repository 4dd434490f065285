// Package server assembles the goscaler daemon: store, job queue, controller,
// leader election and the HTTP API, and runs them until its context ends.
package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/goscaler/goscaler/internal/api"
	"github.com/goscaler/goscaler/internal/config"
	"github.com/goscaler/goscaler/internal/controller"
	"github.com/goscaler/goscaler/internal/jobs"
	"github.com/goscaler/goscaler/internal/store"
	"github.com/goscaler/goscaler/internal/store/sqlstore"
	"github.com/goscaler/goscaler/internal/web"
)

// Timing of leadership and heartbeats.
const (
	heartbeatEvery = 2 * time.Second
	leaseTTL       = 10 * time.Second
	leaderName     = "controller"
)

// Server is a running goscaler daemon.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	st       *sqlstore.Store
	ctl      *controller.Controller
	queue    jobs.Queue
	http     *http.Server
	listener net.Listener
	id       string
	unlock   func()
	// stopNodes terminates the nodes on exit.
	stopNodes bool

	// Ready is closed once the API listens.
	Ready chan struct{}
}

// Options tunes a Server.
type Options struct {
	Logger *slog.Logger
	DryRun bool
	// StopNodesOnExit terminates every node when the server stops (the demo);
	// otherwise nodes keep running and the next server adopts them.
	StopNodesOnExit bool
}

// New opens the store, builds the controller and the job queue, and binds the
// API's address (so a clash is reported before anything runs).
func New(ctx context.Context, cfg *config.Config, opts Options) (s *Server, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s = &Server{cfg: cfg, log: log, Ready: make(chan struct{}), id: "srv-" + randomHex(6), stopNodes: opts.StopNodesOnExit}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	dataDir := cfg.Server.DataDir
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return nil, fmt.Errorf("creating data directory %s: %w", dataDir, err)
	}
	if cfg.Server.Database == "" || strings.HasPrefix(cfg.Server.Database, "sqlite:") {
		unlock, err := lockDataDir(dataDir)
		if err != nil {
			return nil, err
		}
		s.unlock = unlock
	}
	s.st, err = sqlstore.Open(ctx, cfg.Server.Database, dataDir)
	if err != nil {
		return nil, fmt.Errorf("opening the database: %w", err)
	}
	owner, err := s.st.MetaSetIfAbsent(ctx, "installation_id", "gs-"+randomHex(8))
	if err != nil {
		return nil, fmt.Errorf("reading the installation id: %w", err)
	}
	metrics := controller.NewMetrics()
	s.ctl, err = controller.New(ctx, controller.Options{Config: cfg, Store: s.st, ServerID: s.id, Owner: owner,
		DataDir: dataDir, Logger: log, Metrics: metrics, DryRun: opts.DryRun})
	if err != nil {
		return nil, err
	}
	if err := s.ctl.Sync(ctx); err != nil {
		return nil, err
	}
	jopts := jobs.Options{ClientID: s.id, Handlers: s.ctl.Handlers(), Logger: log}
	if pool := s.st.Pool(); pool != nil {
		s.queue, err = jobs.OpenPostgres(ctx, pool, s.st.DB(), jopts)
	} else {
		s.queue, err = jobs.OpenSQLite(ctx, s.st.DB(), jopts)
	}
	if err != nil {
		return nil, err
	}
	s.ctl.SetQueue(s.queue)
	s.listener, err = net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (server.listen): %w", cfg.Server.Listen, err)
	}
	// The API, /healthz and /metrics, and the web UI at /.
	apiHandler := api.New(api.Options{Store: s.st, Controller: s.ctl, Tokens: cfg.Server.APITokens,
		AgentTokens: cfg.Server.AgentTokens, Registry: metrics.Registry, Logger: log})
	mux := http.NewServeMux()
	for _, p := range []string{"/api/", "/healthz", "/metrics"} {
		mux.Handle(p, apiHandler)
	}
	mux.Handle("/", web.New(web.Options{Store: s.st, Controller: s.ctl, Tokens: cfg.Server.APITokens, DataDir: dataDir, Logger: log}))
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Addr is the address the API listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// Controller gives access to the controller (for the demo).
func (s *Server) Controller() *controller.Controller { return s.ctl }

// Store gives access to the store.
func (s *Server) Store() store.Store { return s.st }

// Run serves until ctx is done, then shuts down in order: API, leader work,
// jobs, load balancers, store. Node machines are left running (a restarted
// server adopts them).
func (s *Server) Run(ctx context.Context) error {
	defer s.close()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	wg.Go(func() {
		close(s.Ready)
		if err := s.http.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serving the API: %w", err)
		}
	})
	if err := s.queue.Start(ctx); err != nil {
		_ = s.http.Close()
		wg.Wait()
		return err
	}
	// Every server receives agents' heartbeats; the hub stores them (and,
	// on a shared database, reads what the others received).
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		s.ctl.Agents().Run(hubCtx)
	}()
	s.log.Info("goscaler server started", "listen", s.Addr(), "server_id", s.id, "database", s.st.Dialect(), "clusters", len(s.cfg.Clusters))
	leaderDone := make(chan struct{})
	go func() {
		defer close(leaderDone)
		s.lead(ctx)
	}()
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	s.log.Info("goscaler server stopping")
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = s.http.Shutdown(shut)
	<-leaderDone
	stopHub() // after the API: the last heartbeats received are stored
	<-hubDone
	if err := s.queue.Stop(shut); err != nil {
		s.log.Warn("stopping jobs", "err", err)
	}
	wg.Wait()
	if s.stopNodes {
		removed, err := s.ctl.TerminateAll(shut, "stopped with the server")
		if err != nil {
			s.log.Error("stopping nodes", "err", err)
		}
		s.log.Info("stopped every node", "nodes", len(removed))
	}
	return runErr
}

// lead heartbeats, competes for the leader lease, and runs the controller
// while it holds it.
func (s *Server) lead(ctx context.Context) {
	hostname, _ := os.Hostname()
	started := time.Now()
	var leaderCancel context.CancelFunc
	var leaderWG sync.WaitGroup
	stopLeading := func() {
		if leaderCancel != nil {
			leaderCancel()
			leaderWG.Wait()
			leaderCancel = nil
		}
	}
	defer func() {
		stopLeading()
		_ = s.st.LeaderResign(context.WithoutCancel(ctx), leaderName, s.id)
	}()
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		now := time.Now()
		if err := s.st.ServerHeartbeat(ctx, store.Server{ID: s.id, Hostname: hostname, PID: os.Getpid(), StartedAt: started, HeartbeatAt: now}); err != nil && ctx.Err() == nil {
			s.log.Warn("heartbeat failed", "err", err)
		}
		// On SQLite the data-directory lock already makes this the only
		// server: it leads at once, without waiting out a dead server's lease.
		leader := s.st.Dialect() == "sqlite"
		if !leader {
			var err error
			leader, err = s.st.LeaderAttemptElect(ctx, leaderName, s.id, now, leaseTTL)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("leader election failed", "err", err)
			}
		}
		switch {
		case leader && leaderCancel == nil:
			s.log.Info("leading: this server runs the controller")
			if err := s.requeueOrphans(ctx); err != nil {
				s.log.Warn("requeueing jobs of dead servers", "err", err)
			}
			lctx, cancel := context.WithCancel(ctx)
			leaderCancel = cancel
			leaderWG.Go(func() {
				if err := s.ctl.Run(lctx); err != nil && lctx.Err() == nil {
					s.log.Error("controller stopped", "err", err)
					cancel()
				}
			})
		case leader:
			if err := s.requeueOrphans(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("requeueing jobs of dead servers", "err", err)
			}
		case !leader && leaderCancel != nil:
			s.log.Warn("lost the leader lease: stopping the controller")
			stopLeading()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// requeueOrphans gives back the jobs of servers that stopped heartbeating.
func (s *Server) requeueOrphans(ctx context.Context) error {
	var live []string
	if s.st.Dialect() == "postgres" {
		servers, err := s.st.ServerList(ctx)
		if err != nil {
			return err
		}
		for _, srv := range servers {
			if time.Since(srv.HeartbeatAt) < leaseTTL {
				live = append(live, srv.ID)
			}
		}
	}
	n, err := s.queue.RequeueOrphans(ctx, live)
	if n > 0 {
		s.log.Info("resumed jobs left running by a stopped server", "jobs", n)
	}
	return err
}

func (s *Server) close() {
	if s.ctl != nil {
		s.ctl.Close()
	}
	if s.listener != nil {
		_ = s.listener.Close()
	}
	if s.st != nil {
		_ = s.st.Close()
	}
	if s.unlock != nil {
		s.unlock()
	}
}

// lockDataDir makes sure one server at a time uses a SQLite data directory.
func lockDataDir(dir string) (func(), error) {
	path := filepath.Join(dir, "goscaler.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600) //nolint:gosec // our own data directory
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil { //nolint:gosec // fd fits an int
		pid, _ := os.ReadFile(path) //nolint:gosec // our own lock file
		_ = f.Close()
		return nil, fmt.Errorf("another goscaler server (pid %s) is using the data directory %s: stop it, or give this one another --data-dir", strings.TrimSpace(string(pid)), dir)
	}
	_ = f.Truncate(0)
	_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:gosec // fd fits an int
		_ = f.Close()
	}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
