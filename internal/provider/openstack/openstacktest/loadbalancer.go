package openstacktest

import (
	"cmp"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// PoolInfo is an Octavia pool of a load balancer.
type PoolInfo struct {
	ID, Name, LoadBalancerID string
}

// Member is an Octavia pool member.
type Member struct {
	ID, PoolID, Name, Address, SubnetID string
	ProtocolPort, Weight                int
	// Status is the member's provisioning status: PENDING_CREATE, ACTIVE,
	// PENDING_UPDATE, PENDING_DELETE.
	Status string
	Tags   []string
}

type member struct {
	Member
	created, updated time.Time
}

type lbState struct {
	id, name string
	status   string // provisioning status
	until    time.Time
}

// AddLoadBalancer adds an ACTIVE load balancer with one pool (its listener is
// implied) and returns the pool.
func (c *Cloud) AddLoadBalancer(name, poolName string) PoolInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	lb := &lbState{id: newID(), name: name, status: "ACTIVE"}
	c.lbs[lb.id] = lb
	p := &PoolInfo{ID: newID(), Name: poolName, LoadBalancerID: lb.id}
	c.pools[p.ID] = p
	return *p
}

// AddMember adds an ACTIVE member to a pool, as another client would, and
// returns its ID.
func (c *Cloud) AddMember(poolID, name, address string, port int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	m := &member{Member: Member{ID: newID(), PoolID: poolID, Name: name, Address: address, ProtocolPort: port,
		Weight: 1, Status: "ACTIVE"}, created: now, updated: now}
	c.members[m.ID] = m
	return m.ID
}

// SetPendingTime is how long a load balancer stays PENDING_UPDATE after each
// change of its members (default 0: ACTIVE at the next request). Changes
// asked meanwhile are refused with 409, as Octavia does.
func (c *Cloud) SetPendingTime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = d
}

// SetLoadBalancerStatus sets a load balancer's provisioning status (ERROR,
// PENDING_UPDATE, …) until the next change.
func (c *Cloud) SetLoadBalancerStatus(id, status string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if lb := c.lbs[id]; lb != nil {
		lb.status, lb.until = status, time.Time{}
	}
}

// Members returns the members of a pool (pending deletions included),
// oldest first.
func (c *Cloud) Members(poolID string) []Member {
	c.advance()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []Member
	for _, m := range c.poolMembers(poolID) {
		v := m.Member
		v.Tags = slices.Clone(m.Tags)
		out = append(out, v)
	}
	return out
}

func (c *Cloud) poolMembers(poolID string) []*member {
	var out []*member
	for _, m := range c.members {
		if m.PoolID == poolID {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *member) int { return cmp.Or(a.created.Compare(b.created), cmp.Compare(a.ID, b.ID)) })
	return out
}

// advanceLBs ends the PENDING_UPDATE of load balancers whose time is up, and
// the pending states of their members. c.mu is held.
func (c *Cloud) advanceLBs(now time.Time) {
	for _, lb := range c.lbs {
		if lb.status != "PENDING_UPDATE" || lb.until.IsZero() || now.Before(lb.until) {
			continue
		}
		lb.status = "ACTIVE"
		for id, m := range c.members {
			if c.pools[m.PoolID].LoadBalancerID != lb.id {
				continue
			}
			switch m.Status {
			case "PENDING_DELETE":
				delete(c.members, id)
			case "PENDING_CREATE", "PENDING_UPDATE":
				m.Status = "ACTIVE"
			}
		}
	}
}

// mutate checks that the pool's load balancer accepts a change and puts it
// in PENDING_UPDATE; false (after answering) if it does not.
func (c *Cloud) mutate(w http.ResponseWriter, pool *PoolInfo) bool {
	lb := c.lbs[pool.LoadBalancerID]
	if lb.status != "ACTIVE" {
		writeError(w, LoadBalancer, http.StatusConflict, "Load Balancer "+lb.id+" is immutable and cannot be updated.")
		return false
	}
	// A zero pending time still passes through PENDING_UPDATE until the
	// next request, as a real amphora takes a moment.
	lb.status, lb.until = "PENDING_UPDATE", time.Now().Add(max(c.pending, time.Nanosecond))
	return true
}

func (c *Cloud) routeLoadBalancer(mux *http.ServeMux) {
	versions := func(w http.ResponseWriter, _ *http.Request) {
		var vs []any
		for _, v := range []string{"v2.0", "v2.1", "v2.27"} {
			status := "SUPPORTED"
			if v == "v2.27" {
				status = "CURRENT"
			}
			vs = append(vs, map[string]any{"id": v, "status": status, "updated": "2023-01-01T00:00:00Z",
				"links": []any{map[string]any{"rel": "self", "href": c.srv.URL + "/load-balancer/v2"}}})
		}
		writeJSON(w, http.StatusOK, map[string]any{"versions": vs})
	}
	mux.HandleFunc("GET /load-balancer", versions)
	mux.HandleFunc("GET /load-balancer/{$}", versions)
	const base = "/load-balancer/v2.0/lbaas"
	mux.HandleFunc("GET "+base+"/loadbalancers/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		lb, ok := c.lbs[r.PathValue("id")]
		if !ok {
			writeError(w, LoadBalancer, http.StatusNotFound, "Load Balancer "+r.PathValue("id")+" not found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"loadbalancer": c.lbView(lb)})
	})
	mux.HandleFunc("GET "+base+"/loadbalancers", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var items []map[string]any
		for _, id := range slices.Sorted(maps.Keys(c.lbs)) {
			items = append(items, c.lbView(c.lbs[id]))
		}
		writeJSON(w, http.StatusOK, map[string]any{"loadbalancers": filtered(r, items), "loadbalancers_links": []any{}})
	})
	mux.HandleFunc("GET "+base+"/pools", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		var items []map[string]any
		for _, id := range slices.Sorted(maps.Keys(c.pools)) {
			items = append(items, c.poolView(c.pools[id]))
		}
		writeJSON(w, http.StatusOK, map[string]any{"pools": filtered(r, items), "pools_links": []any{}})
	})
	mux.HandleFunc("GET "+base+"/pools/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		p, ok := c.pools[r.PathValue("id")]
		if !ok {
			writeError(w, LoadBalancer, http.StatusNotFound, "Pool "+r.PathValue("id")+" not found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"pool": c.poolView(p)})
	})
	mux.HandleFunc("GET "+base+"/pools/{id}/members", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		p, ok := c.pools[r.PathValue("id")]
		if !ok {
			writeError(w, LoadBalancer, http.StatusNotFound, "Pool "+r.PathValue("id")+" not found.")
			return
		}
		var items []map[string]any
		for _, m := range c.poolMembers(p.ID) {
			items = append(items, c.memberView(m))
		}
		writeJSON(w, http.StatusOK, map[string]any{"members": filtered(r, items), "members_links": []any{}})
	})
	mux.HandleFunc("GET "+base+"/pools/{id}/members/{mid}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		m, ok := c.members[r.PathValue("mid")]
		if !ok || m.PoolID != r.PathValue("id") {
			writeError(w, LoadBalancer, http.StatusNotFound, "Member "+r.PathValue("mid")+" not found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"member": c.memberView(m)})
	})
	mux.HandleFunc("POST "+base+"/pools/{id}/members", c.createMember)
	mux.HandleFunc("PUT "+base+"/pools/{id}/members/{mid}", c.updateMember)
	mux.HandleFunc("DELETE "+base+"/pools/{id}/members/{mid}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		p, ok := c.pools[r.PathValue("id")]
		m, mok := c.members[r.PathValue("mid")]
		if !ok || !mok || m.PoolID != p.ID || m.Status == "PENDING_DELETE" {
			writeError(w, LoadBalancer, http.StatusNotFound, "Member "+r.PathValue("mid")+" not found.")
			return
		}
		if !c.mutate(w, p) {
			return
		}
		m.Status, m.updated = "PENDING_DELETE", time.Now()
		w.WriteHeader(http.StatusNoContent)
	})
}

func octaviaTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05") }

func (c *Cloud) lbView(lb *lbState) map[string]any {
	var pools []any
	for _, id := range slices.Sorted(maps.Keys(c.pools)) {
		if c.pools[id].LoadBalancerID == lb.id {
			pools = append(pools, map[string]any{"id": id})
		}
	}
	return map[string]any{"id": lb.id, "name": lb.name, "provisioning_status": lb.status, "operating_status": "ONLINE",
		"admin_state_up": true, "vip_address": "203.0.113.10", "pools": pools, "listeners": []any{},
		"project_id": c.ProjectID, "provider": "amphora", "description": "", "tags": []string{}}
}

func (c *Cloud) poolView(p *PoolInfo) map[string]any {
	var members []any
	for _, m := range c.poolMembers(p.ID) {
		members = append(members, map[string]any{"id": m.ID})
	}
	return map[string]any{"id": p.ID, "name": p.Name, "protocol": "HTTP", "lb_algorithm": "ROUND_ROBIN",
		"loadbalancers": []any{map[string]any{"id": p.LoadBalancerID}}, "listeners": []any{},
		"members": members, "provisioning_status": c.lbs[p.LoadBalancerID].status, "operating_status": "ONLINE",
		"admin_state_up": true, "project_id": c.ProjectID, "description": "", "tags": []string{}}
}

func (c *Cloud) memberView(m *member) map[string]any {
	tags := m.Tags
	if tags == nil {
		tags = []string{}
	}
	return map[string]any{"id": m.ID, "name": m.Name, "address": m.Address, "protocol_port": m.ProtocolPort,
		"weight": m.Weight, "subnet_id": m.SubnetID, "admin_state_up": true, "backup": false,
		"provisioning_status": m.Status, "operating_status": "NO_MONITOR", "monitor_address": nil,
		"monitor_port": nil, "project_id": c.ProjectID, "tags": tags,
		"created_at": octaviaTime(m.created), "updated_at": octaviaTime(m.updated)}
}

type memberRequest struct {
	Member struct {
		Name         *string  `json:"name"`
		Address      string   `json:"address"`
		ProtocolPort int      `json:"protocol_port"`
		Weight       *int     `json:"weight"`
		SubnetID     string   `json:"subnet_id"`
		Tags         []string `json:"tags"`
	} `json:"member"`
}

func (c *Cloud) createMember(w http.ResponseWriter, r *http.Request) {
	var req memberRequest
	if !readJSON(w, r, LoadBalancer, &req) {
		return
	}
	in := req.Member
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pools[r.PathValue("id")]
	if !ok {
		writeError(w, LoadBalancer, http.StatusNotFound, "Pool "+r.PathValue("id")+" not found.")
		return
	}
	if in.Address == "" || in.ProtocolPort < 1 || in.ProtocolPort > 65535 {
		writeError(w, LoadBalancer, http.StatusBadRequest, "Invalid input for field/attribute address or protocol_port.")
		return
	}
	if in.SubnetID != "" {
		if _, ok := c.subnets[in.SubnetID]; !ok {
			writeError(w, LoadBalancer, http.StatusBadRequest, "Validation failure: Subnet "+in.SubnetID+" not found.")
			return
		}
	}
	for _, m := range c.poolMembers(p.ID) {
		if m.Address == in.Address && m.ProtocolPort == in.ProtocolPort {
			writeError(w, LoadBalancer, http.StatusConflict, "Another member on this pool is already using ip "+
				in.Address+" on protocol_port "+strconv.Itoa(in.ProtocolPort))
			return
		}
	}
	if !c.mutate(w, p) {
		return
	}
	now := time.Now()
	m := &member{Member: Member{ID: newID(), PoolID: p.ID, Address: in.Address, ProtocolPort: in.ProtocolPort,
		SubnetID: in.SubnetID, Weight: 1, Status: "PENDING_CREATE", Tags: in.Tags}, created: now, updated: now}
	if in.Name != nil {
		m.Name = *in.Name
	}
	if in.Weight != nil {
		m.Weight = *in.Weight
	}
	c.members[m.ID] = m
	writeJSON(w, http.StatusCreated, map[string]any{"member": c.memberView(m)})
}

func (c *Cloud) updateMember(w http.ResponseWriter, r *http.Request) {
	var req memberRequest
	if !readJSON(w, r, LoadBalancer, &req) {
		return
	}
	in := req.Member
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.pools[r.PathValue("id")]
	m, mok := c.members[r.PathValue("mid")]
	if !ok || !mok || m.PoolID != p.ID || m.Status == "PENDING_DELETE" {
		writeError(w, LoadBalancer, http.StatusNotFound, "Member "+r.PathValue("mid")+" not found.")
		return
	}
	if in.Weight != nil && (*in.Weight < 0 || *in.Weight > 256) {
		writeError(w, LoadBalancer, http.StatusBadRequest, "Invalid input for field/attribute weight.")
		return
	}
	if !c.mutate(w, p) {
		return
	}
	if in.Weight != nil {
		m.Weight = *in.Weight
	}
	if in.Name != nil {
		m.Name = *in.Name
	}
	if in.Tags != nil {
		m.Tags = in.Tags
	}
	m.Status, m.updated = "PENDING_UPDATE", time.Now()
	writeJSON(w, http.StatusOK, map[string]any{"member": c.memberView(m)})
}
