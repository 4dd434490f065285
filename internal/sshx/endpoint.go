package sshx

import (
	"fmt"
	"net"
	"strconv"
)

// Node meta keys through which a provider tells how to reach a node over SSH
// when that differs from the node's address and the cluster's settings (the
// static provider sets them from its host list). They are stored with the
// node like any other provider detail.
const (
	MetaHost = "ssh_host"
	MetaPort = "ssh_port"
	MetaUser = "ssh_user"
)

// Endpoint is a host to connect to. A zero Port or an empty User means the
// pool's default.
type Endpoint struct {
	Host string
	Port int
	User string
}

// String writes the endpoint as user@host:port, leaving out what is unset.
func (e Endpoint) String() string {
	s := e.Host
	if e.Port != 0 {
		s = net.JoinHostPort(e.Host, strconv.Itoa(e.Port))
	}
	if e.User != "" {
		s = e.User + "@" + s
	}
	return s
}

// NodeEndpoint is the SSH endpoint of a node: the host, port and user its
// provider recorded in meta (MetaHost, MetaPort, MetaUser), else the host of
// its address (host:port where it serves) with the pool's default port and
// user.
func NodeEndpoint(address string, meta map[string]string) (Endpoint, error) {
	var ep Endpoint
	if h := meta[MetaHost]; h != "" {
		ep.Host = h
	} else if address != "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address // a bare host
		}
		ep.Host = host
	}
	if ep.Host == "" {
		return ep, fmt.Errorf("no SSH host: the node has no address yet")
	}
	if p := meta[MetaPort]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return ep, fmt.Errorf("node meta %s=%q is not a TCP port", MetaPort, p)
		}
		ep.Port = n
	}
	ep.User = meta[MetaUser]
	return ep, nil
}
