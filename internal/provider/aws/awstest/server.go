// Package awstest is an in-memory EC2, classic ELB and ELBv2 for tests, on a
// loopback HTTP server that speaks the real wire protocols: form-encoded
// Query API POSTs (Action=RunInstances&Version=2016-11-15&…), XML answers
// (<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">,
// <DescribeTargetHealthResponse><DescribeTargetHealthResult>…) and the
// services' error bodies (<Response><Errors><Error><Code> for EC2,
// <ErrorResponse><Error><Code> for ELB) with their HTTP statuses. The official
// SDK talks to it unchanged: point a client's BaseEndpoint at Server.URL.
//
// It keeps instances (with their tags, volumes and client tokens), launch
// templates, classic load balancers and target groups in memory, and behaves
// like AWS where goscaler depends on it:
//   - RunInstances honours ClientToken: the same token answers with the same
//     instance (whatever its state now), and IdempotentParameterMismatch when
//     the other parameters differ;
//   - AMIs, subnets, security groups, key pairs, instance profiles and launch
//     templates are checked (InvalidAMIID.NotFound, InvalidSubnetID.NotFound,
//     InvalidGroup.NotFound, …), an instance limit gives InstanceLimitExceeded;
//   - an instance is pending in the RunInstances answer and running from the
//     first DescribeInstances on (or after Options.PendingFor); its public IP
//     appears when it runs; a terminated instance is shutting-down, then
//     terminated, and stays visible;
//   - ELB and ELBv2 drain: a deregistered target is "draining" for the
//     group's deregistration delay (classic: "Instance deregistration
//     currently in progress." for the connection-draining timeout).
//
// Faults are injected per call (FailNext, Inject): an API error with its
// status, latency, a dropped connection, and a call that takes effect before
// its answer is lost — a crash between create and store. Every call is
// recorded (Calls) with the access key that signed it.
//
// Tests that should also run against another EC2-compatible endpoint (moto,
// LocalStack) use Setup: it starts this server unless GOSCALER_TEST_AWS_ENDPOINT
// names an external one.
package awstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Defaults the server knows from the start.
const (
	Region              = "us-east-1"
	DefaultImageID      = "ami-0a1b2c3d4e5f60001"
	DefaultSubnetID     = "subnet-0a1b2c3d4e5f60001"
	DefaultVpcID        = "vpc-0a1b2c3d4e5f60001"
	DefaultSecurityGrp  = "sg-0a1b2c3d4e5f60001"
	DefaultKeyName      = "goscaler-test"
	DefaultProfile      = "goscaler-test-profile"
	DefaultAZ           = "us-east-1a"
	DefaultInstanceType = "t3.micro"
	// AccountID owns every resource of the server.
	AccountID = "123456789012"
)

// API versions, which tell the services apart on one endpoint.
const (
	ec2Version   = "2016-11-15"
	elbVersion   = "2012-06-01"
	elbv2Version = "2015-12-01"
)

// Options shape the server's behaviour.
type Options struct {
	// PendingFor is how long a new instance stays pending; 0: it runs from
	// the first DescribeInstances after RunInstances.
	PendingFor time.Duration
	// ShuttingDownFor is how long a terminated instance is shutting-down; 0:
	// terminated from the first DescribeInstances after TerminateInstances.
	ShuttingDownFor time.Duration
	// NoPublicIP: instances get no public IP (a private subnet).
	NoPublicIP bool
	// PrivateIP gives the n-th instance's private IP (n from 1); default
	// 10.0.x.y.
	PrivateIP func(n int) string
	// PageSize is the most DescribeInstances returns per page (default 1000).
	PageSize int
	// InstanceLimit is how many pending or running instances the account may
	// have (0: no limit); beyond, RunInstances fails with InstanceLimitExceeded.
	InstanceLimit int
	// HealthyAfter is how long a registered ELBv2 target or ELB instance is
	// "initial"/"OutOfService" before it is healthy; 0: healthy at once.
	HealthyAfter time.Duration
}

// Call is one API call the server received.
type Call struct {
	Service string // "ec2", "elb" or "elbv2"
	Action  string
	Params  url.Values
	// AccessKey is the access key ID that signed the request ("" if unsigned).
	AccessKey string
	// Region is the region of the signature's credential scope.
	Region string
	// Attempt is the SDK's attempt number (amz-sdk-request), 0 if absent.
	Attempt int
	Time    time.Time
}

// Fault is what an injected failure does to one call.
type Fault struct {
	// Code is the API error code answered ("" for none).
	Code    string
	Message string
	// Status is the HTTP status of the error (default: the one AWS uses for
	// the code, 400 for client errors).
	Status int
	// Delay holds the answer back (or until the client gives up).
	Delay time.Duration
	// Drop closes the connection without an answer.
	Drop bool
	// Apply makes the call take effect before the fault is served: the
	// instance is launched, the target registered, but the client sees the
	// error, the delay or the lost connection.
	Apply bool
	// Then runs just before the fault is served (after the call took effect
	// with Apply): a test kills a server there, to crash between a create
	// and its store.
	Then func()
}

// Server is the fake. It is safe for concurrent use.
type Server struct {
	opts Options
	srv  *httptest.Server

	mu        sync.Mutex
	seq       int
	ipSeq     int
	instances map[string]*Instance // by ID
	order     []string
	tokens    map[string]*tokenEntry
	volumes   map[string]*Volume
	images    map[string]bool
	subnets   map[string]string // subnet → AZ
	groups    map[string]bool
	keys      map[string]bool
	profiles  map[string]bool
	templates map[string]*launchTemplate // by ID
	classic   map[string]*classicLB      // by name
	tgroups   map[string]*targetGroup    // by ARN
	calls     []Call
	failNext  map[string][]Fault
	hooks     []func(Call) *Fault
	reqSeq    int
}

// Instance is an EC2 instance as the fake holds it.
type Instance struct {
	ID, ImageID, InstanceType, SubnetID, KeyName, Profile string
	PrivateIP, PublicIP                                   string
	AZ                                                    string
	SecurityGroups                                        []string
	State                                                 string
	StateReason                                           string
	ClientToken                                           string
	UserData                                              string // base64, as sent
	LaunchTemplateID                                      string
	Tags                                                  map[string]string
	VolumeID                                              string
	LaunchTime                                            time.Time
	// stateSince is when State was entered.
	stateSince time.Time
	ipN        int
}

// Volume is an EBS volume, made with its instance.
type Volume struct {
	ID, InstanceID, State string
	Tags                  map[string]string
}

type tokenEntry struct {
	instanceID, reservationID, params string
}

type launchTemplate struct {
	ID, Name, ImageID, InstanceType string
}

// NewServer starts a server on 127.0.0.1; Close it when done.
func NewServer(opts Options) *Server {
	s := &Server{
		opts:      opts,
		instances: map[string]*Instance{},
		tokens:    map[string]*tokenEntry{},
		volumes:   map[string]*Volume{},
		images:    map[string]bool{DefaultImageID: true},
		subnets:   map[string]string{DefaultSubnetID: DefaultAZ},
		groups:    map[string]bool{DefaultSecurityGrp: true},
		keys:      map[string]bool{DefaultKeyName: true},
		profiles:  map[string]bool{DefaultProfile: true},
		templates: map[string]*launchTemplate{},
		classic:   map[string]*classicLB{},
		tgroups:   map[string]*targetGroup{},
		failNext:  map[string][]Fault{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Start is NewServer closed when t ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

// URL is the endpoint to give clients (endpoint_url).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// AddImage makes an AMI ID valid.
func (s *Server) AddImage(id string) { s.mu.Lock(); s.images[id] = true; s.mu.Unlock() }

// AddSubnet makes a subnet ID valid, in zone az.
func (s *Server) AddSubnet(id, az string) { s.mu.Lock(); s.subnets[id] = az; s.mu.Unlock() }

// AddSecurityGroup makes a security group ID valid.
func (s *Server) AddSecurityGroup(id string) { s.mu.Lock(); s.groups[id] = true; s.mu.Unlock() }

// SetInstanceLimit changes Options.InstanceLimit.
func (s *Server) SetInstanceLimit(n int) { s.mu.Lock(); s.opts.InstanceLimit = n; s.mu.Unlock() }

// FailNext makes the next n calls of action fail with f.
func (s *Server) FailNext(action string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.failNext[action] = append(s.failNext[action], f)
	}
}

// ClearFaults drops the faults FailNext queued and not served yet.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = map[string][]Fault{}
}

// Inject adds a hook that sees every call (after FailNext's faults) and
// returns the fault to serve, or nil to serve it normally.
func (s *Server) Inject(hook func(Call) *Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks = append(s.hooks, hook)
}

// Calls returns the calls received so far, oldest first.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Call, len(s.calls))
	copy(out, s.calls)
	return out
}

// CallsOf returns the calls of one action.
func (s *Server) CallsOf(action string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Action == action {
			out = append(out, c)
		}
	}
	return out
}

// Instances returns a copy of every instance ever launched (terminated ones
// too), in launch order.
func (s *Server) Instances() []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Instance, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.instances[id].clone())
	}
	return out
}

// Live returns the instances that are not shutting-down or terminated.
func (s *Server) Live() []Instance {
	var out []Instance
	for _, in := range s.Instances() {
		if in.State != "shutting-down" && in.State != "terminated" {
			out = append(out, in)
		}
	}
	return out
}

// Instance returns one instance by ID.
func (s *Server) Instance(id string) (Instance, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	in, ok := s.instances[id]
	if !ok {
		return Instance{}, false
	}
	return in.clone(), true
}

// Volumes returns every volume ever made.
func (s *Server) Volumes() []Volume {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	out := make([]Volume, 0, len(s.volumes))
	for _, v := range s.volumes {
		c := *v
		c.Tags = cloneTags(v.Tags)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// SetState moves an instance to state ("stopped", "terminated", …) as if
// AWS or someone outside goscaler did it; reason becomes its state reason.
func (s *Server) SetState(id, state, reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, ok := s.instances[id]
	if !ok {
		return false
	}
	s.setState(in, state, time.Now())
	in.StateReason = reason
	return true
}

func (in *Instance) clone() Instance {
	c := *in
	c.Tags = cloneTags(in.Tags)
	c.SecurityGroups = append([]string(nil), in.SecurityGroups...)
	return c
}

func cloneTags(t map[string]string) map[string]string {
	out := make(map[string]string, len(t))
	for k, v := range t {
		out[k] = v
	}
	return out
}

// ---------------------------------------------------------------------------
// Serving

// apiError is an error answer.
type apiError struct {
	status        int
	code, message string
}

func errorf(code, format string, args ...any) *apiError {
	return &apiError{code: code, message: fmt.Sprintf(format, args...)}
}

// statusFor is the HTTP status AWS answers a code with.
func statusFor(code string) int {
	switch code {
	case "InternalError", "InternalFailure", "InsufficientInstanceCapacity", "InsufficientHostCapacity",
		"InsufficientCapacity", "ServerInternal":
		return http.StatusInternalServerError
	case "RequestLimitExceeded", "Unavailable", "ServiceUnavailable":
		return http.StatusServiceUnavailable
	case "AuthFailure", "UnauthorizedOperation":
		return http.StatusForbidden
	default:
		return http.StatusBadRequest
	}
}

var credentialRe = regexp.MustCompile(`Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "the Query API takes POST", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := Call{Action: r.PostForm.Get("Action"), Params: cloneValues(r.PostForm), Time: time.Now()}
	switch r.PostForm.Get("Version") {
	case ec2Version:
		c.Service = "ec2"
	case elbVersion:
		c.Service = "elb"
	case elbv2Version:
		c.Service = "elbv2"
	}
	if m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		c.AccessKey, c.Region = m[1], m[2]
	}
	if a, ok := strings.CutPrefix(r.Header.Get("amz-sdk-request"), "attempt="); ok {
		a, _, _ = strings.Cut(a, ";")
		c.Attempt, _ = strconv.Atoi(a)
	}
	s.mu.Lock()
	s.calls = append(s.calls, c)
	var f *Fault
	if q := s.failNext[c.Action]; len(q) > 0 {
		f = &q[0]
		s.failNext[c.Action] = q[1:]
	}
	hooks := append([]func(Call) *Fault(nil), s.hooks...)
	s.mu.Unlock()
	for _, h := range hooks {
		if f != nil {
			break
		}
		f = h(c)
	}

	if f != nil && !f.Apply {
		if s.serveFault(w, r, c, f) {
			return
		}
	}
	var body []byte
	var aerr *apiError
	switch {
	case c.AccessKey == "":
		aerr = &apiError{status: http.StatusUnauthorized, code: "AuthFailure",
			message: "AWS was not able to validate the provided access credentials: the request is not signed"}
	case c.Service == "":
		aerr = errorf("InvalidAction", "unknown API version %q", r.PostForm.Get("Version"))
	default:
		body, aerr = s.dispatch(c)
	}
	if f != nil && f.Apply {
		if s.serveFault(w, r, c, f) {
			return
		}
	}
	if aerr != nil {
		s.writeError(w, c, aerr)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	_, _ = w.Write(body)
}

// serveFault serves f and reports whether the answer is done (false: a pure
// delay, serve the call normally).
func (s *Server) serveFault(w http.ResponseWriter, r *http.Request, c Call, f *Fault) bool {
	if f.Then != nil {
		f.Then()
	}
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true // the client gave up
		}
	}
	switch {
	case f.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // closes the connection too
	case f.Code != "":
		msg := f.Message
		if msg == "" {
			msg = "injected " + f.Code
		}
		s.writeError(w, c, &apiError{status: f.Status, code: f.Code, message: msg})
		return true
	}
	return false
}

func (s *Server) requestID() string {
	s.mu.Lock()
	s.reqSeq++
	n := s.reqSeq
	s.mu.Unlock()
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", n, n)
}

// ec2ErrorBody is EC2's error answer.
type ec2ErrorBody struct {
	XMLName   xml.Name `xml:"Response"`
	Code      string   `xml:"Errors>Error>Code"`
	Message   string   `xml:"Errors>Error>Message"`
	RequestID string   `xml:"RequestID"`
}

// queryErrorBody is the ELB services' error answer.
type queryErrorBody struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

func (s *Server) writeError(w http.ResponseWriter, c Call, e *apiError) {
	status := e.status
	if status == 0 {
		status = statusFor(e.code)
	}
	var v any
	if c.Service == "elb" || c.Service == "elbv2" {
		typ := "Sender"
		if status >= 500 {
			typ = "Receiver"
		}
		v = queryErrorBody{Xmlns: namespace(c.Service), Type: typ, Code: e.code, Message: e.message, RequestID: s.requestID()}
	} else {
		v = ec2ErrorBody{Code: e.code, Message: e.message, RequestID: s.requestID()}
	}
	b, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), b...))
}

func namespace(service string) string {
	switch service {
	case "elb":
		return "http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"
	case "elbv2":
		return "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"
	default:
		return "http://ec2.amazonaws.com/doc/2016-11-15/"
	}
}

func (s *Server) dispatch(c Call) ([]byte, *apiError) {
	var h func(url.Values) (any, *apiError)
	switch c.Service {
	case "ec2":
		h = map[string]func(url.Values) (any, *apiError){
			"RunInstances":         s.runInstances,
			"DescribeInstances":    s.describeInstances,
			"TerminateInstances":   s.terminateInstances,
			"StopInstances":        s.stopInstances,
			"DescribeVolumes":      s.describeVolumes,
			"CreateLaunchTemplate": s.createLaunchTemplate,
		}[c.Action]
	case "elb":
		h = map[string]func(url.Values) (any, *apiError){
			"CreateLoadBalancer":                  s.elbCreate,
			"ModifyLoadBalancerAttributes":        s.elbModifyAttributes,
			"RegisterInstancesWithLoadBalancer":   s.elbRegister,
			"DeregisterInstancesFromLoadBalancer": s.elbDeregister,
			"DescribeInstanceHealth":              s.elbDescribeHealth,
		}[c.Action]
	case "elbv2":
		h = map[string]func(url.Values) (any, *apiError){
			"CreateTargetGroup":           s.tgCreate,
			"ModifyTargetGroupAttributes": s.tgModifyAttributes,
			"RegisterTargets":             s.tgRegister,
			"DeregisterTargets":           s.tgDeregister,
			"DescribeTargetHealth":        s.tgDescribeHealth,
		}[c.Action]
	}
	if h == nil {
		return nil, errorf("InvalidAction", "the action %s is not valid for this web service (the fake %s knows a few actions only)", c.Action, c.Service)
	}
	v, aerr := h(c.Params)
	if aerr != nil {
		return nil, aerr
	}
	reqID := s.requestID()
	var b []byte
	var err error
	if c.Service == "ec2" {
		b, err = xml.Marshal(v)
		// EC2 answers carry their request ID inside the root element; the
		// handlers leave a placeholder.
		b = []byte(strings.Replace(string(b), "<requestId></requestId>", "<requestId>"+reqID+"</requestId>", 1))
	} else {
		b, err = xml.Marshal(queryResponse{
			XMLName:   xml.Name{Local: c.Action + "Response"},
			Xmlns:     namespace(c.Service),
			Result:    v,
			RequestID: reqID,
		})
	}
	if err != nil {
		return nil, &apiError{status: http.StatusInternalServerError, code: "InternalError", message: err.Error()}
	}
	return append([]byte(xml.Header), b...), nil
}

// queryResponse wraps an ELB answer: <XResponse><XResult>…</XResult>
// <ResponseMetadata><RequestId>. Result's XMLName names its element.
type queryResponse struct {
	XMLName   xml.Name
	Xmlns     string `xml:"xmlns,attr"`
	Result    any
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

// ---------------------------------------------------------------------------
// Query parameters

func cloneValues(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// list returns prefix.1, prefix.2, … until one is missing (EC2's flattened
// lists: "InstanceId.1"; the query protocol's: "Instances.member.1.InstanceId"
// with prefix "Instances.member" and suffix ".InstanceId").
func list(p url.Values, prefix, suffix string) []string {
	var out []string
	for i := 1; ; i++ {
		k := prefix + "." + strconv.Itoa(i) + suffix
		if _, ok := p[k]; !ok {
			return out
		}
		out = append(out, p.Get(k))
	}
}

// count returns how many prefix.N. groups exist (any key under them).
func count(p url.Values, prefix string) int {
	n := 0
	for k := range p {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(num); err == nil && i > n {
			n = i
		}
	}
	return n
}

// filters are DescribeX's Filter.N.Name / Filter.N.Value.M.
func filters(p url.Values) map[string][]string {
	out := map[string][]string{}
	for i := 1; i <= count(p, "Filter"); i++ {
		pre := "Filter." + strconv.Itoa(i)
		out[p.Get(pre+".Name")] = append(out[p.Get(pre+".Name")], list(p, pre+".Value", "")...)
	}
	return out
}

// matchTags reports whether tags pass the tag:K and tag-key filters.
func matchTags(f map[string][]string, tags map[string]string) bool {
	for name, values := range f {
		if key, ok := strings.CutPrefix(name, "tag:"); ok {
			v, has := tags[key]
			if !has || !contains(values, v) {
				return false
			}
		}
		if name == "tag-key" {
			found := false
			for _, k := range values {
				if _, has := tags[k]; has {
					found = true
				}
			}
			if !found {
				return false
			}
		}
	}
	return true
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ---------------------------------------------------------------------------
// Running against another endpoint

// Env variables that point Target at an external EC2-compatible endpoint.
const (
	EnvEndpoint      = "GOSCALER_TEST_AWS_ENDPOINT"
	EnvRegion        = "GOSCALER_TEST_AWS_REGION"
	EnvImageID       = "GOSCALER_TEST_AWS_IMAGE_ID"
	EnvSubnetID      = "GOSCALER_TEST_AWS_SUBNET_ID"
	EnvSecurityGroup = "GOSCALER_TEST_AWS_SECURITY_GROUP_ID"
	EnvInstanceType  = "GOSCALER_TEST_AWS_INSTANCE_TYPE"
	EnvVpcID         = "GOSCALER_TEST_AWS_VPC_ID"
)

// Env is where a test sends its AWS calls: the in-process fake (Fake set) or
// an external endpoint.
type Env struct {
	Endpoint, Region                                  string
	ImageID, SubnetID, SecurityGroup, InstType, VpcID string
	// Fake is the in-process server; nil for an external endpoint.
	Fake *Server
}

// Setup starts a fake (closed when t ends) unless GOSCALER_TEST_AWS_ENDPOINT
// is set, in which case the test talks to that endpoint with static fake
// credentials, and the AMI, subnet, security group and instance type come
// from GOSCALER_TEST_AWS_IMAGE_ID, …_SUBNET_ID, …_SECURITY_GROUP_ID,
// …_INSTANCE_TYPE and …_VPC_ID (the endpoint's defaults when unset).
func Setup(t testing.TB, opts Options) Env {
	t.Helper()
	if ep := os.Getenv(EnvEndpoint); ep != "" {
		e := Env{Endpoint: ep, Region: os.Getenv(EnvRegion), ImageID: os.Getenv(EnvImageID),
			SubnetID: os.Getenv(EnvSubnetID), SecurityGroup: os.Getenv(EnvSecurityGroup), InstType: os.Getenv(EnvInstanceType),
			VpcID: os.Getenv(EnvVpcID)}
		if e.Region == "" {
			e.Region = Region
		}
		if e.InstType == "" {
			e.InstType = DefaultInstanceType
		}
		return e
	}
	s := Start(t, opts)
	return Env{Endpoint: s.URL(), Region: Region, ImageID: DefaultImageID, SubnetID: DefaultSubnetID,
		SecurityGroup: DefaultSecurityGrp, InstType: DefaultInstanceType, VpcID: DefaultVpcID, Fake: s}
}

// RequireFake returns the in-process fake, skipping the test when it runs
// against an external endpoint (it injects faults or reads the fake's state).
func (e Env) RequireFake(t testing.TB) *Server {
	t.Helper()
	if e.Fake == nil {
		t.Skipf("needs the in-process fake (fault injection or its state): %s points at %s", EnvEndpoint, e.Endpoint)
	}
	return e.Fake
}
