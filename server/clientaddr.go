package server

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// clientAddrs finds the address a request came from, for the per-address
// login throttle and the logs. Without trusted proxies it is the TCP peer.
// When the peer is a trusted proxy, it is the rightmost address of
// X-Forwarded-For that is not a trusted proxy: each proxy appends the
// address it received the request from, so that hop was written by a
// proxy we trust, while everything left of it may be made up by the
// client. No other header (X-Real-IP, Forwarded) is read: a proxy that
// does not set it would pass the client's own value through.
type clientAddrs struct {
	trusted []netip.Prefix
}

// newClientAddrs parses the trusted proxies: addresses or CIDRs.
func newClientAddrs(trusted []string) (clientAddrs, error) {
	var a clientAddrs
	for _, t := range trusted {
		t = strings.TrimSpace(t)
		p, err := netip.ParsePrefix(t)
		if err != nil {
			ip, ierr := netip.ParseAddr(t)
			if ierr != nil {
				return clientAddrs{}, fmt.Errorf("trusted proxy %q is not an IP address or CIDR", t)
			}
			ip = ip.Unmap().WithZone("")
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		a.trusted = append(a.trusted, p.Masked())
	}
	return a, nil
}

func (a clientAddrs) isTrusted(ip netip.Addr) bool {
	for _, p := range a.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// of returns the client address of r.
func (a clientAddrs) of(r *http.Request) string {
	peer, ok := parseHop(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if !a.isTrusted(peer) {
		return peer.String()
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return peer.String()
	}
	hops := strings.Split(strings.Join(xff, ","), ",")
	nearest := peer
	for i := len(hops) - 1; i >= 0; i-- {
		ip, ok := parseHop(hops[i])
		if !ok {
			// A trusted proxy wrote what is not an address: the nearest
			// hop known is as far as the chain can be followed.
			break
		}
		if !a.isTrusted(ip) {
			return ip.String()
		}
		nearest = ip
	}
	return nearest.String()
}

// parseHop reads one address as proxies write them: "192.0.2.1",
// "192.0.2.1:4711", "2001:db8::1" or "[2001:db8::1]:4711".
func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	ip, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}, false
		}
		ip = ap.Addr()
	}
	return ip.Unmap().WithZone(""), true
}
