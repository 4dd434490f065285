package openstacktest

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"time"
)

// Flavor is a Nova flavor.
type Flavor struct {
	ID, Name         string
	VCPUs, RAM, Disk int
}

// Server is the fake's view of a Nova server (a copy).
type Server struct {
	ID, Name string
	// Status is BUILD, ACTIVE, ERROR, SHUTOFF, SOFT_DELETED, … as Nova says.
	Status           string
	Metadata         map[string]string
	FlavorID         string
	ImageID          string
	KeyName          string
	AvailabilityZone string
	SecurityGroups   []string
	// Networks are the network IDs the create request asked for.
	Networks []string
	// UserData is the decoded user data.
	UserData string
	// FixedIPs are the server's fixed addresses by network name; FloatingIPs
	// its floating addresses.
	FixedIPs    map[string]string
	FloatingIPs []string
	// Fault is the fault message of a server in ERROR.
	Fault   string
	Created time.Time
	// Deleting is true once a delete was accepted, until the server is gone.
	Deleting bool
}

type server struct {
	Server
	failWith string // fault of a build that fails
	deleteAt time.Time
	ports    []string
	updated  time.Time
	hostID   string
}

// AddFlavor adds a flavor with a new ID.
func (c *Cloud) AddFlavor(name string) Flavor {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := &Flavor{ID: newID(), Name: name, VCPUs: 1, RAM: 512, Disk: 1}
	c.flavors[f.ID] = f
	return *f
}

// AddKeyPair adds a key pair name.
func (c *Cloud) AddKeyPair(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keypairs[name] = true
}

// AddSecurityGroup adds a security group name ("default" exists).
func (c *Cloud) AddSecurityGroup(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.secgroup[name] = true
}

// SetQuota limits the number of servers of the project (0: no limit);
// creating one more is refused with 403 "Quota exceeded for instances".
func (c *Cloud) SetQuota(instances int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quota = instances
}

// SetBuildTime is how long a new server stays in BUILD (default 0: ACTIVE at
// the first request after its creation). A server gets its addresses when it
// becomes ACTIVE.
func (c *Cloud) SetBuildTime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.build = d
}

// SetDeleteTime is how long a deleted server is still listed, with task
// state "deleting" (default 0: gone at once).
func (c *Cloud) SetDeleteTime(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delDelay = d
}

// FailNextBuilds makes the next n servers created end their build in ERROR
// with the fault message (such as "No valid host was found. There are not
// enough hosts available.").
func (c *Cloud) FailNextBuilds(n int, fault string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for range n {
		c.faults = append(c.faults, fault)
	}
}

// SetPageSize is the largest page of servers Nova answers; more are behind
// a "next" link (default 1000, Nova's max_limit).
func (c *Cloud) SetPageSize(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pageSize = n
}

// SetServerStatus changes a server's status (and fault message), as an
// operator or a failing hypervisor would. It reports whether the server exists.
func (c *Cloud) SetServerStatus(id, status, fault string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.servers[id]
	if ok {
		s.Status, s.Fault, s.updated = status, fault, time.Now()
	}
	return ok
}

// RemoveServer deletes a server behind goscaler's back (and its ports). It
// reports whether the server existed.
func (c *Cloud) RemoveServer(id string) bool {
	c.mu.Lock()
	s, ok := c.servers[id]
	var hooks []func(Server)
	var view Server
	if ok {
		view = c.serverCopy(s)
		c.removeServer(s)
		hooks = slices.Clone(c.onDeleted)
	}
	c.mu.Unlock()
	for _, h := range hooks {
		h(view)
	}
	return ok
}

// AddServer makes a server as another client of the project would (another
// tool, another goscaler, a goscaler that crashed): in BUILD, with the given
// name, metadata and network IDs, and the first flavor and image. It returns
// the server's ID.
func (c *Cloud) AddServer(name string, metadata map[string]string, networkIDs ...string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	s := &server{Server: Server{ID: newID(), Name: name, Status: "BUILD", Metadata: maps.Clone(metadata),
		Networks: slices.Clone(networkIDs), SecurityGroups: []string{"default"}, Created: now}, updated: now}
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	for _, id := range slices.Sorted(maps.Keys(c.flavors)) {
		s.FlavorID = id
		break
	}
	for _, id := range slices.Sorted(maps.Keys(c.images)) {
		s.ImageID = id
		break
	}
	c.servers[s.ID] = s
	return s.ID
}

// HideFloatingIPs stops Nova from showing floating IPs in the addresses of
// servers (as when its network info cache lags behind Neutron).
func (c *Cloud) HideFloatingIPs(hide bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hideFloating = hide
}

// OnServerActive registers f, called when a server becomes ACTIVE (it has
// its addresses then), before any request sees it ACTIVE.
func (c *Cloud) OnServerActive(f func(Server)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onActive = append(c.onActive, f)
}

// OnServerDeleted registers f, called when a server is gone.
func (c *Cloud) OnServerDeleted(f func(Server)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.onDeleted = append(c.onDeleted, f)
}

// Servers returns the servers that exist (deleting ones included), oldest first.
func (c *Cloud) Servers() []Server {
	c.advance()
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Server, 0, len(c.servers))
	for _, s := range c.servers {
		out = append(out, c.serverCopy(s))
	}
	slices.SortFunc(out, func(a, b Server) int {
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Server returns one server.
func (c *Cloud) Server(id string) (Server, bool) {
	c.advance()
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.servers[id]
	if !ok {
		return Server{}, false
	}
	return c.serverCopy(s), true
}

func (c *Cloud) serverCopy(s *server) Server {
	v := s.Server
	v.Metadata = maps.Clone(s.Metadata)
	v.SecurityGroups = slices.Clone(s.SecurityGroups)
	v.Networks = slices.Clone(s.Networks)
	v.FixedIPs = map[string]string{}
	v.FloatingIPs = nil
	for _, pid := range s.ports {
		p := c.ports[pid]
		if p == nil {
			continue
		}
		if n := c.networks[p.NetworkID]; n != nil {
			v.FixedIPs[n.Name] = p.IP
		}
		for _, f := range c.fips {
			if f.PortID == pid {
				v.FloatingIPs = append(v.FloatingIPs, f.Address)
			}
		}
	}
	slices.Sort(v.FloatingIPs)
	return v
}

// advance moves servers and load balancers on in time and runs the hooks of
// what changed.
func (c *Cloud) advance() {
	now := time.Now()
	var calls []func()
	c.mu.Lock()
	for _, s := range c.servers {
		switch {
		case s.Deleting && !now.Before(s.deleteAt):
			view := c.serverCopy(s)
			c.removeServer(s)
			for _, h := range c.onDeleted {
				calls = append(calls, func() { h(view) })
			}
		case s.Status == "BUILD" && !s.Deleting && !now.Before(s.Created.Add(c.build)):
			s.updated = now
			if s.failWith != "" {
				s.Status, s.Fault = "ERROR", s.failWith
				continue
			}
			if err := c.plugServer(s); err != "" {
				s.Status, s.Fault = "ERROR", err
				continue
			}
			s.Status, s.hostID = "ACTIVE", newHex(28)
			view := c.serverCopy(s)
			for _, h := range c.onActive {
				calls = append(calls, func() { h(view) })
			}
		}
	}
	c.advanceLBs(now)
	c.mu.Unlock()
	for _, f := range calls {
		f()
	}
}

// plugServer gives the server a port with a fixed IP on each of its networks.
func (c *Cloud) plugServer(s *server) string {
	for _, nid := range s.Networks {
		p, err := c.newPort(nid, s.ID)
		if err != "" {
			return "Build of instance " + s.ID + " aborted: " + err
		}
		s.ports = append(s.ports, p.ID)
	}
	return ""
}

func (c *Cloud) removeServer(s *server) {
	for _, pid := range s.ports {
		c.deletePort(pid)
	}
	delete(c.servers, s.ID)
}

// ---------------------------------------------------------------------------
// Nova API

func (c *Cloud) routeCompute(mux *http.ServeMux) {
	versions := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"versions": []any{
			map[string]any{"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
				"links": []any{map[string]any{"rel": "self", "href": c.srv.URL + "/compute/v2/"}}},
			c.computeVersion(),
		}})
	}
	mux.HandleFunc("GET /compute", versions)
	mux.HandleFunc("GET /compute/{$}", versions)
	mux.HandleFunc("GET /compute/v2.1", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"version": c.computeVersion()})
	})
	mux.HandleFunc("GET /compute/v2.1/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"version": c.computeVersion()})
	})
	mux.HandleFunc("POST /compute/v2.1/servers", c.createServer)
	mux.HandleFunc("GET /compute/v2.1/servers", func(w http.ResponseWriter, r *http.Request) { c.listServers(w, r, false) })
	mux.HandleFunc("GET /compute/v2.1/servers/detail", func(w http.ResponseWriter, r *http.Request) { c.listServers(w, r, true) })
	mux.HandleFunc("GET /compute/v2.1/servers/{id}", c.getServer)
	mux.HandleFunc("DELETE /compute/v2.1/servers/{id}", c.deleteServer)
	mux.HandleFunc("GET /compute/v2.1/flavors/detail", c.listFlavors)
	mux.HandleFunc("GET /compute/v2.1/flavors", c.listFlavors)
	mux.HandleFunc("GET /compute/v2.1/flavors/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		f, ok := c.flavors[r.PathValue("id")]
		c.mu.Unlock()
		if !ok {
			writeError(w, Compute, http.StatusNotFound, "Flavor "+r.PathValue("id")+" could not be found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"flavor": c.flavorView(f)})
	})
}

func (c *Cloud) computeVersion() map[string]any {
	return map[string]any{"id": "v2.1", "status": "CURRENT", "version": "2.96", "min_version": "2.1",
		"updated": "2013-07-23T11:33:21Z", "links": []any{map[string]any{"rel": "self", "href": c.srv.URL + "/compute/v2.1/"}}}
}

func (c *Cloud) flavorView(f *Flavor) map[string]any {
	return map[string]any{"id": f.ID, "name": f.Name, "vcpus": f.VCPUs, "ram": f.RAM, "disk": f.Disk,
		"OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0, "os-flavor-access:is_public": true,
		"OS-FLV-DISABLED:disabled": false,
		"links":                    []any{map[string]any{"rel": "self", "href": c.srv.URL + "/compute/v2.1/flavors/" + f.ID}}}
}

func (c *Cloud) listFlavors(w http.ResponseWriter, _ *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := []any{}
	for _, id := range slices.Sorted(maps.Keys(c.flavors)) {
		out = append(out, c.flavorView(c.flavors[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"flavors": out})
}

type createServerRequest struct {
	Server *struct {
		Name             string            `json:"name"`
		ImageRef         string            `json:"imageRef"`
		FlavorRef        string            `json:"flavorRef"`
		KeyName          string            `json:"key_name"`
		UserData         string            `json:"user_data"`
		AvailabilityZone string            `json:"availability_zone"`
		Metadata         map[string]string `json:"metadata"`
		SecurityGroups   []struct {
			Name string `json:"name"`
		} `json:"security_groups"`
		Networks any `json:"networks"`
	} `json:"server"`
}

func (c *Cloud) createServer(w http.ResponseWriter, r *http.Request) {
	var req createServerRequest
	if !readJSON(w, r, Compute, &req) {
		return
	}
	in := req.Server
	bad := func(msg string) { writeError(w, Compute, http.StatusBadRequest, msg) }
	if in == nil {
		bad("Invalid input for field/attribute server. Value: None. 'server' is a required property")
		return
	}
	if in.Name == "" {
		bad("Invalid input for field/attribute name. Value: ''. '' is too short")
		return
	}
	for k, v := range in.Metadata {
		if len(k) == 0 || len(k) > 255 || len(v) > 255 {
			bad("Invalid input for field/attribute metadata. Value: " + k + ". metadata keys and values are 1 to 255 characters")
			return
		}
	}
	var userData string
	if in.UserData != "" {
		b, err := base64.StdEncoding.DecodeString(in.UserData)
		if err != nil {
			bad("User data needs to be valid base 64.")
			return
		}
		userData = string(b)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.flavors[in.FlavorRef]; !ok {
		bad("Flavor " + in.FlavorRef + " could not be found.")
		return
	}
	if _, ok := c.images[in.ImageRef]; !ok {
		bad("Image " + in.ImageRef + " could not be found.")
		return
	}
	if in.KeyName != "" && !c.keypairs[in.KeyName] {
		bad("Invalid key_name provided.")
		return
	}
	var groups []string
	for _, g := range in.SecurityGroups {
		if !c.secgroup[g.Name] {
			bad("Security group " + g.Name + " not found for project " + c.ProjectID + ".")
			return
		}
		groups = append(groups, g.Name)
	}
	if len(groups) == 0 {
		groups = []string{"default"}
	}
	var nets []string
	switch v := in.Networks.(type) {
	case nil:
		var tenant []string
		for id, n := range c.networks {
			if !n.External {
				tenant = append(tenant, id)
			}
		}
		if len(tenant) > 1 {
			writeError(w, Compute, http.StatusConflict, "Multiple possible networks found, use a Network ID to be more specific.")
			return
		}
		nets = tenant
	case string:
		if v != "auto" && v != "none" {
			bad("Invalid input for field/attribute networks.")
			return
		}
	case []any:
		for _, item := range v {
			m, _ := item.(map[string]any)
			id, _ := m["uuid"].(string)
			if _, ok := c.networks[id]; !ok {
				bad("Network " + id + " could not be found.")
				return
			}
			nets = append(nets, id)
		}
	}
	if c.quota > 0 && len(c.servers) >= c.quota {
		writeError(w, Compute, http.StatusForbidden, fmt.Sprintf(
			"Quota exceeded for instances: Requested 1, but already used %d of %d instances", len(c.servers), c.quota))
		return
	}
	now := time.Now()
	s := &server{Server: Server{ID: newID(), Name: in.Name, Status: "BUILD", Metadata: in.Metadata,
		FlavorID: in.FlavorRef, ImageID: in.ImageRef, KeyName: in.KeyName, AvailabilityZone: in.AvailabilityZone,
		SecurityGroups: groups, Networks: nets, UserData: userData, Created: now}, updated: now}
	if s.Metadata == nil {
		s.Metadata = map[string]string{}
	}
	if len(c.faults) > 0 {
		s.failWith, c.faults = c.faults[0], c.faults[1:]
	}
	c.servers[s.ID] = s
	sgs := []any{}
	for _, g := range groups {
		sgs = append(sgs, map[string]any{"name": g})
	}
	w.Header().Set("Location", c.srv.URL+"/compute/v2.1/servers/"+s.ID)
	writeJSON(w, http.StatusAccepted, map[string]any{"server": map[string]any{
		"id": s.ID, "links": c.serverLinks(s.ID), "OS-DCF:diskConfig": "MANUAL",
		"security_groups": sgs, "adminPass": newHex(6),
	}})
}

func (c *Cloud) serverLinks(id string) []any {
	return []any{
		map[string]any{"rel": "self", "href": c.srv.URL + "/compute/v2.1/servers/" + id},
		map[string]any{"rel": "bookmark", "href": c.srv.URL + "/compute/servers/" + id},
	}
}

// serverView is the detailed JSON of a server, as GET /servers/{id} answers.
func (c *Cloud) serverView(s *server) map[string]any {
	addresses := map[string]any{}
	for _, pid := range s.ports {
		p := c.ports[pid]
		if p == nil {
			continue
		}
		n := c.networks[p.NetworkID]
		list := []any{map[string]any{"version": 4, "addr": p.IP, "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": p.MAC}}
		for _, fid := range slices.Sorted(maps.Keys(c.fips)) {
			if f := c.fips[fid]; f.PortID == pid && !c.hideFloating {
				list = append(list, map[string]any{"version": 4, "addr": f.Address, "OS-EXT-IPS:type": "floating",
					"OS-EXT-IPS-MAC:mac_addr": p.MAC})
			}
		}
		addresses[n.Name] = list
	}
	sgs := []any{}
	for _, g := range s.SecurityGroups {
		sgs = append(sgs, map[string]any{"name": g})
	}
	var taskState any
	vmState := map[string]string{"BUILD": "building", "ACTIVE": "active", "ERROR": "error", "SHUTOFF": "stopped",
		"SOFT_DELETED": "soft-delete", "DELETED": "deleted"}[s.Status]
	switch {
	case s.Deleting:
		taskState = "deleting"
	case s.Status == "BUILD":
		taskState = "spawning"
	}
	var keyName any
	if s.KeyName != "" {
		keyName = s.KeyName
	}
	v := map[string]any{
		"id": s.ID, "name": s.Name, "status": s.Status, "tenant_id": c.ProjectID, "user_id": c.UserID,
		"metadata": s.Metadata, "hostId": s.hostID, "created": timestamp(s.Created), "updated": timestamp(s.updated),
		"image":     map[string]any{"id": s.ImageID, "links": []any{}},
		"flavor":    map[string]any{"id": s.FlavorID, "links": []any{}},
		"addresses": addresses, "accessIPv4": "", "accessIPv6": "", "links": c.serverLinks(s.ID),
		"OS-DCF:diskConfig": "MANUAL", "progress": 0, "OS-EXT-AZ:availability_zone": s.AvailabilityZone,
		"OS-EXT-STS:task_state": taskState, "OS-EXT-STS:vm_state": vmState, "OS-EXT-STS:power_state": 1,
		"key_name": keyName, "config_drive": "", "security_groups": sgs,
		"os-extended-volumes:volumes_attached": []any{},
		"OS-SRV-USG:launched_at":               nil, "OS-SRV-USG:terminated_at": nil,
	}
	if s.Status == "ERROR" {
		v["fault"] = map[string]any{"code": 500, "created": timestamp(s.updated), "message": s.Fault}
	}
	return v
}

func (c *Cloud) getServer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.servers[r.PathValue("id")]
	if !ok {
		writeError(w, Compute, http.StatusNotFound, "Instance "+r.PathValue("id")+" could not be found.")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"server": c.serverView(s)})
}

// listServers is GET /servers[/detail] with Nova's filters (name is a
// regular expression; status, image, flavor match exactly), sorted by
// creation time, newest first, with limit and marker paging.
func (c *Cloud) listServers(w http.ResponseWriter, r *http.Request, detail bool) {
	q := r.URL.Query()
	var nameRE *regexp.Regexp
	if n := q.Get("name"); n != "" {
		re, err := regexp.Compile(n)
		if err != nil {
			writeError(w, Compute, http.StatusBadRequest, "Invalid filter name: "+err.Error())
			return
		}
		nameRE = re
	}
	limit := -1
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 0 {
			writeError(w, Compute, http.StatusBadRequest, "limit param must be an integer")
			return
		}
		limit = n
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	limit = min(limit, c.pageSize)
	if limit < 0 {
		limit = c.pageSize
	}
	all := slices.Collect(maps.Values(c.servers))
	slices.SortFunc(all, func(a, b *server) int {
		return cmp.Or(b.Created.Compare(a.Created), cmp.Compare(a.ID, b.ID))
	})
	var match []*server
	for _, s := range all {
		if (nameRE != nil && !nameRE.MatchString(s.Name)) || (q.Get("status") != "" && q.Get("status") != s.Status) ||
			(q.Get("image") != "" && q.Get("image") != s.ImageID) || (q.Get("flavor") != "" && q.Get("flavor") != s.FlavorID) {
			continue
		}
		match = append(match, s)
	}
	if m := q.Get("marker"); m != "" {
		i := slices.IndexFunc(match, func(s *server) bool { return s.ID == m })
		if i < 0 {
			writeError(w, Compute, http.StatusBadRequest, "marker ["+m+"] not found")
			return
		}
		match = match[i+1:]
	}
	page := match
	more := false
	if len(page) > limit {
		page, more = page[:limit], true
	}
	out := []any{}
	for _, s := range page {
		if detail {
			out = append(out, c.serverView(s))
		} else {
			out = append(out, map[string]any{"id": s.ID, "name": s.Name, "links": c.serverLinks(s.ID)})
		}
	}
	body := map[string]any{"servers": out}
	if more {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("limit", strconv.Itoa(limit))
		next.Set("marker", page[len(page)-1].ID)
		body["servers_links"] = []any{map[string]any{"rel": "next", "href": c.srv.URL + r.URL.Path + "?" + next.Encode()}}
	}
	writeJSON(w, http.StatusOK, body)
}

func (c *Cloud) deleteServer(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	s, ok := c.servers[r.PathValue("id")]
	if !ok {
		c.mu.Unlock()
		writeError(w, Compute, http.StatusNotFound, "Instance "+r.PathValue("id")+" could not be found.")
		return
	}
	var hooks []func(Server)
	var view Server
	if c.delDelay > 0 {
		if !s.Deleting {
			s.Deleting, s.deleteAt = true, time.Now().Add(c.delDelay)
		}
	} else {
		view = c.serverCopy(s)
		c.removeServer(s)
		hooks = slices.Clone(c.onDeleted)
	}
	c.mu.Unlock()
	for _, h := range hooks {
		h(view)
	}
	w.WriteHeader(http.StatusNoContent)
}
