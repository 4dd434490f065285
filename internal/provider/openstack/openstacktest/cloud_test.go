package openstacktest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// client talks to the fake with a token, as any OpenStack client would.
type client struct {
	t     *testing.T
	c     *Cloud
	token string
}

func login(t *testing.T, c *Cloud) *client {
	t.Helper()
	body := `{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "` + c.Username +
		`", "password": "` + c.Password + `", "domain": {"name": "Default"}}}},
		"scope": {"project": {"name": "` + c.Project + `", "domain": {"name": "Default"}}}}}`
	resp, err := http.Post(c.AuthURL()+"/auth/tokens", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		Token struct {
			Catalog []struct {
				Type      string `json:"type"`
				Endpoints []struct {
					URL string `json:"url"`
				} `json:"endpoints"`
			} `json:"catalog"`
		} `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 201 || resp.Header.Get("X-Subject-Token") == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	if len(tok.Token.Catalog) != 5 || tok.Token.Catalog[1].Endpoints[0].URL != c.ServiceURL(Compute) {
		t.Errorf("catalog %+v", tok.Token.Catalog)
	}
	return &client{t: t, c: c, token: resp.Header.Get("X-Subject-Token")}
}

func (cl *client) do(method, url, body string) (int, map[string]any) {
	cl.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		cl.t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", cl.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(b, &out)
	return resp.StatusCode, out
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	c := New()
	defer c.Close()
	resp, err := http.Post(c.AuthURL()+"/auth/tokens", "application/json",
		strings.NewReader(`{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "demo", "password": "wrong", "domain": {"name": "Default"}}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a wrong password: %d", resp.StatusCode)
	}
	cl := login(t, c)
	if code, _ := cl.do("GET", c.ServiceURL(Compute)+"/servers", ""); code != 200 {
		t.Errorf("with the token: %d", code)
	}
	c.ExpireTokens()
	code, body := cl.do("GET", c.ServiceURL(Compute)+"/servers", "")
	if code != 401 || body["unauthorized"] == nil {
		t.Errorf("with an expired token: %d %v", code, body)
	}
}

func TestServerLifeAndPaging(t *testing.T) {
	t.Parallel()
	c := New()
	defer c.Close()
	f := c.AddFlavor("m1")
	im := c.AddImage("img")
	n := c.AddNetwork("private", "10.9.0.0/24")
	var active atomic.Int32
	c.OnServerActive(func(s Server) {
		if s.FixedIPs["private"] == "" {
			t.Errorf("ACTIVE without an address: %+v", s)
		}
		active.Add(1)
	})
	c.SetBuildTime(50 * time.Millisecond)
	c.SetPageSize(2)
	cl := login(t, c)
	var ids []string
	for i := range 3 {
		body := `{"server": {"name": "s` + string(rune('0'+i)) + `", "flavorRef": "` + f.ID + `", "imageRef": "` + im.ID +
			`", "networks": [{"uuid": "` + n.ID + `"}], "metadata": {"k": "v"}}}`
		code, out := cl.do("POST", c.ServiceURL(Compute)+"/servers", body)
		if code != 202 {
			t.Fatalf("create: %d %v", code, out)
		}
		ids = append(ids, out["server"].(map[string]any)["id"].(string))
	}
	_, out := cl.do("GET", c.ServiceURL(Compute)+"/servers/"+ids[0], "")
	if s := out["server"].(map[string]any); s["status"] != "BUILD" || len(s["addresses"].(map[string]any)) != 0 {
		t.Errorf("a new server: %v", s)
	}
	time.Sleep(60 * time.Millisecond)
	_, out = cl.do("GET", c.ServiceURL(Compute)+"/servers/detail", "")
	if len(out["servers"].([]any)) != 2 || out["servers_links"] == nil || active.Load() != 3 {
		t.Fatalf("first page: %v (active hooks %d)", out, active.Load())
	}
	next := out["servers_links"].([]any)[0].(map[string]any)["href"].(string)
	_, out = cl.do("GET", next, "")
	if len(out["servers"].([]any)) != 1 || out["servers_links"] != nil {
		t.Errorf("second page: %v", out)
	}
	code, out := cl.do("POST", c.ServiceURL(Compute)+"/servers", `{"server": {"name": "x", "flavorRef": "nope", "imageRef": "`+im.ID+`"}}`)
	if code != 400 || !strings.Contains(out["badRequest"].(map[string]any)["message"].(string), "Flavor nope could not be found") {
		t.Errorf("unknown flavor: %d %v", code, out)
	}
	if code, _ := cl.do("DELETE", c.ServiceURL(Compute)+"/servers/"+ids[0], ""); code != 204 {
		t.Errorf("delete: %d", code)
	}
	code, out = cl.do("GET", c.ServiceURL(Compute)+"/servers/"+ids[0], "")
	if code != 404 || out["itemNotFound"] == nil {
		t.Errorf("a deleted server: %d %v", code, out)
	}
}

func TestInjection(t *testing.T) {
	t.Parallel()
	c := New()
	defer c.Close()
	cl := login(t, c)
	url := c.ServiceURL(Compute) + "/flavors/detail"

	inj := c.Inject(Fault{Service: Compute, Path: "^/flavors", Times: 2, Status: 429, Header: http.Header{"Retry-After": []string{"3"}}})
	for i, want := range []int{429, 429, 200} {
		if code, _ := cl.do("GET", url, ""); code != want {
			t.Errorf("request %d: %d, want %d", i, code, want)
		}
	}
	if inj.Hits() != 2 {
		t.Errorf("hits %d", inj.Hits())
	}

	hang := c.Inject(Fault{Service: Compute, Path: "^/flavors", Hang: true})
	got := make(chan int, 1)
	go func() { code, _ := cl.do("GET", url, ""); got <- code }()
	select {
	case code := <-got:
		t.Fatalf("a hanging request answered %d", code)
	case <-time.After(50 * time.Millisecond):
	}
	hang.Release()
	if code := <-got; code != 200 {
		t.Errorf("released: %d", code)
	}

	// Go's transport sends a GET again once on a dropped keep-alive
	// connection: drop every one.
	drop := c.Inject(Fault{Service: Compute, Path: "^/flavors", Drop: true})
	if code, _ := cl.do("GET", url, ""); code != 0 {
		t.Errorf("a dropped connection answered %d", code)
	}
	drop.Release()

	c.SetLatency(60 * time.Millisecond)
	start := time.Now()
	if code, _ := cl.do("GET", url, ""); code != 200 || time.Since(start) < 60*time.Millisecond {
		t.Errorf("with 60ms of latency: %d after %s", code, time.Since(start))
	}
	c.SetLatency(0)

	// After: the change is made, the answer is replaced.
	lbPool := c.AddLoadBalancer("lb", "pool")
	c.Inject(Fault{Service: LoadBalancer, Method: "POST", Times: 1, After: true, Status: 500})
	code, _ := cl.do("POST", c.ServiceURL(LoadBalancer)+"/v2.0/lbaas/pools/"+lbPool.ID+"/members",
		`{"member": {"address": "10.0.0.5", "protocol_port": 80}}`)
	if code != 500 || len(c.Members(lbPool.ID)) != 1 {
		t.Errorf("after-fault: %d, members %+v", code, c.Members(lbPool.ID))
	}
	if n := c.Count(LoadBalancer, "POST", "/members$"); n != 1 {
		t.Errorf("%d member creations recorded", n)
	}
}

func TestOctaviaImmutable(t *testing.T) {
	t.Parallel()
	c := New()
	defer c.Close()
	c.SetPendingTime(time.Hour)
	p := c.AddLoadBalancer("lb", "pool")
	cl := login(t, c)
	add := func(addr string) (int, map[string]any) {
		return cl.do("POST", c.ServiceURL(LoadBalancer)+"/v2.0/lbaas/pools/"+p.ID+"/members",
			`{"member": {"address": "`+addr+`", "protocol_port": 80, "weight": 0}}`)
	}
	if code, out := add("10.0.0.1"); code != 201 || out["member"].(map[string]any)["weight"].(float64) != 0 {
		t.Fatalf("first member: %d %v", code, out)
	}
	code, out := add("10.0.0.2")
	if code != 409 || !strings.Contains(out["faultstring"].(string), "is immutable") {
		t.Errorf("while PENDING_UPDATE: %d %v", code, out)
	}
	_, out = cl.do("GET", c.ServiceURL(LoadBalancer)+"/v2.0/lbaas/loadbalancers/"+p.LoadBalancerID, "")
	if out["loadbalancer"].(map[string]any)["provisioning_status"] != "PENDING_UPDATE" {
		t.Errorf("load balancer %v", out)
	}
	c.SetLoadBalancerStatus(p.LoadBalancerID, "ACTIVE")
	if code, out := add("10.0.0.1"); code != 409 || !strings.Contains(out["faultstring"].(string), "already using ip 10.0.0.1") {
		t.Errorf("a duplicate member: %d %v", code, out)
	}
	if ms := c.Members(p.ID); len(ms) != 1 {
		t.Errorf("members: %+v", ms)
	}
}
