package aws

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/goscaler/goscaler/internal/awsclient"
	"github.com/goscaler/goscaler/internal/provider"
)

// Provider runs nodes as EC2 instances. It is safe for concurrent use.
type Provider struct {
	cfg    compiled
	owner  string
	region string
	ec2    *ec2.Client
	log    *slog.Logger
}

var _ provider.Provider = (*Provider)(nil)

// liveStates are the instance states of a machine that exists.
var liveStates = []string{"pending", "running", "stopping", "stopped"}

// ClientToken is the RunInstances idempotency token of a node: the same for
// every attempt of one installation to launch it, different for every other
// node, installation or cluster. EC2 answers a repeated token with the
// instance the first call launched.
func ClientToken(owner, cluster, nodeID string) string {
	sum := sha256.Sum256([]byte(owner + "\x00" + cluster + "\x00" + nodeID))
	return "goscaler-" + hex.EncodeToString(sum[:20])
}

// Create launches the instance of spec.NodeID, or returns the one that
// already exists for it, once it has its address.
func (p *Provider) Create(ctx context.Context, spec provider.NodeSpec) (provider.Machine, error) {
	if spec.Cluster == "" || spec.NodeID == "" {
		return provider.Machine{}, fmt.Errorf("%w: aws: creating a node needs its cluster and node ID", provider.ErrConfig)
	}
	what := "node " + spec.NodeID
	existing, err := p.describe(ctx, nil, p.filters(spec.Cluster, spec.NodeID))
	if err != nil {
		return provider.Machine{}, p.fail(what+": looking for its instance", err)
	}
	if len(existing) > 0 {
		in := existing[0]
		p.log.Info("instance already exists for the node", "cluster", spec.Cluster, "node", spec.NodeID, "instance", id(in))
		return p.awaitAddress(ctx, spec, in, false)
	}

	input, err := p.runInput(spec)
	if err != nil {
		return provider.Machine{}, fmt.Errorf("%w: aws: %s: %w", provider.ErrConfig, what, err)
	}
	out, err := p.ec2.RunInstances(ctx, input)
	if err != nil {
		return provider.Machine{}, p.fail(what+": launching its instance", err)
	}
	if len(out.Instances) == 0 {
		return provider.Machine{}, fmt.Errorf("%w: aws: %s: RunInstances answered without an instance", provider.ErrTransient, what)
	}
	in := out.Instances[0]
	if gone(in) {
		return provider.Machine{}, fmt.Errorf("%w: aws: %s: the instance %s launched for it earlier (client token %s) is %s already; the node must be replaced",
			provider.ErrNotFound, what, id(in), awssdk.ToString(input.ClientToken), state(in))
	}
	p.log.Info("instance launched", "cluster", spec.Cluster, "node", spec.NodeID, "instance", id(in),
		"type", string(in.InstanceType), "image", awssdk.ToString(in.ImageId))
	return p.awaitAddress(ctx, spec, in, true)
}

// runInput is the RunInstances request of a node.
func (p *Provider) runInput(spec provider.NodeSpec) (*ec2.RunInstancesInput, error) {
	c := &p.cfg
	vars := make(map[string]string, len(spec.Vars)+3)
	maps.Copy(vars, spec.Vars)
	vars["Cluster"], vars["NodeID"], vars["Port"] = spec.Cluster, spec.NodeID, fmt.Sprint(c.port)
	tags := []types.Tag{
		{Key: awssdk.String(TagOwner), Value: awssdk.String(p.owner)},
		{Key: awssdk.String(TagCluster), Value: awssdk.String(spec.Cluster)},
		{Key: awssdk.String(TagNode), Value: awssdk.String(spec.NodeID)},
	}
	var errs []error
	if _, ok := c.tags["Name"]; !ok {
		tags = append(tags, types.Tag{Key: awssdk.String("Name"), Value: awssdk.String(spec.NodeID)})
	}
	for _, k := range slices.Sorted(maps.Keys(c.tags)) {
		v, err := c.tags[k].Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("tags.%s: %w", k, err))
		}
		if len(v) > 256 {
			errs = append(errs, fmt.Errorf("tags.%s: the value renders to %d characters; EC2 allows 256", k, len(v)))
		}
		tags = append(tags, types.Tag{Key: awssdk.String(k), Value: awssdk.String(v)})
	}
	in := &ec2.RunInstancesInput{
		MinCount:    awssdk.Int32(1),
		MaxCount:    awssdk.Int32(1),
		ClientToken: awssdk.String(ClientToken(p.owner, spec.Cluster, spec.NodeID)),
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: tags},
			{ResourceType: types.ResourceTypeVolume, Tags: tags},
		},
	}
	if lt := c.LaunchTemplate; lt != nil {
		in.LaunchTemplate = &types.LaunchTemplateSpecification{}
		if lt.ID != "" {
			in.LaunchTemplate.LaunchTemplateId = awssdk.String(lt.ID)
		} else {
			in.LaunchTemplate.LaunchTemplateName = awssdk.String(lt.Name)
		}
		if lt.Version != "" {
			in.LaunchTemplate.Version = awssdk.String(lt.Version)
		}
	}
	if c.ImageID != "" {
		in.ImageId = awssdk.String(c.ImageID)
	}
	if c.InstanceType != "" {
		in.InstanceType = types.InstanceType(c.InstanceType)
	}
	if c.SubnetID != "" {
		in.SubnetId = awssdk.String(c.SubnetID)
	}
	in.SecurityGroupIds = c.SecurityGroupIDs
	if c.KeyName != "" {
		in.KeyName = awssdk.String(c.KeyName)
	}
	if prof := c.IAMInstanceProfile; prof != "" {
		in.IamInstanceProfile = &types.IamInstanceProfileSpecification{}
		if strings.HasPrefix(prof, "arn:") {
			in.IamInstanceProfile.Arn = awssdk.String(prof)
		} else {
			in.IamInstanceProfile.Name = awssdk.String(prof)
		}
	}
	if c.userData != nil {
		ud, err := c.userData.Render(vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("user_data: %w", err))
		}
		if len(ud) > MaxUserData {
			errs = append(errs, fmt.Errorf("user_data: renders to %d bytes; EC2 allows %d", len(ud), MaxUserData))
		}
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString([]byte(ud)))
	}
	return in, errors.Join(errs...)
}

// awaitAddress returns the machine of an instance once it has the address
// the config asks for, polling DescribeInstances. A new instance may be
// unknown to DescribeInstances for a moment (EC2 is eventually consistent).
func (p *Provider) awaitAddress(ctx context.Context, spec provider.NodeSpec, in types.Instance, launched bool) (provider.Machine, error) {
	what := fmt.Sprintf("node %s: instance %s", spec.NodeID, id(in))
	deadline := time.Now().Add(p.cfg.addrWait)
	for {
		switch {
		case gone(in):
			return provider.Machine{}, fmt.Errorf("%w: aws: %s is %s", provider.ErrNotFound, what, state(in))
		case p.ip(in) != "", state(in) == "stopping" || state(in) == "stopped":
			// A stopped instance is returned as such: the controller fails
			// its node rather than wait for an address that will not come.
			return p.machine(in), nil
		case state(in) == "running" && p.cfg.Address == AddressPublic:
			// A running instance without a public IP never gets one.
			err := fmt.Errorf("%w: aws: %s runs without a public IP: use a subnet that assigns public IPs (or a launch template that does), or address: private",
				provider.ErrConfig, what)
			if launched {
				if derr := p.terminate(ctx, id(in)); derr != nil && !errors.Is(derr, provider.ErrNotFound) {
					err = errors.Join(err, fmt.Errorf("terminating it: %w", derr))
				}
			}
			return provider.Machine{}, err
		case time.Now().After(deadline):
			return provider.Machine{}, fmt.Errorf("%w: aws: %s has no %s IP after %s (state %s); the next attempt finds it again",
				provider.ErrTransient, what, p.addressKind(), p.cfg.addrWait, state(in))
		}
		t := time.NewTimer(p.cfg.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return provider.Machine{}, fmt.Errorf("%w: aws: %s: waiting for its address: %w", provider.ErrTransient, what, ctx.Err())
		case <-t.C:
		}
		found, err := p.describe(ctx, []string{id(in)}, nil)
		switch {
		case errors.Is(err, provider.ErrNotFound):
			continue // not visible yet
		case err != nil:
			return provider.Machine{}, p.fail(what+": waiting for its address", err)
		case len(found) == 1:
			in = found[0]
		}
	}
}

// Get returns the machine of an instance; ErrNotFound if it is gone or is
// not this installation's.
func (p *Provider) Get(ctx context.Context, machineID string) (provider.Machine, error) {
	in, err := p.get(ctx, machineID)
	if err != nil {
		return provider.Machine{}, err
	}
	return p.machine(in), nil
}

func (p *Provider) get(ctx context.Context, machineID string) (types.Instance, error) {
	if !strings.HasPrefix(machineID, "i-") {
		return types.Instance{}, fmt.Errorf("aws: %q is not an instance ID: %w", machineID, provider.ErrNotFound)
	}
	found, err := p.describe(ctx, []string{machineID}, nil)
	if err != nil {
		return types.Instance{}, p.fail("instance "+machineID, err)
	}
	if len(found) == 0 {
		return types.Instance{}, fmt.Errorf("aws: instance %s does not exist: %w", machineID, provider.ErrNotFound)
	}
	in := found[0]
	if gone(in) {
		return types.Instance{}, fmt.Errorf("aws: instance %s is %s: %w", machineID, state(in), provider.ErrNotFound)
	}
	if owner := tag(in, TagOwner); owner != p.owner {
		return types.Instance{}, fmt.Errorf("aws: instance %s is not this installation's (its %s tag is %q, not %q): %w",
			machineID, TagOwner, owner, p.owner, provider.ErrNotFound)
	}
	return in, nil
}

// Delete terminates an instance of this installation and returns once it is
// shutting down; ErrNotFound if it was gone (or is not ours: it is left alone).
func (p *Provider) Delete(ctx context.Context, machineID string) error {
	if _, err := p.get(ctx, machineID); err != nil {
		return fmt.Errorf("deleting: %w", err)
	}
	if err := p.terminate(ctx, machineID); err != nil {
		return err
	}
	p.log.Info("instance terminated", "instance", machineID)
	return nil
}

// terminate calls TerminateInstances and waits until the instance is
// shutting down or terminated.
func (p *Provider) terminate(ctx context.Context, machineID string) error {
	out, err := p.ec2.TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{machineID}})
	if err != nil {
		return p.fail("terminating instance "+machineID, err)
	}
	for _, ch := range out.TerminatingInstances {
		if ch.CurrentState != nil && goneState(string(ch.CurrentState.Name)) {
			return nil
		}
	}
	for {
		t := time.NewTimer(p.cfg.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: aws: waiting for instance %s to shut down: %w", provider.ErrTransient, machineID, ctx.Err())
		case <-t.C:
		}
		found, err := p.describe(ctx, []string{machineID}, nil)
		if errors.Is(err, provider.ErrNotFound) || err == nil && (len(found) == 0 || gone(found[0])) {
			return nil
		}
		if err != nil {
			return p.fail("waiting for instance "+machineID+" to shut down", err)
		}
	}
}

// List returns every live instance tagged with this installation and cluster,
// oldest first.
func (p *Provider) List(ctx context.Context, cluster string) ([]provider.Machine, error) {
	found, err := p.describe(ctx, nil, p.filters(cluster, ""))
	if err != nil {
		return nil, p.fail("listing the instances of cluster "+cluster, err)
	}
	out := make([]provider.Machine, 0, len(found))
	for _, in := range found {
		out = append(out, p.machine(in))
	}
	return out, nil
}

// filters select the live instances of this owner and cluster (and node).
func (p *Provider) filters(cluster, node string) []types.Filter {
	f := []types.Filter{
		{Name: awssdk.String("tag:" + TagOwner), Values: []string{p.owner}},
		{Name: awssdk.String("tag:" + TagCluster), Values: []string{cluster}},
		{Name: awssdk.String("instance-state-name"), Values: liveStates},
	}
	if node != "" {
		f = append(f, types.Filter{Name: awssdk.String("tag:" + TagNode), Values: []string{node}})
	}
	return f
}

// describe runs DescribeInstances over every page and returns the instances
// sorted by launch time. An unknown instance ID is an error wrapping
// ErrNotFound.
func (p *Provider) describe(ctx context.Context, ids []string, filters []types.Filter) ([]types.Instance, error) {
	pages := ec2.NewDescribeInstancesPaginator(p.ec2, &ec2.DescribeInstancesInput{InstanceIds: ids, Filters: filters})
	var out []types.Instance
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			if code, _ := awsclient.Code(err); code == "InvalidInstanceID.NotFound" || code == "InvalidInstanceID.Malformed" {
				return nil, fmt.Errorf("%w: %w", provider.ErrNotFound, err)
			}
			return nil, err
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		return awssdk.ToTime(out[i].LaunchTime).Before(awssdk.ToTime(out[j].LaunchTime))
	})
	return out, nil
}

// machine is an instance as the provider contract describes it.
func (p *Provider) machine(in types.Instance) provider.Machine {
	m := provider.Machine{
		ID:      id(in),
		Cluster: tag(in, TagCluster),
		NodeID:  tag(in, TagNode),
		Address: p.cfg.address(p.ip(in)),
		State:   provider.MachineRunning,
		Meta: map[string]string{
			"instance_id":   id(in),
			"instance_type": string(in.InstanceType),
			"region":        p.region,
		},
	}
	if s := state(in); s == "stopping" || s == "stopped" {
		m.State = provider.MachineStopped
		m.Reason = "instance " + s
		if in.StateReason != nil && awssdk.ToString(in.StateReason.Message) != "" {
			m.Reason += ": " + awssdk.ToString(in.StateReason.Message)
		}
	}
	for k, v := range map[string]*string{"image_id": in.ImageId, "private_ip": in.PrivateIpAddress,
		"public_ip": in.PublicIpAddress, "subnet_id": in.SubnetId} {
		if s := awssdk.ToString(v); s != "" {
			m.Meta[k] = s
		}
	}
	if in.Placement != nil && in.Placement.AvailabilityZone != nil {
		m.Meta["availability_zone"] = *in.Placement.AvailabilityZone
	}
	if in.LaunchTime != nil {
		m.Meta["launch_time"] = in.LaunchTime.UTC().Format(time.RFC3339)
	}
	return m
}

func (p *Provider) ip(in types.Instance) string {
	if p.cfg.Address == AddressPublic {
		return awssdk.ToString(in.PublicIpAddress)
	}
	return awssdk.ToString(in.PrivateIpAddress)
}

func (p *Provider) addressKind() string {
	if p.cfg.Address == AddressPublic {
		return AddressPublic
	}
	return AddressPrivate
}

func id(in types.Instance) string { return awssdk.ToString(in.InstanceId) }

func state(in types.Instance) string {
	if in.State == nil {
		return "unknown"
	}
	return string(in.State.Name)
}

func goneState(s string) bool { return s == "shutting-down" || s == "terminated" }

func gone(in types.Instance) bool { return goneState(state(in)) }

func tag(in types.Instance, key string) string {
	for _, t := range in.Tags {
		if awssdk.ToString(t.Key) == key {
			return awssdk.ToString(t.Value)
		}
	}
	return ""
}
