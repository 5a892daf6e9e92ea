// Package webhook signs and sends the farm's webhook events the way
// Renderjuice signs onRenderComplete, and keeps them from reaching the
// farm's own network.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// The events a webhook can subscribe to.
const (
	EventRenderComplete = "onRenderComplete"
	EventRenderFail     = "onRenderFail"
	EventStatusChange   = "onStatusChange"
)

// Events lists every event name.
var Events = []string{EventRenderComplete, EventRenderFail, EventStatusChange}

// Headers of a delivery. The first two are Renderjuice's; the delivery id
// stays the same across retries of one event so receivers can drop
// duplicates.
const (
	HeaderTimestamp  = "X-Renderjuice-Timestamp"
	HeaderSignature  = "X-Renderjuice-Signature"
	HeaderDeliveryID = "X-Renderfarm-Delivery"
	HeaderEvent      = "X-Renderfarm-Event"
)

// Timeout is how long a receiver has to answer, as Renderjuice allows.
const Timeout = 7 * time.Second

// Sign returns the lowercase hex HMAC-SHA256 of "{timestamp}.{body}" with
// the webhook's secret.
func Sign(secret string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// NewSecret makes a webhook secret: 32 random bytes, hex, with a prefix so
// it is recognisable in a receiver's configuration.
func NewSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return "whsec_" + hex.EncodeToString(b), nil
}

// Sender posts events to receivers.
type Sender struct {
	client *http.Client
	now    func() time.Time
}

// NewSender returns a Sender that never follows redirects (a redirect is an
// answer like any other non-2xx one) and, unless allowPrivate, refuses to
// connect to the farm's own network whatever DNS says at connection time.
// It looks hosts up with the system's resolver.
func NewSender(allowPrivate bool) *Sender {
	return NewSenderWithResolver(allowPrivate, nil)
}

// NewSenderWithResolver is NewSender looking hosts up with r (nil: the
// system's resolver), the resolver the farm checks URLs with.
func NewSenderWithResolver(allowPrivate bool, r Resolver) *Sender {
	if r == nil {
		r = net.DefaultResolver
	}
	d := &dialer{resolver: r, net: net.Dialer{Timeout: Timeout}}
	if !allowPrivate {
		d.net.Control = refusePrivate
	}
	transport := &http.Transport{
		DialContext:           d.dial,
		TLSHandshakeTimeout:   Timeout,
		ResponseHeaderTimeout: Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &Sender{
		client: &http.Client{
			Transport:     transport,
			Timeout:       Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		now: time.Now,
	}
}

// refusePrivate is the dialer's last word on an address: it runs once the
// socket exists and before it connects, on the address the socket is about
// to connect to, so no lookup, cache or rebinding between the check of the
// URL and the connection can slip a forbidden address through.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || Forbidden(ip) {
		return fmt.Errorf("%w: %s", ErrPrivateAddress, host)
	}
	return nil
}

// dialer looks a receiver's host up with the farm's resolver and connects
// to its addresses in turn, each through refusePrivate.
type dialer struct {
	resolver Resolver
	net      net.Dialer
}

func (d *dialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if net.ParseIP(host) != nil {
		return d.net.DialContext(ctx, network, address)
	}
	addrs, err := d.resolver.LookupIPAddr(ctx, host)
	if err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("the host %s has no address", host)
	}
	var first error
	for _, a := range addrs {
		ip := a.IP.String()
		if a.Zone != "" {
			ip += "%" + a.Zone
		}
		conn, err := d.net.DialContext(ctx, network, net.JoinHostPort(ip, port))
		if err == nil {
			return conn, nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, first
}

// Delivery is one attempt to send an event.
type Delivery struct {
	URL        string
	Secret     string
	DeliveryID string
	Event      string
	Body       []byte
}

// Result is what came of an attempt: the receiver's status (0 when none
// came) and how long it took.
type Result struct {
	StatusCode int
	Duration   time.Duration
}

// Send posts the event, signed with a fresh timestamp. A non-2xx answer is
// an error, as are a timeout and a refused connection.
func (s *Sender) Send(ctx context.Context, d Delivery) (Result, error) {
	start := s.now()
	ts := start.Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return Result{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "renderfarm-webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(d.Secret, ts, d.Body))
	req.Header.Set(HeaderDeliveryID, d.DeliveryID)
	req.Header.Set(HeaderEvent, d.Event)
	resp, err := s.client.Do(req)
	took := time.Since(start)
	if err != nil {
		return Result{Duration: took}, err
	}
	defer resp.Body.Close()
	// Read a little of the answer so the connection can be reused, but
	// never wait on a receiver that streams forever.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	res := Result{StatusCode: resp.StatusCode, Duration: took}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res, fmt.Errorf("the receiver answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return res, nil
}

// ErrPrivateAddress is the reason a URL or connection was refused: it
// reaches the farm's own network.
var ErrPrivateAddress = errors.New("the address is " + forbiddenKinds)
