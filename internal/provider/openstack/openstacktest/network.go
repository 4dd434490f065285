package openstacktest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// NetworkInfo is a Neutron network with its one subnet.
type NetworkInfo struct {
	ID, Name string
	// External networks hold floating IPs (router:external).
	External bool
	SubnetID string
}

// SubnetInfo is a Neutron subnet.
type SubnetInfo struct {
	ID, Name, NetworkID string
	CIDR                netip.Prefix
	next                netip.Addr
}

type port struct {
	ID, NetworkID, SubnetID, DeviceID, MAC string
	IP                                     string
}

// FloatingIP is a Neutron floating IP.
type FloatingIP struct {
	ID, Address, NetworkID, PortID, FixedIP, Description string
}

// AddNetwork adds a tenant network and its subnet "<name>-subnet" with the
// given CIDR ("10.0.0.0/24"). Ports get addresses from the tenth on.
func (c *Cloud) AddNetwork(name, cidr string) NetworkInfo {
	return c.addNetwork(name, cidr, false)
}

// AddExternalNetwork adds an external network (a floating IP pool) and its
// subnet.
func (c *Cloud) AddExternalNetwork(name, cidr string) NetworkInfo {
	return c.addNetwork(name, cidr, true)
}

func (c *Cloud) addNetwork(name, cidr string, external bool) NetworkInfo {
	pfx := netip.MustParsePrefix(cidr).Masked()
	first := pfx.Addr()
	for range 10 {
		first = first.Next()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := &NetworkInfo{ID: newID(), Name: name, External: external}
	sub := &SubnetInfo{ID: newID(), Name: name + "-subnet", NetworkID: n.ID, CIDR: pfx, next: first}
	n.SubnetID = sub.ID
	c.networks[n.ID] = n
	c.subnets[sub.ID] = sub
	return *n
}

// Subnet returns the subnet of a network.
func (c *Cloud) Subnet(networkID string) SubnetInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.networks[networkID]
	if n == nil {
		return SubnetInfo{}
	}
	return *c.subnets[n.SubnetID]
}

// SetFloatingIPQuota limits the project's floating IPs (0: no limit).
func (c *Cloud) SetFloatingIPQuota(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fipQuota = n
}

// FloatingIPs returns the floating IPs allocated, by address.
func (c *Cloud) FloatingIPs() []FloatingIP {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]FloatingIP, 0, len(c.fips))
	for _, f := range c.fips {
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b FloatingIP) int { return cmp.Compare(a.Address, b.Address) })
	return out
}

// allocate returns the next free address of a subnet.
func (c *Cloud) allocate(sub *SubnetInfo) (string, bool) {
	for a := sub.next; sub.CIDR.Contains(a); a = a.Next() {
		if !a.Next().IsValid() || !sub.CIDR.Contains(a.Next()) {
			break // the broadcast address
		}
		if !c.addressUsed(a.String()) {
			sub.next = a.Next()
			return a.String(), true
		}
	}
	return "", false
}

func (c *Cloud) addressUsed(ip string) bool {
	for _, p := range c.ports {
		if p.IP == ip {
			return true
		}
	}
	for _, f := range c.fips {
		if f.Address == ip {
			return true
		}
	}
	return false
}

func (c *Cloud) newPort(networkID, device string) (*port, string) {
	n := c.networks[networkID]
	if n == nil {
		return nil, "Network " + networkID + " could not be found."
	}
	sub := c.subnets[n.SubnetID]
	ip, ok := c.allocate(sub)
	if !ok {
		return nil, "No more IP addresses available on network " + networkID + "."
	}
	mac := "fa:16:3e:" + newHex(1) + ":" + newHex(1) + ":" + newHex(1)
	p := &port{ID: newID(), NetworkID: networkID, SubnetID: sub.ID, DeviceID: device, MAC: mac, IP: ip}
	c.ports[p.ID] = p
	return p, ""
}

// deletePort removes a port; its floating IPs stay allocated, unassociated.
func (c *Cloud) deletePort(id string) {
	delete(c.ports, id)
	for _, f := range c.fips {
		if f.PortID == id {
			f.PortID, f.FixedIP = "", ""
		}
	}
}

// ---------------------------------------------------------------------------
// Neutron API

func (c *Cloud) routeNetwork(mux *http.ServeMux) {
	versions := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{"id": "v2.0", "status": "CURRENT",
			"links": []any{map[string]any{"rel": "self", "href": c.srv.URL + "/network/v2.0/"}}}}})
	}
	mux.HandleFunc("GET /network", versions)
	mux.HandleFunc("GET /network/{$}", versions)
	mux.HandleFunc("GET /network/v2.0/networks", c.listNetworks)
	mux.HandleFunc("GET /network/v2.0/networks/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		n, ok := c.networks[r.PathValue("id")]
		if !ok {
			writeNeutronError(w, http.StatusNotFound, "NetworkNotFound", "Network "+r.PathValue("id")+" could not be found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"network": c.networkView(n)})
	})
	mux.HandleFunc("GET /network/v2.0/subnets", c.listSubnets)
	mux.HandleFunc("GET /network/v2.0/subnets/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		s, ok := c.subnets[r.PathValue("id")]
		if !ok {
			writeNeutronError(w, http.StatusNotFound, "SubnetNotFound", "Subnet "+r.PathValue("id")+" could not be found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"subnet": c.subnetView(s)})
	})
	mux.HandleFunc("GET /network/v2.0/ports", c.listPorts)
	mux.HandleFunc("GET /network/v2.0/floatingips", c.listFloatingIPs)
	mux.HandleFunc("POST /network/v2.0/floatingips", c.createFloatingIP)
	mux.HandleFunc("GET /network/v2.0/floatingips/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		f, ok := c.fips[r.PathValue("id")]
		if !ok {
			writeNeutronError(w, http.StatusNotFound, "FloatingIPNotFound", "Floating IP "+r.PathValue("id")+" could not be found")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"floatingip": c.fipView(f)})
	})
	mux.HandleFunc("PUT /network/v2.0/floatingips/{id}", c.updateFloatingIP)
	mux.HandleFunc("DELETE /network/v2.0/floatingips/{id}", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, ok := c.fips[r.PathValue("id")]; !ok {
			writeNeutronError(w, http.StatusNotFound, "FloatingIPNotFound", "Floating IP "+r.PathValue("id")+" could not be found")
			return
		}
		delete(c.fips, r.PathValue("id"))
		w.WriteHeader(http.StatusNoContent)
	})
}

func writeNeutronError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"NeutronError": map[string]any{"type": typ, "message": msg, "detail": ""}})
}

// filtered keeps the items whose fields equal every query parameter that is
// a field of the item (Neutron's filtering).
func filtered(r *http.Request, items []map[string]any) []any {
	out := []any{}
	q := r.URL.Query()
	for _, it := range items {
		ok := true
		for k, vs := range q {
			v, has := it[k]
			if !has {
				continue
			}
			if fmt.Sprint(orEmpty(v)) != vs[0] {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, it)
		}
	}
	return out
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

func (c *Cloud) networkView(n *NetworkInfo) map[string]any {
	return map[string]any{"id": n.ID, "name": n.Name, "status": "ACTIVE", "admin_state_up": true,
		"subnets": []string{n.SubnetID}, "router:external": n.External, "shared": false,
		"tenant_id": c.ProjectID, "project_id": c.ProjectID, "mtu": 1450, "description": "", "tags": []string{}}
}

func (c *Cloud) subnetView(s *SubnetInfo) map[string]any {
	return map[string]any{"id": s.ID, "name": s.Name, "network_id": s.NetworkID, "cidr": s.CIDR.String(),
		"ip_version": 4, "enable_dhcp": true, "gateway_ip": s.CIDR.Addr().Next().String(),
		"tenant_id": c.ProjectID, "project_id": c.ProjectID, "description": "", "tags": []string{}}
}

func (c *Cloud) portView(p *port) map[string]any {
	return map[string]any{"id": p.ID, "name": "", "network_id": p.NetworkID, "device_id": p.DeviceID,
		"device_owner": "compute:nova", "mac_address": p.MAC, "status": "ACTIVE", "admin_state_up": true,
		"fixed_ips": []any{map[string]any{"subnet_id": p.SubnetID, "ip_address": p.IP}},
		"tenant_id": c.ProjectID, "project_id": c.ProjectID, "description": "", "tags": []string{},
		"created_at": timestamp(time.Now()),
	}
}

func (c *Cloud) fipView(f *FloatingIP) map[string]any {
	status := "DOWN"
	var portID, fixed any
	if f.PortID != "" {
		status, portID, fixed = "ACTIVE", f.PortID, f.FixedIP
	}
	return map[string]any{"id": f.ID, "floating_ip_address": f.Address, "floating_network_id": f.NetworkID,
		"port_id": portID, "fixed_ip_address": fixed, "status": status, "description": f.Description,
		"router_id": nil, "tenant_id": c.ProjectID, "project_id": c.ProjectID, "tags": []string{}}
}

func (c *Cloud) listNetworks(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(c.networks)) {
		items = append(items, c.networkView(c.networks[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"networks": filtered(r, items)})
}

func (c *Cloud) listSubnets(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(c.subnets)) {
		items = append(items, c.subnetView(c.subnets[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"subnets": filtered(r, items)})
}

func (c *Cloud) listPorts(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(c.ports)) {
		items = append(items, c.portView(c.ports[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"ports": filtered(r, items)})
}

func (c *Cloud) listFloatingIPs(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var items []map[string]any
	for _, id := range slices.Sorted(maps.Keys(c.fips)) {
		items = append(items, c.fipView(c.fips[id]))
	}
	writeJSON(w, http.StatusOK, map[string]any{"floatingips": filtered(r, items)})
}

// portID returns the port_id of a request and whether it was given (null is "").
func (r fipRequest) portID() (string, bool) {
	raw := r.FloatingIP.PortID
	if len(raw) == 0 {
		return "", false
	}
	var s *string
	if json.Unmarshal(raw, &s) != nil || s == nil {
		return "", true
	}
	return strings.TrimSpace(*s), true
}

type fipRequest struct {
	FloatingIP struct {
		FloatingNetworkID string          `json:"floating_network_id"`
		PortID            json.RawMessage `json:"port_id"` // absent, null or a string
		Description       *string         `json:"description"`
	} `json:"floatingip"`
}

// associate binds f to port id ("" unbinds); an error message if it cannot.
func (c *Cloud) associate(f *FloatingIP, portID string) (int, string, string) {
	if portID == "" {
		f.PortID, f.FixedIP = "", ""
		return 0, "", ""
	}
	p, ok := c.ports[portID]
	if !ok {
		return http.StatusNotFound, "PortNotFound", "Port " + portID + " could not be found."
	}
	for _, other := range c.fips {
		if other != f && other.PortID == portID {
			return http.StatusConflict, "FloatingIPPortAlreadyAssociated", fmt.Sprintf(
				"Cannot associate floating IP %s (%s) with port %s using fixed IP %s, as that fixed IP already has a floating IP on external network %s.",
				f.Address, f.ID, portID, p.IP, f.NetworkID)
		}
	}
	f.PortID, f.FixedIP = portID, p.IP
	return 0, "", ""
}

func (c *Cloud) createFloatingIP(w http.ResponseWriter, r *http.Request) {
	var req fipRequest
	if !readJSON(w, r, Network, &req) {
		return
	}
	in := req.FloatingIP
	c.mu.Lock()
	defer c.mu.Unlock()
	n, ok := c.networks[in.FloatingNetworkID]
	if !ok {
		writeNeutronError(w, http.StatusNotFound, "NetworkNotFound", "Network "+in.FloatingNetworkID+" could not be found.")
		return
	}
	if !n.External {
		writeNeutronError(w, http.StatusBadRequest, "BadRequest", "Bad floatingip request: Network "+n.ID+" is not a valid external network.")
		return
	}
	if c.fipQuota > 0 && len(c.fips) >= c.fipQuota {
		writeNeutronError(w, http.StatusConflict, "OverQuota", "Quota exceeded for resources: ['floatingip'].")
		return
	}
	ip, ok := c.allocate(c.subnets[n.SubnetID])
	if !ok {
		writeNeutronError(w, http.StatusConflict, "IpAddressGenerationFailure", "No more IP addresses available on network "+n.ID+".")
		return
	}
	f := &FloatingIP{ID: newID(), Address: ip, NetworkID: n.ID}
	if in.Description != nil {
		f.Description = *in.Description
	}
	if pid, ok := req.portID(); ok {
		if status, typ, msg := c.associate(f, pid); status != 0 {
			writeNeutronError(w, status, typ, msg)
			return
		}
	}
	c.fips[f.ID] = f
	writeJSON(w, http.StatusCreated, map[string]any{"floatingip": c.fipView(f)})
}

func (c *Cloud) updateFloatingIP(w http.ResponseWriter, r *http.Request) {
	var req fipRequest
	if !readJSON(w, r, Network, &req) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fips[r.PathValue("id")]
	if !ok {
		writeNeutronError(w, http.StatusNotFound, "FloatingIPNotFound", "Floating IP "+r.PathValue("id")+" could not be found")
		return
	}
	if pid, ok := req.portID(); ok {
		if status, typ, msg := c.associate(f, pid); status != 0 {
			writeNeutronError(w, status, typ, msg)
			return
		}
	}
	if req.FloatingIP.Description != nil {
		f.Description = *req.FloatingIP.Description
	}
	writeJSON(w, http.StatusOK, map[string]any{"floatingip": c.fipView(f)})
}
