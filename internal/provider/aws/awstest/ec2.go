package awstest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

var (
	amiRe       = regexp.MustCompile(`^ami-[0-9a-f]{8,17}$`)
	subnetRe    = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	groupRe     = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	instanceRe  = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
	templateRe  = regexp.MustCompile(`^lt-[0-9a-f]{17}$`)
	instTypeRe  = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	stateCodes  = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
	maxUserData = 16384
)

const ec2Xmlns = "http://ec2.amazonaws.com/doc/2016-11-15/"

// advance moves instances along their life as time passes. The caller holds
// s.mu.
func (s *Server) advance() {
	now := time.Now()
	for _, id := range s.order {
		in := s.instances[id]
		age := now.Sub(in.stateSince)
		switch in.State {
		case "pending":
			if age >= s.opts.PendingFor {
				s.setState(in, "running", now)
			}
		case "shutting-down":
			if age >= s.opts.ShuttingDownFor {
				s.setState(in, "terminated", now)
			}
		case "stopping":
			s.setState(in, "stopped", now)
		}
	}
}

// setState moves an instance to state. The caller holds s.mu.
func (s *Server) setState(in *Instance, state string, now time.Time) {
	in.State, in.stateSince = state, now
	switch state {
	case "running":
		in.StateReason = ""
		if !s.opts.NoPublicIP && in.PublicIP == "" {
			in.PublicIP = fmt.Sprintf("203.0.%d.%d", 113+in.ipN/250%100, in.ipN%250+1)
		}
	case "stopped", "stopping":
		in.PublicIP = ""
	case "shutting-down", "terminated":
		in.PublicIP = ""
		if v := s.volumes[in.VolumeID]; v != nil {
			v.State = "deleted"
		}
		s.forgetTargets(in.ID)
	}
}

// paramsHash is what ClientToken idempotency compares: every parameter but
// the action, the version and the token itself.
func paramsHash(p url.Values) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		if k != "Action" && k != "Version" && k != "ClientToken" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%q\n", k, p[k])
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (s *Server) runInstances(p url.Values) (any, *apiError) {
	if p.Get("MinCount") == "" || p.Get("MaxCount") == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter MinCount and MaxCount")
	}
	minC, err1 := strconv.Atoi(p.Get("MinCount"))
	maxC, err2 := strconv.Atoi(p.Get("MaxCount"))
	if err1 != nil || err2 != nil || minC < 1 || maxC < minC {
		return nil, errorf("InvalidParameterValue", "MinCount and MaxCount must be whole numbers with 1 <= MinCount <= MaxCount")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()

	token := p.Get("ClientToken")
	hash := paramsHash(p)
	if token != "" {
		if e := s.tokens[token]; e != nil {
			if e.params != hash {
				return nil, errorf("IdempotentParameterMismatch",
					"The client token you have provided is associated with a resource that is already deleted, or its parameters do not match: %s", token)
			}
			return s.reservation(e.reservationID, []string{e.instanceID}), nil
		}
		if len(token) > 64 {
			return nil, errorf("InvalidParameterValue", "Value (%s) for parameter clientToken is invalid: it is longer than 64 characters", token)
		}
	}

	image, itype := p.Get("ImageId"), p.Get("InstanceType")
	var ltID string
	if id, name := p.Get("LaunchTemplate.LaunchTemplateId"), p.Get("LaunchTemplate.LaunchTemplateName"); id != "" || name != "" {
		lt, aerr := s.template(id, name, p.Get("LaunchTemplate.Version"))
		if aerr != nil {
			return nil, aerr
		}
		ltID = lt.ID
		if image == "" {
			image = lt.ImageID
		}
		if itype == "" {
			itype = lt.InstanceType
		}
	}
	if image == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter ImageId")
	}
	if !amiRe.MatchString(image) {
		return nil, errorf("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", image)
	}
	if !s.images[image] {
		return nil, errorf("InvalidAMIID.NotFound", "The image id '[%s]' does not exist", image)
	}
	if itype == "" {
		itype = "m1.small"
	}
	if !instTypeRe.MatchString(itype) {
		return nil, errorf("InvalidParameterValue", "Invalid value '%s' for InstanceType.", itype)
	}
	subnet := p.Get("SubnetId")
	if subnet == "" {
		subnet = DefaultSubnetID
	}
	if !subnetRe.MatchString(subnet) {
		return nil, errorf("InvalidSubnetID.Malformed", "Invalid id: \"%s\" (expecting \"subnet-...\")", subnet)
	}
	az, ok := s.subnets[subnet]
	if !ok {
		return nil, errorf("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", subnet)
	}
	groups := list(p, "SecurityGroupId", "")
	for _, g := range groups {
		if !groupRe.MatchString(g) {
			return nil, errorf("InvalidGroupId.Malformed", "Invalid id: \"%s\" (expecting \"sg-...\")", g)
		}
		if !s.groups[g] {
			return nil, errorf("InvalidGroup.NotFound", "The security group '%s' does not exist", g)
		}
	}
	if len(groups) == 0 {
		groups = []string{DefaultSecurityGrp}
	}
	key := p.Get("KeyName")
	if key != "" && !s.keys[key] {
		return nil, errorf("InvalidKeyPair.NotFound", "The key pair '%s' does not exist", key)
	}
	profile := p.Get("IamInstanceProfile.Name")
	if arn := p.Get("IamInstanceProfile.Arn"); arn != "" {
		_, profile, _ = strings.Cut(arn, ":instance-profile/")
	}
	if profile != "" && !s.profiles[profile] {
		return nil, errorf("InvalidParameterValue", "Value (%s) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name", profile)
	}
	userData := p.Get("UserData")
	if userData != "" {
		raw, err := base64.StdEncoding.DecodeString(userData)
		if err != nil {
			return nil, errorf("InvalidParameterValue", "Invalid BASE64 encoding of user data.")
		}
		if len(raw) > maxUserData {
			return nil, errorf("InvalidParameterValue", "User data is limited to %d bytes", maxUserData)
		}
	}
	tags := map[string]map[string]string{}
	for i := 1; i <= count(p, "TagSpecification"); i++ {
		pre := "TagSpecification." + strconv.Itoa(i)
		rt := p.Get(pre + ".ResourceType")
		switch rt {
		case "instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu":
		default:
			return nil, errorf("InvalidParameterValue", "'%s' is not a valid taggable resource type for this operation.", rt)
		}
		if tags[rt] == nil {
			tags[rt] = map[string]string{}
		}
		keys := list(p, pre+".Tag", ".Key")
		for j, k := range keys {
			if strings.HasPrefix(k, "aws:") {
				return nil, errorf("InvalidParameterValue", "Tag keys starting with 'aws:' are reserved for internal use")
			}
			tags[rt][k] = p.Get(pre + ".Tag." + strconv.Itoa(j+1) + ".Value")
		}
	}
	if lim := s.opts.InstanceLimit; lim > 0 {
		live := 0
		for _, in := range s.instances {
			if in.State == "pending" || in.State == "running" {
				live++
			}
		}
		if live+minC > lim {
			return nil, errorf("InstanceLimitExceeded",
				"You have requested more instances (%d) than your current instance limit of %d allows for the specified instance type. Please visit http://aws.amazon.com/contact-us/ec2-request to request an adjustment to this limit.",
				live+minC, lim)
		}
	}

	resID := "r-" + randomHex(8) + randomHex(1)[:1]
	now := time.Now()
	var ids []string
	for range maxC {
		s.seq++
		s.ipSeq++
		in := &Instance{
			ID: fmt.Sprintf("i-%017x", 0xa000000000000+s.seq), ImageID: image, InstanceType: itype, SubnetID: subnet,
			KeyName: key, Profile: profile, AZ: az, SecurityGroups: groups, ClientToken: token,
			UserData: userData, LaunchTemplateID: ltID, Tags: cloneTags(tags["instance"]), LaunchTime: now, ipN: s.ipSeq,
		}
		if s.opts.PrivateIP != nil {
			in.PrivateIP = s.opts.PrivateIP(s.ipSeq)
		} else {
			in.PrivateIP = fmt.Sprintf("10.0.%d.%d", s.ipSeq/250%250, s.ipSeq%250+4)
		}
		vol := &Volume{ID: fmt.Sprintf("vol-%017x", 0xb000000000000+s.seq), InstanceID: in.ID, State: "in-use",
			Tags: cloneTags(tags["volume"])}
		in.VolumeID = vol.ID
		s.volumes[vol.ID] = vol
		in.State, in.stateSince = "pending", now
		s.instances[in.ID] = in
		s.order = append(s.order, in.ID)
		ids = append(ids, in.ID)
	}
	if token != "" {
		s.tokens[token] = &tokenEntry{instanceID: ids[0], reservationID: resID, params: hash}
	}
	return s.reservation(resID, ids), nil
}

func (s *Server) template(id, name, version string) (*launchTemplate, *apiError) {
	var lt *launchTemplate
	if id != "" {
		if !templateRe.MatchString(id) {
			return nil, errorf("InvalidLaunchTemplateId.Malformed", "The specified ID for the launch template (%s) is not valid.", id)
		}
		lt = s.templates[id]
		if lt == nil {
			return nil, errorf("InvalidLaunchTemplateId.NotFound", "The specified launch template, with template ID %s, does not exist.", id)
		}
	} else {
		for _, t := range s.templates {
			if t.Name == name {
				lt = t
			}
		}
		if lt == nil {
			return nil, errorf("InvalidLaunchTemplateName.NotFoundException", "The specified launch template, with template name %s, does not exist.", name)
		}
	}
	switch version {
	case "", "$Latest", "$Default", "1":
	default:
		return nil, errorf("InvalidLaunchTemplateId.VersionNotFound", "Could not find launch template version %s for template %s", version, lt.ID)
	}
	return lt, nil
}

// runInstancesResponse is RunInstances' answer.
type runInstancesResponse struct {
	XMLName       xml.Name    `xml:"RunInstancesResponse"`
	Xmlns         string      `xml:"xmlns,attr"`
	RequestID     string      `xml:"requestId"`
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

type xState struct {
	Code int    `xml:"code"`
	Name string `xml:"name"`
}

type xTag struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

type xInstance struct {
	InstanceID     string        `xml:"instanceId"`
	ImageID        string        `xml:"imageId"`
	State          xState        `xml:"instanceState"`
	PrivateDNSName string        `xml:"privateDnsName"`
	DNSName        string        `xml:"dnsName"`
	Reason         string        `xml:"reason"`
	KeyName        string        `xml:"keyName,omitempty"`
	AmiLaunchIndex int           `xml:"amiLaunchIndex"`
	InstanceType   string        `xml:"instanceType"`
	LaunchTime     string        `xml:"launchTime"`
	AZ             string        `xml:"placement>availabilityZone"`
	SubnetID       string        `xml:"subnetId"`
	VpcID          string        `xml:"vpcId"`
	PrivateIP      string        `xml:"privateIpAddress,omitempty"`
	PublicIP       string        `xml:"ipAddress,omitempty"`
	Groups         []xGroup      `xml:"groupSet>item"`
	StateReason    *xStateReason `xml:"stateReason,omitempty"`
	RootDevice     string        `xml:"rootDeviceName"`
	BlockDevices   []xBDM        `xml:"blockDeviceMapping>item"`
	ClientToken    string        `xml:"clientToken,omitempty"`
	ProfileArn     string        `xml:"iamInstanceProfile>arn,omitempty"`
	Tags           []xTag        `xml:"tagSet>item"`
}

type xGroup struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

type xStateReason struct {
	Code    string `xml:"code"`
	Message string `xml:"message"`
}

type xBDM struct {
	DeviceName string `xml:"deviceName"`
	VolumeID   string `xml:"ebs>volumeId"`
	Status     string `xml:"ebs>status"`
	AttachTime string `xml:"ebs>attachTime"`
	DeleteOnTm bool   `xml:"ebs>deleteOnTermination"`
}

func awsTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func xmlTags(tags map[string]string) []xTag {
	out := make([]xTag, 0, len(tags))
	for k, v := range tags {
		out = append(out, xTag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

func (in *Instance) xml() xInstance {
	x := xInstance{
		InstanceID: in.ID, ImageID: in.ImageID, State: xState{Code: stateCodes[in.State], Name: in.State},
		KeyName: in.KeyName, InstanceType: in.InstanceType, LaunchTime: awsTime(in.LaunchTime), AZ: in.AZ,
		SubnetID: in.SubnetID, VpcID: DefaultVpcID, PrivateIP: in.PrivateIP, PublicIP: in.PublicIP,
		RootDevice: "/dev/xvda", ClientToken: in.ClientToken, Tags: xmlTags(in.Tags),
	}
	if in.State != "terminated" {
		x.PrivateDNSName = "ip-" + strings.ReplaceAll(in.PrivateIP, ".", "-") + ".ec2.internal"
		x.BlockDevices = []xBDM{{DeviceName: "/dev/xvda", VolumeID: in.VolumeID, Status: "attached",
			AttachTime: awsTime(in.LaunchTime), DeleteOnTm: true}}
		for _, g := range in.SecurityGroups {
			x.Groups = append(x.Groups, xGroup{ID: g, Name: g})
		}
	}
	if in.Profile != "" {
		x.ProfileArn = "arn:aws:iam::" + AccountID + ":instance-profile/" + in.Profile
	}
	if in.StateReason != "" {
		code, _, _ := strings.Cut(in.StateReason, ": ")
		x.StateReason = &xStateReason{Code: code, Message: in.StateReason}
		x.Reason = in.StateReason
	}
	return x
}

func (s *Server) reservation(resID string, ids []string) runInstancesResponse {
	r := runInstancesResponse{Xmlns: ec2Xmlns, ReservationID: resID, OwnerID: AccountID}
	for _, id := range ids {
		r.Instances = append(r.Instances, s.instances[id].xml())
	}
	return r
}

type describeInstancesResponse struct {
	XMLName      xml.Name       `xml:"DescribeInstancesResponse"`
	Xmlns        string         `xml:"xmlns,attr"`
	RequestID    string         `xml:"requestId"`
	Reservations []xReservation `xml:"reservationSet>item"`
	NextToken    string         `xml:"nextToken,omitempty"`
}

type xReservation struct {
	ReservationID string      `xml:"reservationId"`
	OwnerID       string      `xml:"ownerId"`
	Instances     []xInstance `xml:"instancesSet>item"`
}

// reservationOf finds the reservation an instance was launched in.
func (s *Server) reservationOf(id string) string {
	for _, e := range s.tokens {
		if e.instanceID == id {
			return e.reservationID
		}
	}
	return "r-" + strings.TrimPrefix(id, "i-")
}

func (s *Server) checkIDs(ids []string) *apiError {
	for _, id := range ids {
		if !instanceRe.MatchString(id) {
			return errorf("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
	}
	var missing []string
	for _, id := range ids {
		if s.instances[id] == nil {
			missing = append(missing, id)
		}
	}
	if len(missing) == 1 {
		return errorf("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", missing[0])
	}
	if len(missing) > 1 {
		return errorf("InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(missing, ", "))
	}
	return nil
}

func (s *Server) describeInstances(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	ids := list(p, "InstanceId", "")
	if aerr := s.checkIDs(ids); aerr != nil {
		return nil, aerr
	}
	f := filters(p)
	var match []*Instance
	for _, id := range s.order {
		in := s.instances[id]
		if len(ids) > 0 && !contains(ids, id) {
			continue
		}
		if v, ok := f["instance-state-name"]; ok && !contains(v, in.State) {
			continue
		}
		if v, ok := f["instance-id"]; ok && !contains(v, in.ID) {
			continue
		}
		if v, ok := f["client-token"]; ok && !contains(v, in.ClientToken) {
			continue
		}
		if v, ok := f["subnet-id"]; ok && !contains(v, in.SubnetID) {
			continue
		}
		if !matchTags(f, in.Tags) {
			continue
		}
		match = append(match, in)
	}
	size := s.opts.PageSize
	if size <= 0 {
		size = 1000
	}
	if mr, err := strconv.Atoi(p.Get("MaxResults")); err == nil && mr > 0 && mr < size {
		size = mr
	}
	start := 0
	if tok := p.Get("NextToken"); tok != "" {
		n, err := strconv.Atoi(strings.TrimPrefix(tok, "page-"))
		if err != nil || n < 0 || n > len(match) {
			return nil, errorf("InvalidParameterValue", "Invalid value '%s' for nextToken", tok)
		}
		start = n
	}
	end := min(start+size, len(match))
	out := describeInstancesResponse{Xmlns: ec2Xmlns}
	for _, in := range match[start:end] {
		res := s.reservationOf(in.ID)
		if k := len(out.Reservations); k > 0 && out.Reservations[k-1].ReservationID == res {
			out.Reservations[k-1].Instances = append(out.Reservations[k-1].Instances, in.xml())
			continue
		}
		out.Reservations = append(out.Reservations, xReservation{ReservationID: res, OwnerID: AccountID,
			Instances: []xInstance{in.xml()}})
	}
	if end < len(match) {
		out.NextToken = "page-" + strconv.Itoa(end)
	}
	return out, nil
}

type stateChangeResponse struct {
	XMLName   xml.Name       `xml:""`
	Xmlns     string         `xml:"xmlns,attr"`
	RequestID string         `xml:"requestId"`
	Changes   []xStateChange `xml:"instancesSet>item"`
}

type xStateChange struct {
	InstanceID string `xml:"instanceId"`
	Current    xState `xml:"currentState"`
	Previous   xState `xml:"previousState"`
}

func (s *Server) changeState(p url.Values, action string, next func(*Instance) string) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	ids := list(p, "InstanceId", "")
	if len(ids) == 0 {
		return nil, errorf("MissingParameter", "The request must contain the parameter InstanceId")
	}
	if aerr := s.checkIDs(ids); aerr != nil {
		return nil, aerr
	}
	out := stateChangeResponse{XMLName: xml.Name{Local: action + "Response"}, Xmlns: ec2Xmlns}
	now := time.Now()
	for _, id := range ids {
		in := s.instances[id]
		prev := in.State
		if st := next(in); st != "" && st != prev {
			s.setState(in, st, now)
			in.StateReason = "Client.UserInitiatedShutdown: User initiated shutdown"
		}
		out.Changes = append(out.Changes, xStateChange{InstanceID: id,
			Current: xState{Code: stateCodes[in.State], Name: in.State}, Previous: xState{Code: stateCodes[prev], Name: prev}})
	}
	return out, nil
}

func (s *Server) terminateInstances(p url.Values) (any, *apiError) {
	return s.changeState(p, "TerminateInstances", func(in *Instance) string {
		if in.State == "terminated" || in.State == "shutting-down" {
			return ""
		}
		return "shutting-down"
	})
}

func (s *Server) stopInstances(p url.Values) (any, *apiError) {
	var bad string
	out, aerr := s.changeState(p, "StopInstances", func(in *Instance) string {
		switch in.State {
		case "pending", "running":
			return "stopping"
		case "shutting-down", "terminated":
			bad = in.ID
		}
		return ""
	})
	if aerr == nil && bad != "" {
		return nil, errorf("IncorrectInstanceState", "This instance '%s' is not in a state from which it can be stopped.", bad)
	}
	return out, aerr
}

type describeVolumesResponse struct {
	XMLName   xml.Name  `xml:"DescribeVolumesResponse"`
	Xmlns     string    `xml:"xmlns,attr"`
	RequestID string    `xml:"requestId"`
	Volumes   []xVolume `xml:"volumeSet>item"`
}

type xVolume struct {
	VolumeID   string `xml:"volumeId"`
	Size       int    `xml:"size"`
	AZ         string `xml:"availabilityZone"`
	Status     string `xml:"status"`
	CreateTime string `xml:"createTime"`
	InstanceID string `xml:"attachmentSet>item>instanceId"`
	Tags       []xTag `xml:"tagSet>item"`
	VolumeType string `xml:"volumeType"`
}

func (s *Server) describeVolumes(p url.Values) (any, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.advance()
	ids := list(p, "VolumeId", "")
	for _, id := range ids {
		if v := s.volumes[id]; v == nil || v.State == "deleted" {
			return nil, errorf("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	f := filters(p)
	out := describeVolumesResponse{Xmlns: ec2Xmlns}
	keys := make([]string, 0, len(s.volumes))
	for k := range s.volumes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := s.volumes[k]
		if v.State == "deleted" || len(ids) > 0 && !contains(ids, v.ID) || !matchTags(f, v.Tags) {
			continue
		}
		if want, ok := f["attachment.instance-id"]; ok && !contains(want, v.InstanceID) {
			continue
		}
		in := s.instances[v.InstanceID]
		out.Volumes = append(out.Volumes, xVolume{VolumeID: v.ID, Size: 8, AZ: in.AZ, Status: v.State,
			CreateTime: awsTime(in.LaunchTime), InstanceID: v.InstanceID, Tags: xmlTags(v.Tags), VolumeType: "gp3"})
	}
	return out, nil
}

type createLaunchTemplateResponse struct {
	XMLName   xml.Name `xml:"CreateLaunchTemplateResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	RequestID string   `xml:"requestId"`
	ID        string   `xml:"launchTemplate>launchTemplateId"`
	Name      string   `xml:"launchTemplate>launchTemplateName"`
	Default   int      `xml:"launchTemplate>defaultVersionNumber"`
	Latest    int      `xml:"launchTemplate>latestVersionNumber"`
	Created   string   `xml:"launchTemplate>createTime"`
}

func (s *Server) createLaunchTemplate(p url.Values) (any, *apiError) {
	name := p.Get("LaunchTemplateName")
	if name == "" {
		return nil, errorf("MissingParameter", "The request must contain the parameter LaunchTemplateName")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.templates {
		if t.Name == name {
			return nil, errorf("InvalidLaunchTemplateName.AlreadyExistsException", "Launch template name already in use.")
		}
	}
	s.seq++
	lt := &launchTemplate{ID: fmt.Sprintf("lt-%017x", 0xc000000000000+s.seq), Name: name,
		ImageID: p.Get("LaunchTemplateData.ImageId"), InstanceType: p.Get("LaunchTemplateData.InstanceType")}
	s.templates[lt.ID] = lt
	return createLaunchTemplateResponse{Xmlns: ec2Xmlns, ID: lt.ID, Name: lt.Name, Default: 1, Latest: 1,
		Created: awsTime(time.Now())}, nil
}
