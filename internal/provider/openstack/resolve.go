package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/goscaler/goscaler/internal/osapi"
	"github.com/goscaler/goscaler/internal/provider"
)

// resolved are the IDs behind the names of the configuration.
type resolved struct {
	flavorID, imageID string
	// networkID and networkName are "" without a configured network.
	networkID, networkName string
	// poolID is the floating IP network, "" without floating IPs.
	poolID string
}

// named is a resource with an ID and a name.
type named struct{ id, name string }

// lookup finds the one resource whose ID is value, else whose name is value.
// get answers a 404 for an unknown ID; byName lists the candidates.
func (p *Provider) lookup(ctx context.Context, key, what, value string,
	get func(ctx context.Context, id string) (named, error),
	byName func(ctx context.Context, name string) ([]named, error)) (named, error) {
	var found named
	err := p.retry.Do(ctx, nil, func(ctx context.Context) error {
		n, err := get(ctx, value)
		if err == nil {
			found = n
			return nil
		}
		if !osapi.IsNotFound(err) && osapi.Status(err) != 400 {
			return err
		}
		all, err := byName(ctx, value)
		if err != nil {
			return err
		}
		var match []named
		for _, n := range all {
			if n.name == value {
				match = append(match, n)
			}
		}
		switch len(match) {
		case 0:
			return fmt.Errorf("%w: %s: no %s has the ID or name %q in %s", provider.ErrConfig, key, what, value, p.sess.Where())
		case 1:
			found = match[0]
			return nil
		default:
			ids := make([]string, len(match))
			for i, m := range match {
				ids[i] = m.id
			}
			slices.Sort(ids)
			return fmt.Errorf("%w: %s: %d %ss are named %q (%s): give the ID", provider.ErrConfig, key, len(match), what, value, strings.Join(ids, ", "))
		}
	})
	if err != nil {
		return named{}, p.classify(ctx, fmt.Sprintf("resolving %s %q", key, value), err)
	}
	return found, nil
}

// resolveNetworks finds the network and the floating IP pool, once.
func (p *Provider) resolveNetworks(ctx context.Context) (resolved, error) {
	p.resMu.Lock()
	defer p.resMu.Unlock()
	if p.netDone {
		return p.res, nil
	}
	if p.cfg.Network != "" || p.cfg.FloatingIPPool != "" {
		nc, err := p.sess.Network(ctx)
		if err != nil {
			return resolved{}, p.classify(ctx, "connecting to Neutron", err)
		}
		get := func(ctx context.Context, id string) (named, error) {
			n, err := networks.Get(ctx, nc, id).Extract()
			if err != nil {
				return named{}, err
			}
			return named{n.ID, n.Name}, nil
		}
		byName := func(ctx context.Context, name string) ([]named, error) {
			pages, err := networks.List(nc, networks.ListOpts{Name: name}).AllPages(ctx)
			if err != nil {
				return nil, err
			}
			ns, err := networks.ExtractNetworks(pages)
			out := make([]named, len(ns))
			for i, n := range ns {
				out[i] = named{n.ID, n.Name}
			}
			return out, err
		}
		if p.cfg.Network != "" {
			n, err := p.lookup(ctx, "network", "network", p.cfg.Network, get, byName)
			if err != nil {
				return resolved{}, err
			}
			p.res.networkID, p.res.networkName = n.id, n.name
		}
		if p.cfg.FloatingIPPool != "" {
			n, err := p.lookup(ctx, "floating_ip_pool", "network", p.cfg.FloatingIPPool, get, byName)
			if err != nil {
				return resolved{}, err
			}
			p.res.poolID = n.id
		}
	}
	p.netDone = true
	return p.res, nil
}

// resolve finds every ID the creation of a server needs, once.
func (p *Provider) resolve(ctx context.Context) (resolved, error) {
	if _, err := p.resolveNetworks(ctx); err != nil {
		return resolved{}, err
	}
	p.resMu.Lock()
	defer p.resMu.Unlock()
	if p.res.flavorID != "" {
		return p.res, nil
	}
	cc, err := p.sess.Compute(ctx)
	if err != nil {
		return resolved{}, p.classify(ctx, "connecting to Nova", err)
	}
	f, err := p.lookup(ctx, "flavor", "flavor", p.cfg.Flavor,
		func(ctx context.Context, id string) (named, error) {
			f, err := flavors.Get(ctx, cc, id).Extract()
			if err != nil {
				return named{}, err
			}
			return named{f.ID, f.Name}, nil
		},
		func(ctx context.Context, _ string) ([]named, error) {
			pages, err := flavors.ListDetail(cc, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
			if err != nil {
				return nil, err
			}
			fs, err := flavors.ExtractFlavors(pages)
			out := make([]named, len(fs))
			for i, f := range fs {
				out[i] = named{f.ID, f.Name}
			}
			return out, err
		})
	if err != nil {
		return resolved{}, err
	}
	ic, err := p.sess.Image(ctx)
	if err != nil {
		return resolved{}, p.classify(ctx, "connecting to Glance", err)
	}
	im, err := p.lookup(ctx, "image", "image", p.cfg.Image,
		func(ctx context.Context, id string) (named, error) {
			im, err := images.Get(ctx, ic, id).Extract()
			if err != nil {
				return named{}, err
			}
			return named{im.ID, im.Name}, nil
		},
		func(ctx context.Context, name string) ([]named, error) {
			pages, err := images.List(ic, images.ListOpts{Name: name}).AllPages(ctx)
			if err != nil {
				return nil, err
			}
			ims, err := images.ExtractImages(pages)
			out := make([]named, len(ims))
			for i, im := range ims {
				out[i] = named{im.ID, im.Name}
			}
			return out, err
		})
	if err != nil {
		return resolved{}, err
	}
	p.res.flavorID, p.res.imageID = f.id, im.id
	return p.res, nil
}
