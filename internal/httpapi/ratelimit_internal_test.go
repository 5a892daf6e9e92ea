package httpapi

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// clock is a time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newClock() *clock { return &clock{t: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)} }

func TestKeyLimiterRefillsAtTheRate(t *testing.T) {
	c := newClock()
	lim := newKeyLimiter(RateLimit{PerSecond: 2, Burst: 4}, c.now)
	for i := range 4 {
		if wait := lim.take("key-1"); wait != 0 {
			t.Fatalf("request %d of the burst waits %v", i+1, wait)
		}
	}
	if wait := lim.take("key-1"); wait != 500*time.Millisecond {
		t.Fatalf("after the burst: wait %v, want 500ms at 2 per second", wait)
	}
	// The refusal spent nothing: half a second later one request goes.
	c.advance(500 * time.Millisecond)
	if wait := lim.take("key-1"); wait != 0 {
		t.Errorf("half a second later: wait %v, want none", wait)
	}
	if wait := lim.take("key-1"); wait == 0 {
		t.Error("a second request in the same instant went through")
	}
}

func TestRetryAfterIsRoundedUpToWholeSeconds(t *testing.T) {
	c := newClock()
	a := &api{limiter: newKeyLimiter(RateLimit{PerSecond: 0.4, Burst: 1}, c.now)}
	p := farm.Principal{WorkspaceID: "ws-1", KeyID: "key-1"}
	r := httptest.NewRequest("POST", BasePath+"/jobs", nil)
	if err := a.checkRate(httptest.NewRecorder(), r, p); err != nil {
		t.Fatalf("first request: %v", err)
	}
	w := httptest.NewRecorder()
	err := a.checkRate(w, r, p)
	if farm.KindOf(err) != farm.KindRateLimited {
		t.Fatalf("second request: %v, want rate limited", err)
	}
	// One request every 2.5 s: a client told "2" would be refused again.
	if got := w.Header().Get("Retry-After"); got != "3" {
		t.Errorf("Retry-After %q, want 3", got)
	}
}

// Buckets of keys that went quiet are dropped once they would be full
// again, so memory follows the keys in use, not every key ever seen.
func TestKeyLimiterForgetsIdleKeys(t *testing.T) {
	c := newClock()
	lim := newKeyLimiter(RateLimit{PerSecond: 10, Burst: 20}, c.now)
	for i := range 1000 {
		lim.take(fmt.Sprintf("key-%d", i))
	}
	if n := lim.size(); n != 1000 {
		t.Fatalf("%d buckets after 1000 keys, want 1000", n)
	}
	c.advance(30 * time.Second)
	lim.take("key-0")
	if n := lim.size(); n != 1000 {
		t.Fatalf("%d buckets before the first sweep is due, want 1000", n)
	}
	c.advance(31 * time.Second)
	lim.take("key-1")
	// Even key-0, used 31 s ago, had refilled its 20 requests in 2 s.
	if n := lim.size(); n != 1 {
		t.Errorf("%d buckets after a minute, want 1: the key just used", n)
	}

	// Dropping a bucket gives nothing away: key-0 had refilled, and a new
	// bucket holds the same burst and no more.
	for i := range 20 {
		if wait := lim.take("key-0"); wait != 0 {
			t.Fatalf("request %d of key-0's burst: wait %v", i+1, wait)
		}
	}
	if wait := lim.take("key-0"); wait == 0 {
		t.Error("key-0 sent 21 requests at once with a burst of 20")
	}
}

func TestRateLimitOff(t *testing.T) {
	for _, l := range []RateLimit{{}, {PerSecond: 0, Burst: 20}, {PerSecond: -1, Burst: 5}} {
		if newKeyLimiter(l, time.Now) != nil {
			t.Errorf("%+v made a limiter; want none", l)
		}
	}
	if lim := newKeyLimiter(RateLimit{PerSecond: 1}, time.Now); lim == nil || lim.burst != 1 {
		t.Errorf("burst 0 made %+v; want a burst of 1", lim)
	}
}
