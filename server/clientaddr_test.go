package server

import (
	"net/http/httptest"
	"testing"
)

func TestClientAddress(t *testing.T) {
	tests := map[string]struct {
		trusted []string
		peer    string
		xff     []string // X-Forwarded-For header lines
		realIP  string
		want    string
	}{
		"no proxies: the peer":                  {peer: "203.0.113.9:4711", xff: []string{"198.51.100.7"}, want: "203.0.113.9"},
		"an untrusted peer's header is ignored": {trusted: []string{"10.0.0.0/8"}, peer: "203.0.113.9:4711", xff: []string{"198.51.100.7"}, want: "203.0.113.9"},
		"a trusted peer without the header":     {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:4711", want: "10.0.0.2"},
		"the hop the proxy appended":            {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		"made-up hops left of it are ignored":   {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"1.2.3.4, 5.6.7.8, 198.51.100.7"}, want: "198.51.100.7"},
		"trusted hops are skipped":              {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"198.51.100.7, 10.1.1.1, 10.2.2.2"}, want: "198.51.100.7"},
		"header lines are one list":             {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"1.2.3.4", "198.51.100.7, 10.1.1.1"}, want: "198.51.100.7"},
		"a hop with a port":                     {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"198.51.100.7:4711"}, want: "198.51.100.7"},
		"IPv6 hops":                             {trusted: []string{"fd00::/8"}, peer: "[fd00::2]:1", xff: []string{"2001:db8::1, [2001:db8::2]:80"}, want: "2001:db8::2"},
		"IPv4 in IPv6":                          {trusted: []string{"10.0.0.0/8"}, peer: "[::ffff:10.0.0.2]:1", xff: []string{"::ffff:198.51.100.7"}, want: "198.51.100.7"},
		"a single trusted address":              {trusted: []string{"10.0.0.2"}, peer: "10.0.0.2:1", xff: []string{"198.51.100.7"}, want: "198.51.100.7"},
		"garbage behind trusted hops: the nearest known": {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"198.51.100.7, unknown, 10.1.1.1"},
			want: "10.1.1.1"},
		"only trusted hops: the farthest":     {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{"10.3.3.3, 10.1.1.1"}, want: "10.3.3.3"},
		"X-Real-IP is never read":             {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", realIP: "198.51.100.7", want: "10.0.0.2"},
		"an empty header from a trusted peer": {trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2:1", xff: []string{""}, want: "10.0.0.2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a, err := newClientAddrs(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.peer
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if tc.realIP != "" {
				r.Header.Set("X-Real-IP", tc.realIP)
			}
			if got := a.of(r); got != tc.want {
				t.Fatalf("client address %q, want %q", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"proxy.internal", "10.0.0.0/33", ""} {
		if _, err := newClientAddrs([]string{bad}); err == nil {
			t.Errorf("trusted proxy %q accepted", bad)
		}
	}
}
