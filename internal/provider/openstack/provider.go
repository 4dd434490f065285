package openstack

import (
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/provider"
)

// Provider runs nodes as Nova servers. It is safe for concurrent use.
type Provider struct {
	cfg   compiled
	owner string
	sess  *osapi.Session
	retry osapi.Retrier
	log   *slog.Logger

	resMu   sync.Mutex
	res     resolved
	netDone bool

	// nodeLocks serialise the Create calls of one node.
	nodeMu    sync.Mutex
	nodeLocks map[string]*nodeLock
}

type nodeLock struct {
	mu   sync.Mutex
	refs int
}

var _ provider.Provider = (*Provider)(nil)

func newProvider(cfg compiled, env provider.Env) *Provider {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("provider", TypeName)
	sess := osapi.NewSession(cfg.Auth, log)
	return &Provider{cfg: cfg, owner: env.Owner, sess: sess, retry: sess.Retrier(), log: log,
		nodeLocks: map[string]*nodeLock{}}
}

// lockNode takes the lock of a node's Create; the result releases it.
func (p *Provider) lockNode(node string) func() {
	p.nodeMu.Lock()
	l := p.nodeLocks[node]
	if l == nil {
		l = &nodeLock{}
		p.nodeLocks[node] = l
	}
	l.refs++
	p.nodeMu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		p.nodeMu.Lock()
		if l.refs--; l.refs == 0 {
			delete(p.nodeLocks, node)
		}
		p.nodeMu.Unlock()
	}
}

// ServerName is the deterministic name of a node's server.
func (p *Provider) ServerName(nodeID string) string { return p.owner + "-" + nodeID }

// ---------------------------------------------------------------------------
// Errors

// classify wraps err in the provider sentinel it stands for.
func (p *Provider) classify(ctx context.Context, what string, err error) error {
	err = osapi.Clean(err)
	for _, s := range []error{provider.ErrNotFound, provider.ErrTransient, provider.ErrCapacity, provider.ErrQuota, provider.ErrConfig} {
		if errors.Is(err, s) {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	switch {
	case ctx != nil && ctx.Err() != nil:
		return fmt.Errorf("%s: %w (%w)", what, ctx.Err(), err)
	case errors.Is(err, osapi.ErrConfig):
		return fmt.Errorf("%w: %s: %w", provider.ErrConfig, what, err)
	case osapi.IsQuota(err):
		return fmt.Errorf("%w: %s: %w", provider.ErrQuota, what, err)
	case osapi.IsTransient(err):
		return fmt.Errorf("%w: %s: %w", provider.ErrTransient, what, err)
	}
	switch osapi.Status(err) {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
		return fmt.Errorf("%w: %s: %w", provider.ErrConfig, what, err)
	}
	return fmt.Errorf("%w: %s: %w", provider.ErrTransient, what, err)
}

// classifyCreate is classify for the answer to a create request: Nova's 409
// is a capacity problem, unless it says the network is ambiguous.
func (p *Provider) classifyCreate(ctx context.Context, what string, err error) error {
	if osapi.Status(err) == http.StatusConflict && !osapi.IsQuota(err) {
		if msg := strings.ToLower(osapi.Message(err)); strings.Contains(msg, "multiple possible networks") || strings.Contains(msg, "ambiguous") {
			return fmt.Errorf("%w: %s: %w (set network)", provider.ErrConfig, what, osapi.Clean(err))
		}
		return fmt.Errorf("%w: %s: %w", provider.ErrCapacity, what, osapi.Clean(err))
	}
	return p.classify(ctx, what, err)
}

// faultError is the error of a server that ended its build in ERROR.
func faultError(s *servers.Server) error {
	msg := s.Fault.Message
	if msg == "" {
		msg = "no fault message"
	}
	low := strings.ToLower(msg)
	kind := provider.ErrTransient
	switch {
	case strings.Contains(low, "no valid host"), strings.Contains(low, "exceeded maximum number of retries"),
		strings.Contains(low, "insufficient"), strings.Contains(low, "not enough hosts"):
		kind = provider.ErrCapacity
	case strings.Contains(low, "quota"):
		kind = provider.ErrQuota
	case strings.Contains(low, "could not be found"), strings.Contains(low, "is too small"),
		strings.Contains(low, "unacceptable"), strings.Contains(low, "invalid"):
		kind = provider.ErrConfig
	}
	return fmt.Errorf("%w: server %s (%s) ended its build in ERROR: %s", kind, s.Name, s.ID, msg)
}

// ---------------------------------------------------------------------------
// Servers

// gone reports whether Nova's status means the server is no more.
func gone(status string) bool { return status == "DELETED" || status == "SOFT_DELETED" }

// ours reports whether a server carries this installation's owner tag.
func (p *Provider) ours(s *servers.Server) bool { return s.Metadata[MetaOwner] == p.owner }

// find lists the live servers of this owner tagged for cluster (and node, if
// not ""), oldest first. Every page of the project's servers is read, and the
// metadata is matched here: Nova cannot filter on metadata.
func (p *Provider) find(ctx context.Context, cluster, node string) ([]servers.Server, error) {
	cc, err := p.sess.Compute(ctx)
	if err != nil {
		return nil, p.classify(ctx, "connecting to Nova", err)
	}
	var all []servers.Server
	err = p.retry.Do(ctx, nil, func(ctx context.Context) error {
		all, err = listServers(ctx, cc)
		return err
	})
	if err != nil {
		return nil, p.classify(ctx, "listing servers", err)
	}
	var out []servers.Server
	for _, s := range all {
		if !p.ours(&s) || s.Metadata[MetaCluster] != cluster || gone(s.Status) ||
			(node != "" && s.Metadata[MetaNode] != node) {
			continue
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b servers.Server) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// maxPages bounds the pages of servers read, against a "next" link that
// never ends.
const maxPages = 10000

// listServers reads every page of GET /servers/detail. Each page is decoded
// once, straight into servers.Server: gophercloud's pager decodes a page
// three times, which costs a third of a second per thousand servers.
func listServers(ctx context.Context, cc *gophercloud.ServiceClient) ([]servers.Server, error) {
	var all []servers.Server
	url := cc.ServiceURL("servers", "detail")
	for range maxPages {
		var page struct {
			Servers []servers.Server   `json:"servers"`
			Links   []gophercloud.Link `json:"servers_links"`
		}
		if _, err := cc.Get(ctx, url, &page, nil); err != nil { //nolint:bodyclose // gophercloud closes it once decoded
			return nil, err
		}
		all = append(all, page.Servers...)
		next := ""
		for _, l := range page.Links {
			if l.Rel == "next" {
				next = l.Href
			}
		}
		if next == "" || next == url || len(page.Servers) == 0 {
			return all, nil
		}
		url = next
	}
	return nil, fmt.Errorf("listing servers: more than %d pages", maxPages)
}

// get fetches a server; a 404 is ErrNotFound.
func (p *Provider) get(ctx context.Context, id string) (*servers.Server, error) {
	cc, err := p.sess.Compute(ctx)
	if err != nil {
		return nil, p.classify(ctx, "connecting to Nova", err)
	}
	var s *servers.Server
	err = p.retry.Do(ctx, nil, func(ctx context.Context) error {
		var err error
		s, err = servers.Get(ctx, cc, id).Extract()
		return err
	})
	switch {
	case err != nil && osapi.IsNotFound(err):
		return nil, fmt.Errorf("server %s: %w", id, provider.ErrNotFound)
	case err != nil:
		return nil, p.classify(ctx, "getting server "+id, err)
	}
	return s, nil
}

// getOurs is get for a server of this owner that is not deleted.
func (p *Provider) getOurs(ctx context.Context, id string) (*servers.Server, error) {
	if id == "" {
		return nil, fmt.Errorf("an empty server ID: %w", provider.ErrNotFound)
	}
	s, err := p.get(ctx, id)
	if err != nil {
		return nil, err
	}
	if gone(s.Status) {
		return nil, fmt.Errorf("server %s is %s: %w", id, s.Status, provider.ErrNotFound)
	}
	if !p.ours(s) {
		return nil, fmt.Errorf("server %s (%s) is not a node of %s (its %s is %q): %w",
			id, s.Name, p.owner, MetaOwner, s.Metadata[MetaOwner], provider.ErrNotFound)
	}
	return s, nil
}

// state maps Nova's status to the machine's state and reason.
func state(s *servers.Server) (provider.MachineState, string) {
	switch s.Status {
	case "SHUTOFF", "STOPPED", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED":
		return provider.MachineStopped, "the server is " + s.Status
	case "ERROR":
		msg := s.Fault.Message
		if msg == "" {
			msg = "no fault message"
		}
		return provider.MachineStopped, "the server is in ERROR: " + msg
	}
	return provider.MachineRunning, ""
}

// address is one entry of a server's "addresses".
type address struct {
	network, ip, kind string // kind: fixed or floating
	version           int
}

func addresses(s *servers.Server) []address {
	var out []address
	for _, netName := range slices.Sorted(maps.Keys(s.Addresses)) {
		list, _ := s.Addresses[netName].([]any)
		for _, item := range list {
			m, _ := item.(map[string]any)
			ip, _ := m["addr"].(string)
			if ip == "" {
				continue
			}
			kind, _ := m["OS-EXT-IPS:type"].(string)
			version := 4
			if v, ok := m["version"]; ok {
				if n, err := strconv.Atoi(fmt.Sprint(v)); err == nil {
					version = n
				}
			}
			if kind == "" {
				kind = "fixed"
			}
			out = append(out, address{network: netName, ip: ip, kind: kind, version: version})
		}
	}
	// IPv4 first, then IPv6, in the order Nova listed them.
	slices.SortStableFunc(out, func(a, b address) int { return cmp.Compare(a.version, b.version) })
	return out
}

// pickIP returns the server's address on the configured network (any network
// if none is configured) of the given kind, "" if it has none.
func (p *Provider) pickIP(s *servers.Server, kind string) string {
	netName := p.networkName()
	for _, a := range addresses(s) {
		if a.kind == kind && (netName == "" || a.network == netName) {
			return a.ip
		}
	}
	return ""
}

// networkName is the name of the configured network ("" if none or not
// resolved yet).
func (p *Provider) networkName() string {
	p.resMu.Lock()
	defer p.resMu.Unlock()
	return p.res.networkName
}

// machine describes a server. floating is the floating IP found in Neutron
// when Nova does not show it yet ("" otherwise).
func (p *Provider) machine(s *servers.Server, floating string) provider.Machine {
	st, reason := state(s)
	fixed := p.pickIP(s, "fixed")
	if floating == "" {
		floating = p.pickIP(s, "floating")
	}
	ip := fixed
	if p.cfg.FloatingIPPool != "" {
		ip = floating
	}
	m := provider.Machine{
		ID: s.ID, Cluster: s.Metadata[MetaCluster], NodeID: s.Metadata[MetaNode],
		State: st, Reason: reason,
		Meta: map[string]string{"server_name": s.Name, "status": s.Status},
	}
	if ip != "" {
		m.Address = net.JoinHostPort(ip, strconv.Itoa(p.cfg.Port))
	}
	if fixed != "" {
		m.Meta["fixed_ip"] = fixed
	}
	if floating != "" {
		m.Meta["floating_ip"] = floating
	}
	return m
}

// needsFloating reports whether a server should have a floating address that
// Nova does not show (yet): Neutron is asked then.
func (p *Provider) needsFloating(s *servers.Server) bool {
	return p.cfg.FloatingIPPool != "" && s.Status != "BUILD" && p.pickIP(s, "floating") == "" && p.pickIP(s, "fixed") != ""
}

// Get returns the machine of the server with the given ID.
func (p *Provider) Get(ctx context.Context, id string) (provider.Machine, error) {
	if _, err := p.resolveNetworks(ctx); err != nil {
		return provider.Machine{}, err
	}
	s, err := p.getOurs(ctx, id)
	if err != nil {
		return provider.Machine{}, err
	}
	floating := ""
	if p.needsFloating(s) {
		byFixed, err := p.floatingByFixed(ctx)
		if err != nil {
			return provider.Machine{}, err
		}
		floating = byFixed[p.pickIP(s, "fixed")]
	}
	return p.machine(s, floating), nil
}

// List returns every live server of this owner tagged for cluster, sorted by
// node ID. A node with two servers (see the package doc) is listed twice.
func (p *Provider) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	if _, err := p.resolveNetworks(ctx); err != nil {
		return nil, err
	}
	found, err := p.find(ctx, cluster, "")
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %w", cluster, err)
	}
	var byFixed map[string]string
	out := make([]provider.Machine, 0, len(found))
	for i := range found {
		s := &found[i]
		floating := ""
		if p.needsFloating(s) {
			if byFixed == nil {
				if byFixed, err = p.floatingByFixed(ctx); err != nil {
					return nil, fmt.Errorf("cluster %s: %w", cluster, err)
				}
			}
			floating = byFixed[p.pickIP(s, "fixed")]
		}
		out = append(out, p.machine(s, floating))
	}
	slices.SortStableFunc(out, func(a, b provider.Machine) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out, nil
}

// Create makes the server of spec.NodeID, or adopts the one that an earlier
// attempt made, and waits until it is ACTIVE with an address (and, if
// configured, its floating IP).
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	if spec.Cluster == "" || spec.NodeID == "" {
		return provider.Machine{}, fmt.Errorf("%w: creating a server needs a cluster and a node ID", provider.ErrConfig)
	}
	name := p.ServerName(spec.NodeID)
	if len(name) > maxMetaLen || len(spec.Cluster) > maxMetaLen {
		return provider.Machine{}, fmt.Errorf("%w: node %s: the server name %q is longer than %d characters", provider.ErrConfig, spec.NodeID, name, maxMetaLen)
	}
	defer p.lockNode(spec.NodeID)()
	res, err := p.resolve(ctx)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("node %s: %w", spec.NodeID, err)
	}
	opts, err := p.createOpts(spec, name, res)
	if err != nil {
		return provider.Machine{}, err
	}
	log := p.log.With("cluster", spec.Cluster, "node", spec.NodeID, "server_name", name)

	var srv *servers.Server
	for attempt := 1; srv == nil; attempt++ {
		found, err := p.find(ctx, spec.Cluster, spec.NodeID)
		if err != nil {
			return provider.Machine{}, fmt.Errorf("node %s: looking for its server before creating it: %w", spec.NodeID, err)
		}
		if len(found) > 0 {
			srv, err = p.adoptFound(ctx, log, found)
			if err != nil {
				return provider.Machine{}, fmt.Errorf("node %s: %w", spec.NodeID, err)
			}
			break
		}
		cc, err := p.sess.Compute(ctx)
		if err != nil {
			return provider.Machine{}, p.classify(ctx, "node "+spec.NodeID+": connecting to Nova", err)
		}
		created, err := servers.Create(ctx, cc, opts, nil).Extract()
		if err == nil {
			log.Info("server created", "server", created.ID)
			srv = created
			break
		}
		err = osapi.Clean(err)
		// The request may have reached Nova (a timeout, a lost answer, a
		// 5xx after the fact): list again before another create.
		if ctx.Err() != nil || !osapi.IsTransient(err) || attempt > p.retry.Retries {
			return provider.Machine{}, p.classifyCreate(ctx, fmt.Sprintf("node %s: creating server %s (attempt %d)", spec.NodeID, name, attempt), err)
		}
		delay := p.retry.Delay(attempt, err)
		log.Warn("creating the server failed; looking for it again before a retry", "err", err, "attempt", attempt, "retry_in", delay)
		if err := osapi.Sleep(ctx, delay); err != nil {
			return provider.Machine{}, fmt.Errorf("node %s: creating server %s: %w", spec.NodeID, name, err)
		}
	}

	srv, err = p.waitBuilt(ctx, log, srv.ID)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("node %s: %w", spec.NodeID, err)
	}
	floating := ""
	if res.poolID != "" && srv.Status == "ACTIVE" {
		floating, err = p.ensureFloatingIP(ctx, log, srv, spec)
		if err != nil {
			if !errors.Is(err, provider.ErrTransient) && ctx.Err() == nil {
				// It will not get better by retrying: leave nothing behind.
				p.discard(ctx, log, srv, "it cannot get its floating IP")
			}
			return provider.Machine{}, fmt.Errorf("node %s: %w", spec.NodeID, err)
		}
	}
	m := p.machine(srv, floating)
	if m.State == provider.MachineRunning && m.Address == "" {
		where := "any network"
		if res.networkName != "" {
			where = "network " + res.networkName
		}
		return provider.Machine{}, fmt.Errorf("%w: node %s: server %s is %s but has no address on %s yet", provider.ErrTransient,
			spec.NodeID, srv.ID, srv.Status, where)
	}
	return m, nil
}

// createOpts is the create request of a node's server.
func (p *Provider) createOpts(spec provider.NodeSpec, name string, res resolved) (servers.CreateOptsBuilder, error) {
	meta := maps.Clone(p.cfg.Metadata)
	if meta == nil {
		meta = map[string]string{}
	}
	meta[MetaOwner], meta[MetaCluster], meta[MetaNode] = p.owner, spec.Cluster, spec.NodeID
	opts := servers.CreateOpts{
		Name: name, FlavorRef: res.flavorID, ImageRef: res.imageID, Metadata: meta,
		SecurityGroups: p.cfg.SecurityGroups, AvailabilityZone: p.cfg.AvailabilityZone,
	}
	if res.networkID != "" {
		opts.Networks = []servers.Network{{UUID: res.networkID}}
	}
	if p.cfg.userData != nil {
		vars := make(map[string]string, len(spec.Vars)+5)
		maps.Copy(vars, spec.Vars)
		vars["Cluster"], vars["NodeID"], vars["Owner"] = spec.Cluster, spec.NodeID, p.owner
		vars["ServerName"], vars["Port"] = name, strconv.Itoa(p.cfg.Port)
		ud, err := p.cfg.userData.Render(vars)
		if err != nil {
			return nil, fmt.Errorf("%w: node %s: user_data: %w", provider.ErrConfig, spec.NodeID, err)
		}
		// Encoded here: gophercloud would send text that happens to be
		// valid base64 as is, and Nova would decode it.
		opts.UserData = []byte(base64.StdEncoding.EncodeToString([]byte(ud)))
	}
	var b servers.CreateOptsBuilder = opts
	if p.cfg.KeyName != "" {
		b = keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: p.cfg.KeyName}
	}
	return b, nil
}

// adoptFound picks the server to keep among those tagged for a node: the
// oldest that is not in ERROR. The others are deleted: duplicates from the
// window described in the package doc, and servers whose build failed. When
// every one failed, the error says why the last one did.
func (p *Provider) adoptFound(ctx context.Context, log *slog.Logger, found []servers.Server) (*servers.Server, error) {
	var keep *servers.Server
	for i := range found {
		if found[i].Status != "ERROR" {
			keep = &found[i]
			break
		}
	}
	for i := range found {
		s := &found[i]
		switch {
		case s == keep:
		case s.Status == "ERROR":
			p.discard(ctx, log, s, "its build failed: "+s.Fault.Message)
		default:
			p.discard(ctx, log, s, "it duplicates server "+keep.ID+" of the same node")
		}
	}
	if keep == nil {
		return nil, faultError(&found[len(found)-1])
	}
	log.Info("found the node's server made by an earlier attempt: adopting it", "server", keep.ID, "status", keep.Status)
	return keep, nil
}

// discard deletes a server that must not stay (best effort: a failure is
// logged; List still finds it for the controller's reconciliation).
func (p *Provider) discard(ctx context.Context, log *slog.Logger, s *servers.Server, why string) {
	log.Warn("deleting server: "+why, "server", s.ID)
	if err := p.Delete(ctx, s.ID); err != nil && !errors.Is(err, provider.ErrNotFound) {
		log.Error("could not delete the server; it is tagged, so the next reconciliation finds it", "server", s.ID, "err", err)
	}
}

// waitBuilt polls a server until it leaves BUILD (at most the build timeout).
// A server that ends in ERROR is deleted and its fault returned.
func (p *Provider) waitBuilt(ctx context.Context, log *slog.Logger, id string) (*servers.Server, error) {
	deadline := time.Now().Add(p.cfg.build)
	var lastErr error
	for {
		s, err := p.get(ctx, id)
		switch {
		case err == nil && s.Status == "ERROR":
			p.discard(ctx, log, s, "its build failed: "+s.Fault.Message)
			return nil, faultError(s)
		case err == nil && gone(s.Status):
			return nil, fmt.Errorf("%w: server %s was deleted while it was building", provider.ErrTransient, id)
		case err == nil && s.Status != "BUILD":
			return s, nil
		case errors.Is(err, provider.ErrNotFound):
			return nil, fmt.Errorf("%w: server %s disappeared while it was building", provider.ErrTransient, id)
		case err != nil && !errors.Is(err, provider.ErrTransient):
			return nil, err
		}
		if err != nil {
			lastErr = err
		}
		if !time.Now().Before(deadline) {
			msg := fmt.Sprintf("server %s is still building after %s (build_timeout); it is kept, and the next attempt waits for it again", id, p.cfg.build)
			if lastErr != nil {
				msg += fmt.Sprintf(" (last error: %v)", lastErr)
			}
			return nil, fmt.Errorf("%w: %s", provider.ErrTransient, msg)
		}
		if err := osapi.Sleep(ctx, p.cfg.poll); err != nil {
			return nil, fmt.Errorf("waiting for server %s to be built: %w", id, err)
		}
	}
}

// Delete releases the server's floating IPs, deletes it and waits until Nova
// no longer has it (or ctx is done).
func (p *Provider) Delete(ctx context.Context, id string) error {
	s, err := p.getOurs(ctx, id)
	if err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	// Whatever the configuration says now (a network renamed, a pool
	// removed), the server's floating IPs go with it.
	floating := slices.ContainsFunc(addresses(s), func(a address) bool { return a.kind == "floating" })
	if p.cfg.FloatingIPPool != "" || floating {
		if err := p.releaseFloatingIPs(ctx, s); err != nil {
			return fmt.Errorf("deleting server %s: %w", id, err)
		}
	}
	cc, err := p.sess.Compute(ctx)
	if err != nil {
		return p.classify(ctx, "connecting to Nova", err)
	}
	del := func() error {
		err := p.retry.Do(ctx, nil, func(ctx context.Context) error { return servers.Delete(ctx, cc, id).ExtractErr() })
		switch {
		case err != nil && osapi.IsNotFound(err):
			return fmt.Errorf("deleting server %s: it was deleted meanwhile: %w", id, provider.ErrNotFound)
		case err != nil && osapi.Status(err) == http.StatusConflict:
			return nil // a delete in progress; the wait below sees it through
		case err != nil:
			return p.classify(ctx, "deleting server "+id, err)
		}
		return nil
	}
	if err := del(); err != nil {
		return err
	}
	p.log.Info("server deleted; waiting until it is gone", "server", id, "server_name", s.Name,
		"cluster", s.Metadata[MetaCluster], "node", s.Metadata[MetaNode])
	const redeleteEvery = 30 * time.Second
	lastDelete := time.Now()
	for {
		s, err := p.get(ctx, id)
		switch {
		case errors.Is(err, provider.ErrNotFound), err == nil && gone(s.Status):
			return nil
		case err != nil && !errors.Is(err, provider.ErrTransient):
			return fmt.Errorf("waiting for server %s to be gone: %w", id, err)
		case err == nil && time.Since(lastDelete) >= redeleteEvery:
			// A delete that failed in Nova leaves the server (often in
			// ERROR): ask again.
			if err := del(); err != nil {
				if errors.Is(err, provider.ErrNotFound) {
					return nil
				}
				return err
			}
			lastDelete = time.Now()
		}
		if err := osapi.Sleep(ctx, p.cfg.poll); err != nil {
			return fmt.Errorf("waiting for server %s to be gone: %w", id, err)
		}
	}
}
