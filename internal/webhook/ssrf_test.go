package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/renderfarm/renderfarm/internal/webhook"
)

// blockedForms are addresses a webhook must never reach, named by what
// they are, in the forms an attacker would try: each range's plain members,
// and the IPv6 forms that carry a private IPv4 address inside them.
var blockedForms = []struct{ name, ip string }{
	{"loopback", "127.0.0.1"},
	{"loopback elsewhere in 127/8", "127.255.255.254"},
	{"this network", "0.0.0.0"},
	{"private 10/8", "10.1.2.3"},
	{"private 172.16/12", "172.31.255.255"},
	{"private 192.168/16", "192.168.1.10"},
	{"carrier-grade NAT", "100.64.0.1"},
	{"cloud metadata", "169.254.169.254"},
	{"IETF protocol assignments, NAT64 discovery", "192.0.0.170"},
	{"documentation TEST-NET-1", "192.0.2.1"},
	{"6to4 relay anycast", "192.88.99.1"},
	{"benchmarking", "198.18.0.1"},
	{"documentation TEST-NET-2", "198.51.100.7"},
	{"documentation TEST-NET-3", "203.0.113.9"},
	{"multicast", "224.0.0.1"},
	{"reserved", "240.0.0.1"},
	{"broadcast", "255.255.255.255"},

	{"IPv6 unspecified", "::"},
	{"IPv6 loopback", "::1"},
	{"IPv4-mapped loopback", "::ffff:127.0.0.1"},
	{"IPv4-mapped private", "::ffff:10.0.0.1"},
	{"IPv4-mapped metadata", "::ffff:169.254.169.254"},
	{"IPv4-compatible loopback", "::127.0.0.1"},
	{"IPv4-compatible private", "::10.0.0.1"},
	{"IPv4-compatible public", "::93.184.216.34"},
	{"IPv4-translated private", "::ffff:0:10.0.0.1"},
	{"NAT64 of a private address", "64:ff9b::10.0.0.1"},
	{"NAT64 of metadata", "64:ff9b::a9fe:a9fe"},
	{"local-use NAT64", "64:ff9b:1::a00:1"},
	{"discard-only", "100::1"},
	{"Teredo", "2001:0:4136:e378:8000:63bf:3fff:fdd2"},
	{"Teredo carrying loopback", "2001:0:7f00:1::1"},
	{"benchmarking IPv6", "2001:2::1"},
	{"ORCHIDv2", "2001:20::1"},
	{"documentation 2001:db8::/32", "2001:db8::1"},
	{"documentation 3fff::/20", "3fff::1"},
	{"6to4 of loopback", "2002:7f00:1::1"},
	{"6to4 of metadata", "2002:a9fe:a9fe::1"},
	{"6to4 of a private address", "2002:a00:1::"},
	{"unique local", "fd00::1"},
	{"unique local fc00::/8", "fc00::1"},
	{"link-local", "fe80::1"},
	{"site-local", "fec0::1"},
	{"site-local, last", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
	{"multicast IPv6", "ff02::1"},
}

// publicAddresses are receivers' addresses the list must leave alone.
var publicAddresses = []string{
	"93.184.216.34", "1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.0.1.1", "223.255.255.254",
	"::ffff:93.184.216.34",
	"2606:2800:220:1:248:1893:25c8:1946", "2001:4860:4860::8888", "2a00:1450:4001:80b::200e", "2001:200::1",
}

// everyBlockedAddress is blockedForms and, for every network of the list,
// its first, second and last address, so that a range added to the list is
// tested at once.
func everyBlockedAddress(t *testing.T) []struct{ name, ip string } {
	t.Helper()
	out := append([]struct{ name, ip string }{}, blockedForms...)
	for _, p := range webhook.ForbiddenPrefixes {
		first := p.Masked().Addr()
		out = append(out, struct{ name, ip string }{p.String() + " first", first.String()})
		if p.Bits() < first.BitLen() {
			out = append(out,
				struct{ name, ip string }{p.String() + " second", first.Next().String()},
				struct{ name, ip string }{p.String() + " last", lastAddr(p).String()})
		}
	}
	return out
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// TestEveryForbiddenAddressIsRefusedAtDialTime resolves a receiver's name
// to each forbidden address and sends an event to it without checking the
// URL first, as a delivery would after DNS changed its answer: the
// dialer's own check refuses every one, before connecting. The same names
// are refused at registration too.
func TestEveryForbiddenAddressIsRefusedAtDialTime(t *testing.T) {
	addrs := everyBlockedAddress(t)
	resolver := fakeResolver{}
	for i, a := range addrs {
		resolver[hostFor(i)] = []string{a.ip}
	}
	sender := webhook.NewSenderWithResolver(false, resolver)
	for i, a := range addrs {
		t.Run(a.name+" "+a.ip, func(t *testing.T) {
			ip := net.ParseIP(a.ip)
			if ip == nil {
				t.Fatalf("%s does not parse", a.ip)
			}
			if !webhook.Forbidden(ip) {
				t.Errorf("Forbidden(%s) = false", a.ip)
			}
			rawURL := "http://" + hostFor(i) + ":8080/hook"
			if err := webhook.CheckURL(context.Background(), resolver, rawURL, false); err == nil {
				t.Errorf("CheckURL(%s → %s) accepted it at registration", rawURL, a.ip)
			}
			_, err := sender.Send(context.Background(), webhook.Delivery{URL: rawURL, Secret: "s", DeliveryID: "d", Body: []byte("{}")})
			if !errors.Is(err, webhook.ErrPrivateAddress) {
				t.Errorf("Send to %s (%s) = %v, want ErrPrivateAddress from the dialer", rawURL, a.ip, err)
			}
			// The literal address in the URL is refused the same way.
			literal := "http://" + net.JoinHostPort(a.ip, "8080") + "/hook"
			if _, err := url.Parse(literal); err == nil {
				_, err := sender.Send(context.Background(), webhook.Delivery{URL: literal, Secret: "s", DeliveryID: "d", Body: []byte("{}")})
				if !errors.Is(err, webhook.ErrPrivateAddress) {
					t.Errorf("Send to %s = %v, want ErrPrivateAddress from the dialer", literal, err)
				}
			}
		})
	}
}

// hostFor names the i-th receiver of a table.
func hostFor(i int) string { return fmt.Sprintf("receiver-%d.example.com", i) }

func TestPublicAddressesAreAllowed(t *testing.T) {
	resolver := fakeResolver{}
	for i, ip := range publicAddresses {
		resolver[hostFor(i)] = []string{ip}
	}
	for i, ip := range publicAddresses {
		if webhook.Forbidden(net.ParseIP(ip)) {
			t.Errorf("Forbidden(%s) = true, want a public address allowed", ip)
		}
		if err := webhook.CheckURL(context.Background(), resolver, "https://"+hostFor(i)+"/hook", false); err != nil {
			t.Errorf("CheckURL(%s → %s) = %v", hostFor(i), ip, err)
		}
	}
}

// TestCheckURLRefusesAPortNoReceiverCanListenOn: a port, when the URL
// gives one, is 1 to 65535; 0 and anything past 65535 are refused saying
// so, whether or not private addresses are allowed, for an address or a
// name alike. A URL without a port, or with an empty one, takes its
// scheme's.
func TestCheckURLRefusesAPortNoReceiverCanListenOn(t *testing.T) {
	resolver := fakeResolver{"pipeline.example.com": {"93.184.216.34"}}
	for _, allowPrivate := range []bool{false, true} {
		for _, raw := range []string{
			"https://8.8.8.8:99999/hook",
			"https://8.8.8.8:0/hook",
			"https://8.8.8.8:65536/hook",
			"http://[2001:4860:4860::8888]:70000/hook",
			"https://pipeline.example.com:0/hook",
			"https://pipeline.example.com:99999999999999999999/hook",
		} {
			err := webhook.CheckURL(context.Background(), resolver, raw, allowPrivate)
			if err == nil || !strings.Contains(err.Error(), "1 to 65535") {
				t.Errorf("CheckURL(%s, allowPrivate %v) = %v, want the port refused", raw, allowPrivate, err)
			}
		}
		for _, raw := range []string{
			"https://8.8.8.8:1/hook",
			"https://8.8.8.8:65535/hook",
			"https://pipeline.example.com:8443/hook",
			"https://pipeline.example.com:0443/hook",
			"https://pipeline.example.com/hook",
			"https://pipeline.example.com:/hook",
		} {
			if err := webhook.CheckURL(context.Background(), resolver, raw, allowPrivate); err != nil {
				t.Errorf("CheckURL(%s, allowPrivate %v) = %v, want it taken", raw, allowPrivate, err)
			}
		}
	}
}

// TestSenderDialsWhatTheResolverAnswers shows the dial-time test above goes
// through the farm's resolver: a name it maps to loopback reaches a real
// receiver when private addresses are allowed, and never when they are not.
func TestSenderDialsWhatTheResolverAnswers(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resolver := fakeResolver{"receiver.example.com": {"127.0.0.1"}}
	d := webhook.Delivery{URL: "http://receiver.example.com:" + u.Port() + "/hook", Secret: "s", DeliveryID: "d", Body: []byte("{}")}

	if _, err := webhook.NewSenderWithResolver(false, resolver).Send(context.Background(), d); !errors.Is(err, webhook.ErrPrivateAddress) || hits.Load() != 0 {
		t.Fatalf("refusing private addresses: %v, %d requests reached the receiver; want ErrPrivateAddress and none", err, hits.Load())
	}
	res, err := webhook.NewSenderWithResolver(true, resolver).Send(context.Background(), d)
	if err != nil || res.StatusCode != http.StatusOK || hits.Load() != 1 {
		t.Fatalf("allowing private addresses: %v, status %d, %d requests; want one delivered", err, res.StatusCode, hits.Load())
	}
	d.URL = "http://unknown.example.com:" + u.Port() + "/hook"
	if _, err := webhook.NewSenderWithResolver(true, resolver).Send(context.Background(), d); err == nil || hits.Load() != 1 {
		t.Errorf("a name the resolver does not know: %v, %d requests", err, hits.Load())
	}
}
