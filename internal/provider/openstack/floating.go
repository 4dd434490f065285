package openstack

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/layer3/floatingips"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/ports"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/provider"
)

// fipDescription tags the floating IP of a node, so that one left behind
// (its server deleted behind goscaler's back) is found and reused or released.
func (p *Provider) fipDescription(cluster, node string) string {
	return fmt.Sprintf("goscaler %s=%s %s=%s %s=%s", MetaOwner, p.owner, MetaCluster, cluster, MetaNode, node)
}

// listFIPs lists floating IPs with retries.
func (p *Provider) listFIPs(ctx context.Context, opts floatingips.ListOpts) ([]floatingips.FloatingIP, error) {
	nc, err := p.sess.Network(ctx)
	if err != nil {
		return nil, p.classify(ctx, "connecting to Neutron", err)
	}
	var out []floatingips.FloatingIP
	err = p.retry.Do(ctx, nil, func(ctx context.Context) error {
		pages, err := floatingips.List(nc, opts).AllPages(ctx)
		if err != nil {
			return err
		}
		out, err = floatingips.ExtractFloatingIPs(pages)
		return err
	})
	if err != nil {
		return nil, p.classify(ctx, "listing floating IPs", err)
	}
	return out, nil
}

// serverPorts lists the Neutron ports of a server (on the configured network
// if there is one).
func (p *Provider) serverPorts(ctx context.Context, serverID, networkID string) ([]ports.Port, error) {
	nc, err := p.sess.Network(ctx)
	if err != nil {
		return nil, p.classify(ctx, "connecting to Neutron", err)
	}
	var out []ports.Port
	err = p.retry.Do(ctx, nil, func(ctx context.Context) error {
		pages, err := ports.List(nc, ports.ListOpts{DeviceID: serverID, NetworkID: networkID}).AllPages(ctx)
		if err != nil {
			return err
		}
		out, err = ports.ExtractPorts(pages)
		return err
	})
	if err != nil {
		return nil, p.classify(ctx, "listing the ports of server "+serverID, err)
	}
	return out, nil
}

// floatingByFixed maps the fixed IPs of the pool's associated floating IPs to
// their floating addresses (for servers whose Nova addresses lag behind).
func (p *Provider) floatingByFixed(ctx context.Context) (map[string]string, error) {
	p.resMu.Lock()
	pool := p.res.poolID
	p.resMu.Unlock()
	fips, err := p.listFIPs(ctx, floatingips.ListOpts{FloatingNetworkID: pool})
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, f := range fips {
		if f.PortID != "" && f.FixedIP != "" {
			out[f.FixedIP] = f.FloatingIP
		}
	}
	return out, nil
}

// ensureFloatingIP gives the server a floating IP from the pool, once: one
// already associated with its port is kept, one of the node's left
// unassociated is reused, else one is allocated and associated in one request
// (so that none is ever allocated without a server to find it by).
func (p *Provider) ensureFloatingIP(ctx context.Context, log *slog.Logger, srv *servers.Server, spec provider.NodeSpec) (string, error) {
	res, err := p.resolveNetworks(ctx)
	if err != nil {
		return "", err
	}
	nc, err := p.sess.Network(ctx)
	if err != nil {
		return "", p.classify(ctx, "connecting to Neutron", err)
	}
	ps, err := p.serverPorts(ctx, srv.ID, res.networkID)
	if err != nil {
		return "", err
	}
	if len(ps) == 0 {
		return "", fmt.Errorf("%w: server %s has no port yet to attach a floating IP to", provider.ErrTransient, srv.ID)
	}
	port := ps[0]
	desc := p.fipDescription(spec.Cluster, spec.NodeID)
	for attempt := 1; ; attempt++ {
		mine, err := p.listFIPs(ctx, floatingips.ListOpts{PortID: port.ID})
		if err != nil {
			return "", err
		}
		if len(mine) > 0 {
			return mine[0].FloatingIP, nil
		}
		left, err := p.listFIPs(ctx, floatingips.ListOpts{Description: desc, FloatingNetworkID: res.poolID})
		if err != nil {
			return "", err
		}
		for _, f := range left {
			if f.PortID != "" || f.Description != desc {
				continue
			}
			pid := port.ID
			err := p.retry.Do(ctx, nil, func(ctx context.Context) error {
				_, err := floatingips.Update(ctx, nc, f.ID, floatingips.UpdateOpts{PortID: &pid}).Extract()
				return err
			})
			if err != nil {
				return "", p.classify(ctx, "associating floating IP "+f.FloatingIP, err)
			}
			log.Info("reused the node's floating IP", "server", srv.ID, "floating_ip", f.FloatingIP)
			return f.FloatingIP, nil
		}
		f, err := floatingips.Create(ctx, nc, floatingips.CreateOpts{
			FloatingNetworkID: res.poolID, PortID: port.ID, Description: desc,
		}).Extract()
		if err == nil {
			log.Info("floating IP allocated", "server", srv.ID, "floating_ip", f.FloatingIP)
			return f.FloatingIP, nil
		}
		err = osapi.Clean(err)
		what := fmt.Sprintf("allocating a floating IP from %s for server %s", p.cfg.FloatingIPPool, srv.ID)
		switch {
		case osapi.IsQuota(err):
			return "", fmt.Errorf("%w: %s: %w", provider.ErrQuota, what, err)
		case osapi.Status(err) == http.StatusConflict:
			return "", fmt.Errorf("%w: %s: %w", provider.ErrCapacity, what, err)
		case ctx.Err() != nil || !osapi.IsTransient(err) || attempt > p.retry.Retries:
			return "", p.classify(ctx, what, err)
		}
		// The allocation may have happened: look again before retrying.
		if err := osapi.Sleep(ctx, p.retry.Delay(attempt, err)); err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
	}
}

// releaseFloatingIPs deletes the floating IPs of a server: those associated
// with its ports, and those of its node left unassociated.
func (p *Provider) releaseFloatingIPs(ctx context.Context, s *servers.Server) error {
	nc, err := p.sess.Network(ctx)
	if err != nil {
		return p.classify(ctx, "connecting to Neutron", err)
	}
	ps, err := p.serverPorts(ctx, s.ID, "")
	if err != nil {
		return err
	}
	var fips []floatingips.FloatingIP
	for _, port := range ps {
		fs, err := p.listFIPs(ctx, floatingips.ListOpts{PortID: port.ID})
		if err != nil {
			return err
		}
		fips = append(fips, fs...)
	}
	desc := p.fipDescription(s.Metadata[MetaCluster], s.Metadata[MetaNode])
	left, err := p.listFIPs(ctx, floatingips.ListOpts{Description: desc})
	if err != nil {
		return err
	}
	for _, f := range left {
		if f.Description == desc && f.PortID == "" {
			fips = append(fips, f)
		}
	}
	seen := map[string]bool{}
	for _, f := range fips {
		if seen[f.ID] {
			continue
		}
		seen[f.ID] = true
		err := p.retry.Do(ctx, nil, func(ctx context.Context) error { return floatingips.Delete(ctx, nc, f.ID).ExtractErr() })
		if err != nil && !osapi.IsNotFound(err) {
			return p.classify(ctx, "releasing floating IP "+f.FloatingIP, err)
		}
		p.log.Info("floating IP released", "server", s.ID, "floating_ip", f.FloatingIP)
	}
	return nil
}
