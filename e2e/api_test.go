package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAPIAuthAndErrors checks API tokens and the JSON errors of the REST API,
// and that check config refuses an API open beyond loopback without tokens.
func TestAPIAuthAndErrors(t *testing.T) {
	t.Parallel()
	dir := tempDir(t)
	dataDir := filepath.Join(dir, "data")
	name := uniqueName("api")
	cleanupNodes(t, name, dataDir)
	addr := freeAddr(t)
	token := randHex(16) // 32 characters
	cfg := writeConfig(t, dir, addr, dataDir, clusterSpec{Name: name, Min: 0, Max: 2, Desired: 0,
		ExtraServerSettings: fmt.Sprintf("  api_tokens: [%q]", token)})
	srv := startServer(t, cfg, addr, dataDir, token)

	anon := &apiClient{t: t, base: srv.api.base}
	wrong := &apiClient{t: t, base: srv.api.base, token: strings.Repeat("x", 32)}
	for _, c := range []struct {
		who string
		api *apiClient
	}{{"without a token", anon}, {"with a wrong token", wrong}} {
		code, body, err := c.api.do("GET", "/api/v1/clusters", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if code != http.StatusUnauthorized {
			t.Errorf("GET /api/v1/clusters %s: HTTP %d, want 401: %s", c.who, code, body)
		}
		wantJSONError(t, "GET /api/v1/clusters "+c.who, body, "unauthorized", "token")
	}

	var clusters []clusterView
	srv.api.must("GET", "/api/v1/clusters", nil, &clusters, http.StatusOK)
	if len(clusters) != 1 || clusters[0].Name != name {
		t.Errorf("GET /api/v1/clusters with the token = %+v, want cluster %s", clusters, name)
	}

	// /healthz needs no token.
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz without a token: %s, want 200", resp.Status)
	}

	// An unknown cluster is a JSON 404 that names it.
	code, body, err := srv.api.do("GET", "/api/v1/clusters/no-such-cluster", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusNotFound {
		t.Errorf("GET an unknown cluster: HTTP %d, want 404: %s", code, body)
	}
	wantJSONError(t, "GET an unknown cluster", body, "not_found", "no-such-cluster")

	// Scaling out of min..max is a JSON 422 that gives the bounds.
	code, body, err = srv.api.do("POST", "/api/v1/clusters/"+name+"/scale", map[string]int{"desired": 9}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if code != http.StatusUnprocessableEntity {
		t.Errorf("scale to 9 (max 2): HTTP %d, want 422: %s", code, body)
	}
	wantJSONError(t, "scale out of range", body, "invalid", "0..2")
	if c, ok := srv.api.cluster(name); !ok || c.Desired != 0 {
		t.Errorf("after a refused scale the cluster is %+v, want desired 0", c)
	}

	// The CLI sends the token too.
	code, out, errOut := runCLI(t, "--server", "http://"+addr, "--token", token, "-o", "json", "cluster", "list")
	if code != 0 {
		t.Errorf("goscaler cluster list with the token: exit %d: %s%s", code, out, errOut)
	} else if err := json.Unmarshal([]byte(out), &clusters); err != nil || len(clusters) != 1 {
		t.Errorf("goscaler cluster list -o json: %v: %s", err, out)
	}
	if code, out, errOut := runCLI(t, "--server", "http://"+addr, "-o", "json", "cluster", "list"); code == 0 {
		t.Errorf("goscaler cluster list without a token: exit 0, want an error: %s%s", out, errOut)
	} else if !strings.Contains(errOut, "token") {
		t.Errorf("goscaler cluster list without a token says nothing of the token: %s", errOut)
	}

	// Listening beyond loopback without tokens is refused.
	open := filepath.Join(dir, "open.yaml")
	src, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	openSrc := strings.Replace(string(src), fmt.Sprintf("  api_tokens: [%q]", token), "", 1)
	openSrc = strings.Replace(openSrc, fmt.Sprintf("listen: %q", addr), `listen: "0.0.0.0:18080"`, 1)
	if err := os.WriteFile(open, []byte(openSrc), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "check", "config", open)
	if code != 2 {
		t.Errorf("check config with listen 0.0.0.0 and no tokens: exit %d, want 2: %s%s", code, out, errOut)
	}
	want := fmt.Sprintf("%s:%d:", open, lineOf(t, openSrc, "0.0.0.0:18080"))
	if !strings.Contains(errOut, want) || !strings.Contains(errOut, "api_tokens") {
		t.Errorf("check config with listen 0.0.0.0 and no tokens: want %q and api_tokens in stderr:\n%s", want, errOut)
	}
}

// wantJSONError checks an error body: {"error": {"code": code, "message": …}}
// with a message holding word.
func wantJSONError(t *testing.T, what string, body []byte, code, word string) {
	t.Helper()
	var e apiError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Errorf("%s: the error is not JSON: %v: %s", what, err, body)
		return
	}
	if e.Error.Code != code {
		t.Errorf("%s: error code %q, want %q: %s", what, e.Error.Code, code, body)
	}
	if !strings.Contains(e.Error.Message, word) {
		t.Errorf("%s: error message %q does not mention %q", what, e.Error.Message, word)
	}
}
