package webhook

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLength bounds a webhook URL.
const MaxURLLength = 2048

// forbiddenPrefixes are networks a webhook must never reach from the farm:
// the farm's own machine, private networks, link-local addresses (where
// cloud metadata services live), addresses that are not unicast, ranges
// that only exist on paper, and the IPv6 forms that carry an IPv4 address
// inside them (a gateway or tunnel on the path turns them into that IPv4
// address, which may be one of the farm's own). IPv4-mapped IPv6 addresses
// (::ffff:a.b.c.d) are the IPv4 address itself: Forbidden checks the IPv4
// address they hold against this list.
var forbiddenPrefixes = mustPrefixes(
	// IPv4
	"0.0.0.0/8",       // "this network"
	"10.0.0.0/8",      // private
	"100.64.0.0/10",   // carrier-grade NAT
	"127.0.0.0/8",     // loopback
	"169.254.0.0/16",  // link-local, cloud metadata
	"172.16.0.0/12",   // private
	"192.0.0.0/24",    // IETF protocol assignments (NAT64 discovery among them)
	"192.0.2.0/24",    // documentation (TEST-NET-1)
	"192.88.99.0/24",  // 6to4 relay anycast, deprecated: a relay to IPv6 addresses
	"192.168.0.0/16",  // private
	"198.18.0.0/15",   // benchmarking
	"198.51.100.0/24", // documentation (TEST-NET-2)
	"203.0.113.0/24",  // documentation (TEST-NET-3)
	"224.0.0.0/4",     // multicast
	"240.0.0.0/4",     // reserved, and the broadcast address 255.255.255.255

	// IPv6
	"::/128",          // unspecified
	"::1/128",         // loopback
	"::/96",           // IPv4-compatible (::a.b.c.d), deprecated; holds an IPv4 address
	"::ffff:0:0:0/96", // IPv4-translated (SIIT, ::ffff:0:a.b.c.d); holds an IPv4 address
	"64:ff9b::/96",    // NAT64, well-known prefix: maps to any IPv4 address, private ones too
	"64:ff9b:1::/48",  // NAT64, local use: the same, within a network
	"100::/64",        // discard-only
	"2001::/23",       // IETF protocol assignments: Teredo (2001::/32, holds IPv4 addresses), benchmarking (2001:2::/48), ORCHID
	"2001:db8::/32",   // documentation
	"2002::/16",       // 6to4: holds an IPv4 address (2002:a.b.c.d::)
	"3fff::/20",       // documentation
	"fc00::/7",        // unique local
	"fe80::/10",       // link-local
	"fec0::/10",       // site-local, deprecated
	"ff00::/8",        // multicast
)

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// forbiddenKinds names, in messages, what forbiddenPrefixes hold.
const forbiddenKinds = "a loopback, private, link-local, multicast, reserved or documentation address, or an IPv6 form that carries an IPv4 address"

// Forbidden reports whether ip is an address a webhook must not reach.
func Forbidden(ip net.IP) bool {
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return true
	}
	if addr.Is4In6() {
		addr = addr.Unmap()
	}
	for _, p := range forbiddenPrefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Resolver looks up a host's addresses; net.DefaultResolver is one.
type Resolver interface {
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
}

// CheckURL checks a receiver URL: http or https, a host, no credentials,
// a port (when it gives one) from 1 to 65535, and, unless allowPrivate,
// no address of the host in a forbidden network. The message of its
// error says what to fix.
func CheckURL(ctx context.Context, r Resolver, raw string, allowPrivate bool) error {
	if len(raw) > MaxURLLength {
		return fmt.Errorf("the URL is %d characters long; keep it under %d", len(raw), MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("the URL must start with https:// or http://, not %q", u.Scheme+":")
	}
	if u.User != nil {
		return fmt.Errorf("the URL must not carry a user name or password; receivers check the signature instead")
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("the URL has no host")
	}
	// url.Parse only checks that a port is digits; a port no receiver
	// can listen on would fail every delivery.
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("the port %s is not a port: give one from 1 to 65535, or none for the scheme's own", port)
		}
	}
	if allowPrivate {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if Forbidden(ip) {
			return fmt.Errorf("%s is %s, which webhooks may not reach; use a public address (or start serve with --webhook-allow-private in a lab)", host, forbiddenKinds)
		}
		return nil
	}
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		return fmt.Errorf("%s is this machine, which webhooks may not reach", host)
	}
	addrs, err := r.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("the host %s does not resolve: %v", host, err)
	}
	for _, a := range addrs {
		if Forbidden(a.IP) {
			return fmt.Errorf("the host %s resolves to %s, %s, which webhooks may not reach", host, a.IP, forbiddenKinds)
		}
	}
	return nil
}
