package awstest

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"time"
)

// member is a registration in a classic load balancer or a target group.
type member struct {
	registeredAt time.Time
	deregAt      time.Time // zero while registered
	// health overrides the computed state ("" for none).
	health, reason, description string
}

type classicLB struct {
	name      string
	drain     time.Duration // connection draining timeout; 0: disabled
	instances map[string]*member
}

type targetKey struct {
	id   string
	port int
}

type targetGroup struct {
	arn, name, targetType string
	port                  int
	delay                 time.Duration
	targets               map[targetKey]*member
}

// DefaultDeregistrationDelay is a new target group's deregistration delay,
// as in AWS.
const DefaultDeregistrationDelay = 300 * time.Second

// AddLoadBalancer makes a classic load balancer with the given connection
// draining timeout (0: draining disabled).
func (s *Server) AddLoadBalancer(name string, drain time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.classic[name] = &classicLB{name: name, drain: drain, instances: map[string]*member{}}
}

// AddTargetGroup makes a target group ("instance" or "ip") with a default
// port and deregistration delay, and returns its ARN.
func (s *Server) AddTargetGroup(name, targetType string, port int, delay time.Duration) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addTargetGroup(name, targetType, port, delay).arn
}

func (s *Server) addTargetGroup(name, targetType string, port int, delay time.Duration) *targetGroup {
	tg := &targetGroup{name: name, targetType: targetType, port: port, delay: delay, targets: map[targetKey]*member{},
		arn: fmt.Sprintf("arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s", Region, AccountID, name, randomHex(8))}
	s.tgroups[tg.arn] = tg
	return tg
}

// SetTargetHealth forces the health of a registered target (state "" goes
// back to the computed one); false if it is not registered.
func (s *Server) SetTargetHealth(arn, id string, port int, state, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgroups[arn]
	if tg == nil {
		return false
	}
	m := tg.targets[targetKey{id, port}]
	if m == nil {
		return false
	}
	m.health, m.reason, m.description = state, reason, "forced by the test"
	return true
}

// SetInstanceHealth forces the health of an instance registered with a
// classic load balancer ("InService", "OutOfService"; "" for the computed one).
func (s *Server) SetInstanceHealth(lbName, id, state, description string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	lb := s.classic[lbName]
	if lb == nil || lb.instances[id] == nil {
		return false
	}
	m := lb.instances[id]
	m.health, m.description = state, description
	return true
}

// Target is a registration as the fake holds it.
type Target struct {
	ID       string
	Port     int
	Draining bool
}

// Targets returns a target group's registrations (draining ones too).
func (s *Server) Targets(arn string) []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg := s.tgroups[arn]
	if tg == nil {
		return nil
	}
	s.expire()
	var out []Target
	for k, m := range tg.targets {
		out = append(out, Target{ID: k.id, Port: k.port, Draining: !m.deregAt.IsZero()})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].ID < out[j].ID || out[i].ID == out[j].ID && out[i].Port < out[j].Port
	})
	return out
}

// LoadBalancerInstances returns the instances registered with a classic load
// balancer (draining ones too).
func (s *Server) LoadBalancerInstances(name string) []Target {
	s.mu.Lock()
	defer s.mu.Unlock()
	lb := s.classic[name]
	if lb == nil {
		return nil
	}
	s.expire()
	var out []Target
	for id, m := range lb.instances {
		out = append(out, Target{ID: id, Draining: !m.deregAt.IsZero()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// expire ends the draining that has lasted long enough. The caller holds s.mu.
func (s *Server) expire() {
	now := time.Now()
	for _, lb := range s.classic {
		for id, m := range lb.instances {
			if !m.deregAt.IsZero() && now.Sub(m.deregAt) >= lb.drain {
				delete(lb.instances, id)
			}
		}
	}
	for _, tg := range s.tgroups {
		for k, m := range tg.targets {
			if !m.deregAt.IsZero() && now.Sub(m.deregAt) >= tg.delay {
				delete(tg.targets, k)
			}
		}
	}
}

// forgetTargets removes a terminated instance from every balancer, as AWS
// does. The caller holds s.mu.
func (s *Server) forgetTargets(instanceID string) {
	for _, lb := range s.classic {
		delete(lb.instances, instanceID)
	}
	for _, tg := range s.tgroups {
		if tg.targetType != "instance" {
			continue
		}
		for k := range tg.targets {
			if k.id == instanceID {
				delete(tg.targets, k)
			}
		}
	}
}

// instanceUsable reports whether an instance may be registered. The caller
// holds s.mu.
func (s *Server) instanceUsable(id string) bool {
	in := s.instances[id]
	return in != nil && (in.State == "pending" || in.State == "running")
}

// ---------------------------------------------------------------------------
// Classic ELB

type xInstanceID struct {
	InstanceID string `xml:"InstanceId"`
}

type elbCreateResult struct {
	XMLName xml.Name `xml:"CreateLoadBalancerResult"`
	DNSName string   `xml:"DNSName"`
}

func (s *Server) elbCreate(p url.Values) (any, *apiError) {
	name := p.Get("LoadBalancerName")
	if name == "" {
		return nil, errorf("ValidationError", "LoadBalancerName is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.classic[name] == nil {
		s.classic[name] = &classicLB{name: name, instances: map[string]*member{}}
	}
	return elbCreateResult{DNSName: name + "-1234567890." + Region + ".elb.amazonaws.com"}, nil
}

type elbAttributesResult struct {
	XMLName          xml.Name `xml:"ModifyLoadBalancerAttributesResult"`
	LoadBalancerName string   `xml:"LoadBalancerName"`
	DrainEnabled     bool     `xml:"LoadBalancerAttributes>ConnectionDraining>Enabled"`
	DrainTimeout     int      `xml:"LoadBalancerAttributes>ConnectionDraining>Timeout"`
}

func (s *Server) elbModifyAttributes(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	lb, aerr := s.classicLB(p)
	if aerr != nil {
		return nil, aerr
	}
	if v := p.Get("LoadBalancerAttributes.ConnectionDraining.Enabled"); v != "" {
		if v != "true" {
			lb.drain = 0
		} else {
			secs, _ := strconv.Atoi(p.Get("LoadBalancerAttributes.ConnectionDraining.Timeout"))
			if secs <= 0 {
				secs = 300
			}
			lb.drain = time.Duration(secs) * time.Second
		}
	}
	return elbAttributesResult{LoadBalancerName: lb.name, DrainEnabled: lb.drain > 0, DrainTimeout: int(lb.drain / time.Second)}, nil
}

func (s *Server) classicLB(p url.Values) (*classicLB, *apiError) {
	name := p.Get("LoadBalancerName")
	lb := s.classic[name]
	if lb == nil {
		return nil, errorf("LoadBalancerNotFound", "There is no ACTIVE Load Balancer named '%s'", name)
	}
	return lb, nil
}

type elbInstancesResult struct {
	XMLName   xml.Name
	Instances []xInstanceID `xml:"Instances>member"`
}

func (s *Server) registeredInstances(lb *classicLB, action string) elbInstancesResult {
	out := elbInstancesResult{XMLName: xml.Name{Local: action + "Result"}}
	ids := make([]string, 0, len(lb.instances))
	for id, m := range lb.instances {
		if m.deregAt.IsZero() {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		out.Instances = append(out.Instances, xInstanceID{id})
	}
	return out
}

func (s *Server) elbRegister(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.expire()
	lb, aerr := s.classicLB(p)
	if aerr != nil {
		return nil, aerr
	}
	ids := list(p, "Instances.member", ".InstanceId")
	for _, id := range ids {
		if !s.instanceUsable(id) {
			return nil, errorf("InvalidInstance", "The requested instance(s) is(are) not valid: %s", id)
		}
	}
	for _, id := range ids {
		if m := lb.instances[id]; m == nil || !m.deregAt.IsZero() {
			lb.instances[id] = &member{registeredAt: time.Now()}
		}
	}
	return s.registeredInstances(lb, "RegisterInstancesWithLoadBalancer"), nil
}

func (s *Server) elbDeregister(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	lb, aerr := s.classicLB(p)
	if aerr != nil {
		return nil, aerr
	}
	ids := list(p, "Instances.member", ".InstanceId")
	for _, id := range ids {
		if lb.instances[id] == nil {
			return nil, errorf("InvalidInstance", "The specified EndPoint is not valid: instance %s is not registered", id)
		}
	}
	for _, id := range ids {
		m := lb.instances[id]
		switch {
		case lb.drain <= 0:
			delete(lb.instances, id)
		case m.deregAt.IsZero():
			m.deregAt = time.Now()
		}
	}
	return s.registeredInstances(lb, "DeregisterInstancesFromLoadBalancer"), nil
}

type elbHealthResult struct {
	XMLName xml.Name       `xml:"DescribeInstanceHealthResult"`
	States  []xInstanceHlt `xml:"InstanceStates>member"`
}

type xInstanceHlt struct {
	InstanceID  string `xml:"InstanceId"`
	State       string `xml:"State"`
	ReasonCode  string `xml:"ReasonCode"`
	Description string `xml:"Description"`
}

func (s *Server) elbDescribeHealth(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.expire()
	lb, aerr := s.classicLB(p)
	if aerr != nil {
		return nil, aerr
	}
	ids := list(p, "Instances.member", ".InstanceId")
	for _, id := range ids {
		if lb.instances[id] == nil {
			return nil, errorf("InvalidInstance", "Could not find EC2 instance %s.", id)
		}
	}
	if len(ids) == 0 {
		for id := range lb.instances {
			ids = append(ids, id)
		}
		sort.Strings(ids)
	}
	out := elbHealthResult{}
	now := time.Now()
	for _, id := range ids {
		m := lb.instances[id]
		h := xInstanceHlt{InstanceID: id, State: "InService", ReasonCode: "N/A", Description: "N/A"}
		in := s.instances[id]
		switch {
		case !m.deregAt.IsZero():
			h.Description = "Instance deregistration currently in progress."
		case m.health != "":
			h.State, h.ReasonCode, h.Description = m.health, "Instance", m.description
		case in == nil || in.State != "running":
			h.State, h.ReasonCode = "OutOfService", "Instance"
			h.Description = "Instance is in " + stateOf(in) + " state."
		case now.Sub(m.registeredAt) < s.opts.HealthyAfter:
			h.State, h.ReasonCode, h.Description = "OutOfService", "ELB", "Instance registration is still in progress."
		}
		out.States = append(out.States, h)
	}
	return out, nil
}

func stateOf(in *Instance) string {
	if in == nil {
		return "unknown"
	}
	return in.State
}

// ---------------------------------------------------------------------------
// ELBv2 target groups

type xTargetGroup struct {
	Arn        string `xml:"TargetGroupArn"`
	Name       string `xml:"TargetGroupName"`
	Protocol   string `xml:"Protocol"`
	Port       int    `xml:"Port"`
	TargetType string `xml:"TargetType"`
	VpcID      string `xml:"VpcId"`
}

type tgCreateResult struct {
	XMLName xml.Name       `xml:"CreateTargetGroupResult"`
	Groups  []xTargetGroup `xml:"TargetGroups>member"`
}

func (s *Server) tgCreate(p url.Values) (any, *apiError) {
	name := p.Get("Name")
	if name == "" {
		return nil, errorf("ValidationError", "Name is required")
	}
	typ := p.Get("TargetType")
	if typ == "" {
		typ = "instance"
	}
	if typ != "instance" && typ != "ip" {
		return nil, errorf("ValidationError", "target type %q is not supported by the fake (instance, ip)", typ)
	}
	port, _ := strconv.Atoi(p.Get("Port"))
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tg := range s.tgroups {
		if tg.name == name {
			return nil, errorf("DuplicateTargetGroupName", "A target group with the same name '%s' exists", name)
		}
	}
	tg := s.addTargetGroup(name, typ, port, DefaultDeregistrationDelay)
	return tgCreateResult{Groups: []xTargetGroup{{Arn: tg.arn, Name: name, Protocol: p.Get("Protocol"), Port: port,
		TargetType: typ, VpcID: DefaultVpcID}}}, nil
}

type xAttribute struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type tgAttributesResult struct {
	XMLName    xml.Name     `xml:"ModifyTargetGroupAttributesResult"`
	Attributes []xAttribute `xml:"Attributes>member"`
}

func (s *Server) tgModifyAttributes(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tg, aerr := s.targetGroup(p)
	if aerr != nil {
		return nil, aerr
	}
	keys := list(p, "Attributes.member", ".Key")
	for i, k := range keys {
		v := p.Get("Attributes.member." + strconv.Itoa(i+1) + ".Value")
		if k == "deregistration_delay.timeout_seconds" {
			secs, err := strconv.Atoi(v)
			if err != nil || secs < 0 || secs > 3600 {
				return nil, errorf("ValidationError", "deregistration_delay.timeout_seconds must be 0 to 3600, got %q", v)
			}
			tg.delay = time.Duration(secs) * time.Second
		}
	}
	return tgAttributesResult{Attributes: []xAttribute{{Key: "deregistration_delay.timeout_seconds",
		Value: strconv.Itoa(int(tg.delay / time.Second))}}}, nil
}

func (s *Server) targetGroup(p url.Values) (*targetGroup, *apiError) {
	tg := s.tgroups[p.Get("TargetGroupArn")]
	if tg == nil {
		return nil, errorf("TargetGroupNotFound", "One or more target groups not found")
	}
	return tg, nil
}

// targets parses Targets.member.N.Id / .Port with the group's default port.
func (s *Server) targets(p url.Values, tg *targetGroup) ([]targetKey, *apiError) {
	ids := list(p, "Targets.member", ".Id")
	if len(ids) == 0 {
		return nil, nil
	}
	out := make([]targetKey, 0, len(ids))
	for i, id := range ids {
		port := tg.port
		if v := p.Get("Targets.member." + strconv.Itoa(i+1) + ".Port"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return nil, errorf("ValidationError", "port %q of target %s is not 1-65535", v, id)
			}
			port = n
		}
		if port == 0 {
			return nil, errorf("ValidationError", "a port must be given for target %s: the target group has none", id)
		}
		out = append(out, targetKey{id, port})
	}
	return out, nil
}

type emptyResult struct{ XMLName xml.Name }

func (s *Server) tgRegister(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.expire()
	tg, aerr := s.targetGroup(p)
	if aerr != nil {
		return nil, aerr
	}
	keys, aerr := s.targets(p, tg)
	if aerr != nil {
		return nil, aerr
	}
	for _, k := range keys {
		switch tg.targetType {
		case "ip":
			if net.ParseIP(k.id) == nil {
				return nil, errorf("ValidationError", "'%s' is not a valid IP address", k.id)
			}
		default:
			if !s.instanceUsable(k.id) {
				return nil, errorf("InvalidTarget", "The following targets are not in a running state and cannot be registered: '%s'", k.id)
			}
		}
	}
	for _, k := range keys {
		if m := tg.targets[k]; m == nil || !m.deregAt.IsZero() {
			tg.targets[k] = &member{registeredAt: time.Now()}
		}
	}
	return emptyResult{XMLName: xml.Name{Local: "RegisterTargetsResult"}}, nil
}

func (s *Server) tgDeregister(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	tg, aerr := s.targetGroup(p)
	if aerr != nil {
		return nil, aerr
	}
	keys, aerr := s.targets(p, tg)
	if aerr != nil {
		return nil, aerr
	}
	for _, k := range keys {
		m := tg.targets[k]
		switch {
		case m == nil:
		case tg.delay <= 0:
			delete(tg.targets, k)
		case m.deregAt.IsZero():
			m.deregAt = time.Now()
		}
	}
	return emptyResult{XMLName: xml.Name{Local: "DeregisterTargetsResult"}}, nil
}

type tgHealthResult struct {
	XMLName      xml.Name        `xml:"DescribeTargetHealthResult"`
	Descriptions []xTargetHealth `xml:"TargetHealthDescriptions>member"`
}

type xTargetHealth struct {
	ID              string `xml:"Target>Id"`
	Port            int    `xml:"Target>Port"`
	HealthCheckPort string `xml:"HealthCheckPort"`
	State           string `xml:"TargetHealth>State"`
	Reason          string `xml:"TargetHealth>Reason,omitempty"`
	Description     string `xml:"TargetHealth>Description,omitempty"`
}

func (s *Server) tgDescribeHealth(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	s.expire()
	tg, aerr := s.targetGroup(p)
	if aerr != nil {
		return nil, aerr
	}
	keys, aerr := s.targets(p, tg)
	if aerr != nil {
		return nil, aerr
	}
	if len(keys) == 0 {
		for k := range tg.targets {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			return keys[i].id < keys[j].id || keys[i].id == keys[j].id && keys[i].port < keys[j].port
		})
	}
	out := tgHealthResult{}
	now := time.Now()
	for _, k := range keys {
		h := xTargetHealth{ID: k.id, Port: k.port, HealthCheckPort: strconv.Itoa(k.port), State: "healthy"}
		m := tg.targets[k]
		var in *Instance
		if tg.targetType == "instance" {
			in = s.instances[k.id]
		}
		switch {
		case m == nil:
			h.State, h.Reason, h.Description = "unused", "Target.NotRegistered", "Target is not registered to the target group"
		case !m.deregAt.IsZero():
			h.State, h.Reason, h.Description = "draining", "Target.DeregistrationInProgress", "Target deregistration is in progress"
		case m.health != "":
			h.State, h.Reason, h.Description = m.health, m.reason, m.description
		case tg.targetType == "instance" && (in == nil || in.State != "running"):
			h.State, h.Reason, h.Description = "unused", "Target.InvalidState", "Target is in the "+stateOf(in)+" state"
		case now.Sub(m.registeredAt) < s.opts.HealthyAfter:
			h.State, h.Reason, h.Description = "initial", "Elb.RegistrationInProgress", "Target registration is in progress"
		}
		out.Descriptions = append(out.Descriptions, h)
	}
	return out, nil
}
