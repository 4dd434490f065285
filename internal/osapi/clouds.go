package osapi

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"go.yaml.in/yaml/v3"
)

// credentials is what goscaler authenticates with, and where it came from.
type credentials struct {
	opts         gophercloud.AuthOptions
	region       string
	availability gophercloud.Availability
	tls          *tls.Config // nil: the system's defaults
	// source says where the credentials were read, for error messages
	// (never the credentials themselves).
	source string
}

// cloudEntry is one cloud of a clouds.yaml file: the keys of the OpenStack
// client configuration format (os-client-config) that goscaler reads. Other
// keys are ignored.
type cloudEntry struct {
	Auth         authInfo `yaml:"auth"`
	AuthType     string   `yaml:"auth_type"`
	RegionName   string   `yaml:"region_name"`
	Interface    string   `yaml:"interface"`
	EndpointType string   `yaml:"endpoint_type"`
	Verify       *bool    `yaml:"verify"`
	CACert       string   `yaml:"cacert"`
	Cert         string   `yaml:"cert"`
	Key          string   `yaml:"key"`
}

type authInfo struct {
	AuthURL                     string `yaml:"auth_url"`
	Token                       string `yaml:"token"`
	Username                    string `yaml:"username"`
	UserID                      string `yaml:"user_id"`
	Password                    string `yaml:"password"`
	ApplicationCredentialID     string `yaml:"application_credential_id"`
	ApplicationCredentialName   string `yaml:"application_credential_name"`
	ApplicationCredentialSecret string `yaml:"application_credential_secret"`
	SystemScope                 string `yaml:"system_scope"`
	ProjectName                 string `yaml:"project_name"`
	ProjectID                   string `yaml:"project_id"`
	TenantName                  string `yaml:"tenant_name"`
	TenantID                    string `yaml:"tenant_id"`
	UserDomainName              string `yaml:"user_domain_name"`
	UserDomainID                string `yaml:"user_domain_id"`
	ProjectDomainName           string `yaml:"project_domain_name"`
	ProjectDomainID             string `yaml:"project_domain_id"`
	DomainName                  string `yaml:"domain_name"`
	DomainID                    string `yaml:"domain_id"`
}

type cloudsFile struct {
	Clouds map[string]cloudEntry `yaml:"clouds"`
}

// cloudsLocations are where clouds.yaml is looked for, in order, as the
// OpenStack clients do: $OS_CLIENT_CONFIG_FILE, then ./clouds.yaml,
// $XDG_CONFIG_HOME/openstack (default ~/.config/openstack), /etc/openstack.
func cloudsLocations() []string {
	if p := os.Getenv("OS_CLIENT_CONFIG_FILE"); p != "" {
		return []string{p}
	}
	locs := []string{"clouds.yaml"}
	if cwd, err := os.Getwd(); err == nil {
		locs[0] = filepath.Join(cwd, "clouds.yaml")
	}
	userConfig := os.Getenv("XDG_CONFIG_HOME")
	if userConfig == "" {
		if home, err := os.UserHomeDir(); err == nil {
			userConfig = filepath.Join(home, ".config")
		}
	}
	if userConfig != "" {
		locs = append(locs, filepath.Join(userConfig, "openstack", "clouds.yaml"))
	}
	return append(locs, "/etc/openstack/clouds.yaml")
}

// yamlLine keeps the line of a YAML error and drops the rest, which may quote
// a value of the file (a password).
var yamlLine = regexp.MustCompile(`line (\d+)`)

func readClouds(path string) (cloudsFile, error) {
	var f cloudsFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, err
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		where := ""
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			where = " at line " + m[1]
		}
		return f, fmt.Errorf("%s is not a valid clouds.yaml%s: check its syntax and that every value is a string", path, where)
	}
	return f, nil
}

// loadCloud reads the entry name of clouds.yaml (the given file, or the first
// file found in the standard locations) and merges secure.yaml from the same
// directory over it, as the OpenStack clients do.
func loadCloud(name, file string) (cloudEntry, string, error) {
	locs := cloudsLocations()
	if file != "" {
		locs = []string{file}
	}
	var path string
	for _, p := range locs {
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return cloudEntry{}, "", fmt.Errorf("%w: cloud %q: no clouds.yaml found (looked in %s): write one there, set OS_CLIENT_CONFIG_FILE or clouds_file, or use OS_* variables without cloud",
			ErrConfig, name, strings.Join(locs, ", "))
	}
	f, err := readClouds(path)
	if err != nil {
		return cloudEntry{}, "", fmt.Errorf("%w: %w", ErrConfig, err)
	}
	entry, ok := f.Clouds[name]
	if !ok {
		known := slices.Sorted(maps.Keys(f.Clouds))
		return cloudEntry{}, "", fmt.Errorf("%w: cloud %q is not in %s (clouds there: %s)", ErrConfig, name, path, strings.Join(known, ", "))
	}
	secure := filepath.Join(filepath.Dir(path), "secure.yaml")
	if _, err := os.Stat(secure); err == nil {
		sf, err := readClouds(secure)
		if err != nil {
			return cloudEntry{}, "", fmt.Errorf("%w: %w", ErrConfig, err)
		}
		if s, ok := sf.Clouds[name]; ok {
			overlay(reflect.ValueOf(&entry).Elem(), reflect.ValueOf(s))
		}
	}
	return entry, fmt.Sprintf("cloud %q of %s", name, path), nil
}

// overlay sets every non-zero field of src on dst (structs of one type).
func overlay(dst, src reflect.Value) {
	for i := range src.NumField() {
		f := src.Field(i)
		switch {
		case f.Kind() == reflect.Struct:
			overlay(dst.Field(i), f)
		case !f.IsZero():
			dst.Field(i).Set(f)
		}
	}
}

// envCloud reads the OS_* variables that openrc files and the OpenStack
// clients use into a cloud entry. Unlike gophercloud's AuthOptionsFromEnv it
// knows OS_USER_DOMAIN_* and OS_PROJECT_DOMAIN_*, which the openrc files that
// Horizon writes rely on.
func envCloud() (cloudEntry, bool) {
	get := func(keys ...string) string {
		for _, k := range keys {
			if v := os.Getenv(k); v != "" {
				return v
			}
		}
		return ""
	}
	e := cloudEntry{
		Auth: authInfo{
			AuthURL:                     get("OS_AUTH_URL"),
			Token:                       get("OS_TOKEN", "OS_AUTH_TOKEN"),
			Username:                    get("OS_USERNAME"),
			UserID:                      get("OS_USER_ID", "OS_USERID"),
			Password:                    get("OS_PASSWORD"),
			ApplicationCredentialID:     get("OS_APPLICATION_CREDENTIAL_ID"),
			ApplicationCredentialName:   get("OS_APPLICATION_CREDENTIAL_NAME"),
			ApplicationCredentialSecret: get("OS_APPLICATION_CREDENTIAL_SECRET"),
			SystemScope:                 get("OS_SYSTEM_SCOPE"),
			ProjectName:                 get("OS_PROJECT_NAME", "OS_TENANT_NAME"),
			ProjectID:                   get("OS_PROJECT_ID", "OS_TENANT_ID"),
			UserDomainName:              get("OS_USER_DOMAIN_NAME"),
			UserDomainID:                get("OS_USER_DOMAIN_ID"),
			ProjectDomainName:           get("OS_PROJECT_DOMAIN_NAME"),
			ProjectDomainID:             get("OS_PROJECT_DOMAIN_ID"),
			DomainName:                  get("OS_DOMAIN_NAME"),
			DomainID:                    get("OS_DOMAIN_ID"),
		},
		RegionName: get("OS_REGION_NAME"),
		Interface:  get("OS_INTERFACE", "OS_ENDPOINT_TYPE"),
		CACert:     get("OS_CACERT"),
		Cert:       get("OS_CERT"),
		Key:        get("OS_KEY"),
	}
	if v := strings.ToLower(get("OS_INSECURE")); v == "true" || v == "1" || v == "yes" {
		f := false
		e.Verify = &f
	}
	return e, e.Auth.AuthURL != ""
}

// credentials turns a cloud entry into gophercloud's options, following the
// rules of gophercloud's clouds.Parse: the scope is the project (by ID, or by
// name in its domain), else the domain; the user's domain defaults to the
// domain.
func (e cloudEntry) credentials(source string) (credentials, error) {
	a := e.Auth
	coalesce := func(v ...string) string {
		for _, s := range v {
			if s != "" {
				return s
			}
		}
		return ""
	}
	projectName := coalesce(a.ProjectName, a.TenantName)
	projectID := coalesce(a.ProjectID, a.TenantID)
	var scope *gophercloud.AuthScope
	switch {
	case a.SystemScope != "":
		if a.SystemScope != "all" {
			return credentials{}, fmt.Errorf("%w: %s: system_scope %q: only \"all\" is supported", ErrConfig, source, a.SystemScope)
		}
		scope = &gophercloud.AuthScope{System: true}
	case projectID != "":
		scope = &gophercloud.AuthScope{ProjectID: projectID}
	case projectName != "":
		scope = &gophercloud.AuthScope{ProjectName: projectName,
			DomainID: coalesce(a.ProjectDomainID, a.DomainID), DomainName: coalesce(a.ProjectDomainName, a.DomainName)}
	case a.DomainID != "":
		scope = &gophercloud.AuthScope{DomainID: a.DomainID}
	case a.DomainName != "":
		scope = &gophercloud.AuthScope{DomainName: a.DomainName}
	}
	opts := gophercloud.AuthOptions{
		IdentityEndpoint:            a.AuthURL,
		Username:                    a.Username,
		UserID:                      a.UserID,
		Password:                    a.Password,
		DomainID:                    coalesce(a.UserDomainID, a.DomainID),
		DomainName:                  coalesce(a.UserDomainName, a.DomainName),
		TokenID:                     a.Token,
		Scope:                       scope,
		ApplicationCredentialID:     a.ApplicationCredentialID,
		ApplicationCredentialName:   a.ApplicationCredentialName,
		ApplicationCredentialSecret: a.ApplicationCredentialSecret,
		// A token of its own expires; gophercloud asks Keystone for a new one.
		AllowReauth: a.Token == "",
	}
	if opts.UserID != "" {
		// Keystone identifies the user by ID alone; a domain would be an error.
		opts.DomainID, opts.DomainName = "", ""
	}
	if opts.ApplicationCredentialID != "" {
		opts.Scope = nil // an application credential carries its own scope
		opts.DomainID, opts.DomainName = "", ""
	}
	var missing []string
	if opts.IdentityEndpoint == "" {
		missing = append(missing, "the Keystone URL (auth.auth_url, OS_AUTH_URL or auth_url)")
	}
	if opts.TokenID == "" && opts.ApplicationCredentialID == "" && opts.ApplicationCredentialName == "" {
		if opts.Username == "" && opts.UserID == "" {
			missing = append(missing, "a user (username or user_id)")
		}
		if opts.Password == "" {
			missing = append(missing, "a password")
		}
	}
	if (opts.ApplicationCredentialID != "" || opts.ApplicationCredentialName != "") && opts.ApplicationCredentialSecret == "" {
		missing = append(missing, "the application credential's secret")
	}
	if len(missing) > 0 {
		return credentials{}, fmt.Errorf("%w: %s lacks %s", ErrConfig, source, strings.Join(missing, ", "))
	}

	c := credentials{opts: opts, region: e.RegionName, source: source, availability: gophercloud.AvailabilityPublic}
	switch strings.TrimSuffix(coalesce(e.Interface, e.EndpointType), "URL") {
	case "", "public":
	case "internal":
		c.availability = gophercloud.AvailabilityInternal
	case "admin":
		c.availability = gophercloud.AvailabilityAdmin
	default:
		return credentials{}, fmt.Errorf("%w: %s: interface %q: use public, internal or admin", ErrConfig, source, coalesce(e.Interface, e.EndpointType))
	}
	if (e.Verify != nil && !*e.Verify) || e.CACert != "" || e.Cert != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if e.Verify != nil && !*e.Verify {
			tc.InsecureSkipVerify = true //nolint:gosec // the operator's explicit verify: false
		}
		if e.CACert != "" {
			pem, err := os.ReadFile(e.CACert)
			if err != nil {
				return credentials{}, fmt.Errorf("%w: %s: cacert: %w", ErrConfig, source, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return credentials{}, fmt.Errorf("%w: %s: cacert %s holds no PEM certificate", ErrConfig, source, e.CACert)
			}
			tc.RootCAs = pool
		}
		if e.Cert != "" || e.Key != "" {
			cert, err := tls.LoadX509KeyPair(e.Cert, e.Key)
			if err != nil {
				return credentials{}, fmt.Errorf("%w: %s: client certificate (cert, key): %w", ErrConfig, source, err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		c.tls = tc
	}
	return c, nil
}

// loadCredentials finds the credentials of a: the clouds.yaml entry named by
// a.Cloud (or $OS_CLOUD), else the OS_* variables. a.AuthURL and a.Region
// override what was read.
func (a Auth) loadCredentials() (credentials, error) {
	var (
		entry  cloudEntry
		source string
	)
	name := a.Cloud
	if name == "" {
		name = os.Getenv("OS_CLOUD")
	}
	if name != "" {
		var err error
		if entry, source, err = loadCloud(name, a.CloudsFile); err != nil {
			return credentials{}, err
		}
		// The variables that select a region or an interface apply to a
		// clouds.yaml entry too, as with the openstack command.
		if r := os.Getenv("OS_REGION_NAME"); r != "" {
			entry.RegionName = r
		}
		if i := os.Getenv("OS_INTERFACE"); i != "" {
			entry.Interface = i
		}
	} else {
		var ok bool
		entry, ok = envCloud()
		source = "the OS_* environment variables"
		if !ok && a.AuthURL == "" {
			return credentials{}, fmt.Errorf("%w: no OpenStack credentials: set cloud (an entry of clouds.yaml), or OS_CLOUD, or the OS_* variables (OS_AUTH_URL, OS_USERNAME, OS_PASSWORD, OS_PROJECT_NAME, …) in the server's environment", ErrConfig)
		}
	}
	if a.AuthURL != "" {
		entry.Auth.AuthURL = a.AuthURL
	}
	if a.Region != "" {
		entry.RegionName = a.Region
	}
	if a.Interface != "" {
		entry.Interface = a.Interface
	}
	return entry.credentials(source)
}

// ErrConfig marks a configuration problem: missing or refused credentials, an
// endpoint the catalog does not have, a name that matches nothing.
var ErrConfig = errors.New("bad OpenStack configuration")
