package webhook_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/webhook"
)

// The signature is the lowercase hex HMAC-SHA256 of "{timestamp}.{body}";
// this value was computed independently with openssl:
//
//	printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac secret
func TestSignMatchesAnIndependentComputation(t *testing.T) {
	got := webhook.Sign("secret", 1700000000, []byte(`{"a":1}`))
	const want = "49f24e537407743fa4a0242bb63b94b9a47ee99cbbe071ccd8a22550ae411686"
	if got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
}

// fakeResolver answers fixed addresses for names.
type fakeResolver map[string][]string

func (f fakeResolver) LookupIPAddr(_ context.Context, host string) ([]net.IPAddr, error) {
	ips, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	var out []net.IPAddr
	for _, s := range ips {
		out = append(out, net.IPAddr{IP: net.ParseIP(s)})
	}
	return out, nil
}

func TestCheckURLRefusesTheFarmsOwnNetwork(t *testing.T) {
	r := fakeResolver{
		"hooks.example.com":    {"93.184.216.34"},
		"sneaky.example.com":   {"93.184.216.34", "127.0.0.1"},
		"rebind.example.com":   {"10.0.0.5"},
		"metadata.example":     {"169.254.169.254"},
		"v6loop.example.com":   {"::1"},
		"v6public.example.com": {"2606:2800:220:1:248:1893:25c8:1946"},
	}
	cases := []struct {
		url string
		ok  bool
	}{
		{"https://hooks.example.com/renderfarm", true},
		{"http://93.184.216.34:8080/hook", true},
		{"https://v6public.example.com/", true},
		{"http://127.0.0.1:9000/hook", false},
		{"http://127.1.2.3/", false},
		{"http://[::1]:9000/", false},
		{"http://10.1.2.3/", false},
		{"http://172.16.0.1/", false},
		{"http://192.168.1.10/", false},
		{"http://169.254.169.254/latest/meta-data/", false},
		{"http://0.0.0.0/", false},
		{"http://[::]/", false},
		{"http://224.0.0.1/", false},
		{"http://[fe80::1]/", false},
		{"http://[fd00::1]/", false},
		{"http://[::ffff:127.0.0.1]/", false},
		{"http://localhost:9000/", false},
		{"http://api.localhost/", false},
		{"https://sneaky.example.com/", false},
		{"https://rebind.example.com/", false},
		{"https://metadata.example/", false},
		{"https://v6loop.example.com/", false},
		{"https://unknown.example.com/", false},
		{"ftp://hooks.example.com/", false},
		{"file:///etc/passwd", false},
		{"https://user:pass@hooks.example.com/", false},
		{"https:///nohost", false},
		{"not a url", false},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			err := webhook.CheckURL(context.Background(), r, tc.url, false)
			if (err == nil) != tc.ok {
				t.Errorf("CheckURL(%q) = %v, want ok=%v", tc.url, err, tc.ok)
			}
		})
	}
	if err := webhook.CheckURL(context.Background(), r, "http://127.0.0.1:9000/", true); err != nil {
		t.Errorf("with private addresses allowed: %v", err)
	}
}

func TestSenderSignsAndNeverFollowsRedirects(t *testing.T) {
	var got *http.Request
	var body []byte
	redirected := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/moved" {
			redirected = true
			return
		}
		got = r
		body, _ = io.ReadAll(r.Body)
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/moved", http.StatusFound)
		}
	}))
	defer srv.Close()
	s := webhook.NewSender(true)
	d := webhook.Delivery{URL: srv.URL + "/hook", Secret: "s3cret", DeliveryID: "d-1", Event: webhook.EventStatusChange, Body: []byte(`{"event":"onStatusChange"}`)}

	res, err := s.Send(context.Background(), d)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("send: %v %+v", err, res)
	}
	ts, err := strconv.ParseInt(got.Header.Get(webhook.HeaderTimestamp), 10, 64)
	if err != nil || time.Since(time.Unix(ts, 0)) > time.Minute {
		t.Errorf("timestamp header %q", got.Header.Get(webhook.HeaderTimestamp))
	}
	if sig := got.Header.Get(webhook.HeaderSignature); sig != webhook.Sign("s3cret", ts, body) {
		t.Errorf("signature %q does not match the body", sig)
	}
	if got.Header.Get(webhook.HeaderDeliveryID) != "d-1" || got.Header.Get("Content-Type") != "application/json" || string(body) != string(d.Body) {
		t.Errorf("headers %v body %s", got.Header, body)
	}

	d.URL = srv.URL + "/redirect"
	res, err = s.Send(context.Background(), d)
	if err == nil || res.StatusCode != http.StatusFound || redirected {
		t.Errorf("redirect: status %d err %v followed %v; want a 302 failure, not followed", res.StatusCode, err, redirected)
	}
}

func TestSenderRefusesToConnectToPrivateAddresses(t *testing.T) {
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	_, err := webhook.NewSender(false).Send(context.Background(), webhook.Delivery{URL: srv.URL, Secret: "s", Body: []byte("{}")})
	if !errors.Is(err, webhook.ErrPrivateAddress) || hit {
		t.Errorf("send to %s: %v (reached: %v), want ErrPrivateAddress before any byte is sent", srv.URL, err, hit)
	}
}

func TestRetriesCoverAboutADay(t *testing.T) {
	var total time.Duration
	for attempt := 1; attempt < webhook.DefaultAttempts; attempt++ {
		total += webhook.RetryDelay(webhook.DefaultFirstRetry, attempt)
	}
	if first := webhook.RetryDelay(webhook.DefaultFirstRetry, 1); first > 10*time.Second {
		t.Errorf("first retry after %s, want within seconds", first)
	}
	if total < 20*time.Hour || total > 26*time.Hour {
		t.Errorf("%d attempts span %s, want about a day", webhook.DefaultAttempts, total)
	}
	if webhook.RetryDelay(time.Second, 1) != time.Second || webhook.RetryDelay(time.Second, 99) != webhook.RetryDelay(time.Second, 9) {
		t.Error("the schedule does not scale with the first delay or does not stop growing")
	}
}
