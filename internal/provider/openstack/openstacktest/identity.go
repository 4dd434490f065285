package openstacktest

import (
	"net/http"
	"time"
)

func (c *Cloud) routeIdentity(mux *http.ServeMux) {
	versions := func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusMultipleChoices, map[string]any{"versions": map[string]any{"values": []any{
			map[string]any{"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
				"links":       []any{map[string]any{"rel": "self", "href": c.AuthURL() + "/"}},
				"media-types": []any{map[string]any{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}}},
		}}})
	}
	mux.HandleFunc("GET /identity", versions)
	mux.HandleFunc("GET /identity/{$}", versions)
	mux.HandleFunc("GET /identity/v3/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"version": map[string]any{"id": "v3.14", "status": "stable",
			"links": []any{map[string]any{"rel": "self", "href": c.AuthURL() + "/"}}}})
	})
	mux.HandleFunc("POST /identity/v3/auth/tokens", c.issueToken)
	mux.HandleFunc("GET /identity/v3/auth/tokens", func(w http.ResponseWriter, r *http.Request) {
		tok := r.Header.Get("X-Subject-Token")
		if !c.validToken(r.Header.Get("X-Auth-Token")) || !c.validToken(tok) {
			writeError(w, Identity, http.StatusNotFound, "Could not find token.")
			return
		}
		c.writeToken(w, http.StatusOK, tok, []string{"token"})
	})
}

type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password struct {
				User struct {
					ID       string `json:"id"`
					Name     string `json:"name"`
					Password string `json:"password"`
					Domain   struct {
						ID   string `json:"id"`
						Name string `json:"name"`
					} `json:"domain"`
				} `json:"user"`
			} `json:"password"`
			Token struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope *struct {
			Project *struct {
				ID     string `json:"id"`
				Name   string `json:"name"`
				Domain struct {
					ID   string `json:"id"`
					Name string `json:"name"`
				} `json:"domain"`
			} `json:"project"`
		} `json:"scope"`
	} `json:"auth"`
}

// issueToken is POST /v3/auth/tokens: the password of the fake's user, or a
// valid token, scoped to its project.
func (c *Cloud) issueToken(w http.ResponseWriter, r *http.Request) {
	var req authRequest
	if !readJSON(w, r, Identity, &req) {
		return
	}
	id := req.Auth.Identity
	ok := false
	for _, m := range id.Methods {
		switch m {
		case "password":
			u := id.Password.User
			userOK := (u.ID != "" && u.ID == c.UserID) ||
				(u.Name == c.Username && (u.Domain.Name == c.Domain || u.Domain.ID == "default" || u.Domain.ID == c.Domain))
			ok = userOK && u.Password == c.Password
		case "token":
			ok = c.validToken(id.Token.ID)
		}
	}
	if !ok {
		writeError(w, Identity, http.StatusUnauthorized, "The request you have made requires authentication.")
		return
	}
	if s := req.Auth.Scope; s != nil && s.Project != nil {
		p := s.Project
		if (p.ID != "" && p.ID != c.ProjectID) || (p.ID == "" && p.Name != c.Project) {
			writeError(w, Identity, http.StatusUnauthorized, "The request you have made requires authentication.")
			return
		}
	}
	tok := "gAAAA" + newHex(24)
	c.mu.Lock()
	c.tokens[tok] = time.Now().Add(c.ttl)
	c.mu.Unlock()
	c.writeToken(w, http.StatusCreated, tok, id.Methods)
}

func (c *Cloud) writeToken(w http.ResponseWriter, status int, tok string, methods []string) {
	c.mu.Lock()
	exp := c.tokens[tok]
	c.mu.Unlock()
	endpoint := func(service string) map[string]any {
		var eps []any
		for _, iface := range []string{"public", "internal", "admin"} {
			eps = append(eps, map[string]any{"id": newHex(16), "interface": iface, "region": c.Region,
				"region_id": c.Region, "url": c.ServiceURL(service)})
		}
		return map[string]any{"id": newHex(16), "type": service, "name": service, "endpoints": eps}
	}
	domain := map[string]any{"id": "default", "name": c.Domain}
	w.Header().Set("X-Subject-Token", tok)
	writeJSON(w, status, map[string]any{"token": map[string]any{
		"methods":    methods,
		"expires_at": exp.UTC().Format("2006-01-02T15:04:05.000000Z"),
		"issued_at":  time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"),
		"user":       map[string]any{"id": c.UserID, "name": c.Username, "domain": domain, "password_expires_at": nil},
		"project":    map[string]any{"id": c.ProjectID, "name": c.Project, "domain": domain},
		"roles":      []any{map[string]any{"id": newHex(16), "name": "member"}, map[string]any{"id": newHex(16), "name": "reader"}},
		"catalog": []any{endpoint(Identity), endpoint(Compute), endpoint(Network), endpoint(Image),
			endpoint(LoadBalancer)},
	}})
}

func (c *Cloud) validToken(tok string) bool {
	if tok == "" {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.tokens[tok]
	return ok && time.Now().Before(exp)
}
