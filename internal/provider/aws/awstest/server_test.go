package awstest

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// post sends a Query API call as the SDK does: a signed, form-encoded POST.
func post(t *testing.T, s *Server, signed bool, form url.Values) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if signed {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+AccessKeyID+"/20300101/"+Region+"/ec2/aws4_request, SignedHeaders=host, Signature=00")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestWireFormat checks the raw answers: EC2's and ELB's XML bodies, their
// error bodies and statuses, and ClientToken idempotency.
func TestWireFormat(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	run := url.Values{"Action": {"RunInstances"}, "Version": {ec2Version}, "ImageId": {DefaultImageID},
		"InstanceType": {"t3.micro"}, "MinCount": {"1"}, "MaxCount": {"1"}, "ClientToken": {"tok-1"},
		"TagSpecification.1.ResourceType": {"instance"}, "TagSpecification.1.Tag.1.Key": {"goscaler:node"},
		"TagSpecification.1.Tag.1.Value": {"web-1"}}
	cases := []struct {
		name    string
		signed  bool
		form    url.Values
		status  int
		content []string
	}{
		{"unsigned", false, run, 401, []string{"<Response><Errors><Error><Code>AuthFailure</Code>", "<RequestID>"}},
		{"run", true, run, 200, []string{`<RunInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>`,
			"<instancesSet><item><instanceId>i-", "<instanceState><code>0</code><name>pending</name></instanceState>",
			"<clientToken>tok-1</clientToken>", "<tagSet><item><key>goscaler:node</key><value>web-1</value></item></tagSet>"}},
		{"same token", true, run, 200, []string{"<instanceId>i-0000a000000000001</instanceId>"}},
		{"token reused with other parameters", true, with(run, "InstanceType", "t3.large"), 400,
			[]string{"<Code>IdempotentParameterMismatch</Code>"}},
		{"describe", true, url.Values{"Action": {"DescribeInstances"}, "Version": {ec2Version},
			"Filter.1.Name": {"tag:goscaler:node"}, "Filter.1.Value.1": {"web-1"}}, 200,
			[]string{"<DescribeInstancesResponse", "<reservationSet><item><reservationId>r-",
				"<instanceState><code>16</code><name>running</name></instanceState>", "<ipAddress>203.0."}},
		{"unknown instance", true, url.Values{"Action": {"TerminateInstances"}, "Version": {ec2Version},
			"InstanceId.1": {"i-0123456789abcdef0"}}, 400, []string{"<Code>InvalidInstanceID.NotFound</Code>"}},
		{"unknown AMI", true, with(with(run, "ImageId", "ami-0000000000000dead"), "ClientToken", "tok-2"), 400,
			[]string{"<Code>InvalidAMIID.NotFound</Code>", "ami-0000000000000dead"}},
		{"elbv2 error", true, url.Values{"Action": {"DescribeTargetHealth"}, "Version": {elbv2Version},
			"TargetGroupArn": {"arn:nope"}}, 400, []string{
			`<ErrorResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/"><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code>`,
			"<RequestId>"}},
		{"elb answer", true, url.Values{"Action": {"CreateLoadBalancer"}, "Version": {elbVersion}, "LoadBalancerName": {"lb1"}}, 200,
			[]string{`<CreateLoadBalancerResponse xmlns="http://elasticloadbalancing.amazonaws.com/doc/2012-06-01/"><CreateLoadBalancerResult><DNSName>lb1-`,
				"<ResponseMetadata><RequestId>"}},
		{"unknown action", true, url.Values{"Action": {"RebootInstances"}, "Version": {ec2Version}}, 400, []string{"<Code>InvalidAction</Code>"}},
	}
	for _, tc := range cases { // in order: they build on each other
		status, body := post(t, s, tc.signed, tc.form)
		if status != tc.status {
			t.Errorf("%s: HTTP %d, want %d: %s", tc.name, status, tc.status, body)
		}
		for _, c := range tc.content {
			if !strings.Contains(body, c) {
				t.Errorf("%s: body lacks %q:\n%s", tc.name, c, body)
			}
		}
	}
	if n := len(s.Live()); n != 1 {
		t.Errorf("%d live instances, want 1 (one token, one instance)", n)
	}
	calls := s.Calls()
	if len(calls) != len(cases) || calls[1].Action != "RunInstances" || calls[1].AccessKey != AccessKeyID ||
		calls[1].Region != Region || calls[1].Service != "ec2" {
		t.Errorf("calls %+v", calls)
	}
}

func with(v url.Values, k, val string) url.Values {
	out := cloneValues(v)
	out.Set(k, val)
	return out
}

// TestFaults: an injected error, a pure delay and a call that takes effect
// before its connection drops.
func TestFaults(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	run := url.Values{"Action": {"RunInstances"}, "Version": {ec2Version}, "ImageId": {DefaultImageID},
		"MinCount": {"1"}, "MaxCount": {"1"}}
	s.FailNext("RunInstances", 1, Fault{Code: "InsufficientInstanceCapacity", Message: "no t3.micro left"})
	if status, body := post(t, s, true, run); status != 500 || !strings.Contains(body, "no t3.micro left") {
		t.Errorf("capacity fault: HTTP %d %s", status, body)
	}
	if len(s.Instances()) != 0 {
		t.Error("a fault without Apply launched an instance")
	}
	s.FailNext("RunInstances", 1, Fault{Apply: true, Drop: true})
	req, _ := http.NewRequest(http.MethodPost, s.URL(), strings.NewReader(run.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20300101/us-east-1/ec2/aws4_request")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Error("a dropped call got an answer")
	}
	if len(s.Live()) != 1 {
		t.Errorf("an applied call must launch its instance: %+v", s.Instances())
	}
	if status, _ := post(t, s, true, url.Values{"Action": {"DescribeInstances"}, "Version": {ec2Version}}); status != 200 {
		t.Errorf("after the faults: HTTP %d", status)
	}
}
