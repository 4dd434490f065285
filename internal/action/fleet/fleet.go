// Package fleet holds the actions that change a cluster's size: deploy_node
// and remove_node. Both go through action.Fleet (the controller), which keeps
// min and max and makes the step idempotent per activity.
package fleet

import (
	"context"
	"errors"
	"fmt"

	"github.com/goscaler/goscaler/internal/action"
)

func init() {
	action.Registry.Register("deploy_node", func() action.Config { return &DeployConfig{} })
	action.Registry.Register("remove_node", func() action.Config { return &RemoveConfig{} })
}

// DeployConfig configures deploy_node: launch Count new nodes (never past max)
// and wait until they are in service.
type DeployConfig struct {
	Count int `yaml:"count" json:"count"`
}

// Validate checks the count; zero means one.
func (c *DeployConfig) Validate() error {
	if c.Count < 0 {
		return fmt.Errorf("count is %d: it must be positive", c.Count)
	}
	if c.Count == 0 {
		c.Count = 1
	}
	return nil
}

// New builds the action.
func (c *DeployConfig) New(action.Env) (action.Action, error) { return deploy{c: *c}, nil }

type deploy struct{ c DeployConfig }

func (d deploy) Run(ctx context.Context, r action.Run) (string, error) {
	return r.Fleet.DeployNodes(ctx, r.Cluster, r.Activity, d.c.Count)
}

// Removal orders.
const (
	OrderOldest = "oldest"
	OrderNewest = "newest"
)

// RemoveConfig configures remove_node: drain and terminate Count in-service
// nodes (never below min), Order "oldest" (default) or "newest" first.
type RemoveConfig struct {
	Count int    `yaml:"count" json:"count"`
	Order string `yaml:"order" json:"order"`
}

// Validate checks count and order and fills the defaults.
func (c *RemoveConfig) Validate() error {
	var errs []error
	if c.Count < 0 {
		errs = append(errs, fmt.Errorf("count is %d: it must be positive", c.Count))
	}
	if c.Count == 0 {
		c.Count = 1
	}
	switch c.Order {
	case "":
		c.Order = OrderOldest
	case OrderOldest, OrderNewest:
	default:
		errs = append(errs, fmt.Errorf("order %q is not oldest or newest", c.Order))
	}
	return errors.Join(errs...)
}

// New builds the action.
func (c *RemoveConfig) New(action.Env) (action.Action, error) { return remove{c: *c}, nil }

type remove struct{ c RemoveConfig }

func (d remove) Run(ctx context.Context, r action.Run) (string, error) {
	return r.Fleet.RemoveNodes(ctx, r.Cluster, r.Activity, d.c.Count, d.c.Order)
}
