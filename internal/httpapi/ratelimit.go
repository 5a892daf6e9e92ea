package httpapi

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// RateLimit bounds how often one API key may call the routes that change
// something (POST and DELETE). Reads are never limited: polling progress
// must stay cheap, and a read costs the farm little.
type RateLimit struct {
	// PerSecond is the sustained rate a key may send at; zero or less
	// turns the limit off.
	PerSecond float64
	// Burst is how many requests a key that has been quiet may send at
	// once; less than 1 means 1.
	Burst int
}

// keyLimiter holds one token bucket per API key. A bucket left alone for
// long enough to fill up again is the same as a new one, so it is dropped
// then; memory therefore grows with the keys active in that window, not
// with every key that was ever seen.
type keyLimiter struct {
	limit rate.Limit
	burst int
	idle  time.Duration // how long an unused bucket takes to be full
	now   func() time.Time

	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

type bucket struct {
	lim      *rate.Limiter
	lastUsed time.Time
}

// newKeyLimiter returns nil when l turns the limit off.
func newKeyLimiter(l RateLimit, now func() time.Time) *keyLimiter {
	if l.PerSecond <= 0 {
		return nil
	}
	burst := max(l.Burst, 1)
	return &keyLimiter{
		limit:   rate.Limit(l.PerSecond),
		burst:   burst,
		idle:    time.Duration(float64(burst) / l.PerSecond * float64(time.Second)),
		now:     now,
		buckets: map[string]*bucket{},
	}
}

// take spends one request of key's allowance. It answers zero when the
// request may go ahead, or how long the key must wait before one may.
func (k *keyLimiter) take(key string) time.Duration {
	now := k.now()
	k.mu.Lock()
	defer k.mu.Unlock()
	// Sweeping costs a pass over every bucket, so it runs at most once a
	// minute however fast buckets fill.
	if now.Sub(k.lastSweep) >= max(k.idle, time.Minute) {
		k.sweep(now)
	}
	b := k.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(k.limit, k.burst)}
		k.buckets[key] = b
	}
	b.lastUsed = now
	r := b.lim.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	if wait > 0 {
		// A refused request must not use up the allowance of the next one.
		r.CancelAt(now)
	}
	return wait
}

func (k *keyLimiter) sweep(now time.Time) {
	for key, b := range k.buckets {
		if now.Sub(b.lastUsed) >= k.idle {
			delete(k.buckets, key)
		}
	}
	k.lastSweep = now
}

// size is how many buckets are kept, for tests of the memory bound.
func (k *keyLimiter) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.buckets)
}

// changes reports whether a request's method is one the rate limit covers.
func changes(method string) bool {
	return method != http.MethodGet && method != http.MethodHead && method != http.MethodOptions
}

// checkRate refuses a request of p's key that goes over the rate limit,
// setting Retry-After on w for the error answer that follows.
func (a *api) checkRate(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	if a.limiter == nil || !changes(r.Method) {
		return nil
	}
	key := p.KeyID
	if key == "" {
		key = "workspace:" + p.WorkspaceID
	}
	wait := a.limiter.take(key)
	if wait <= 0 {
		return nil
	}
	// Whole seconds, rounded up: a client that waits exactly that long
	// finds a request's worth of allowance.
	secs := max(1, int(math.Ceil(wait.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &farm.Error{
		Kind: farm.KindRateLimited,
		Code: farm.CodeRateLimited,
		Message: fmt.Sprintf("too many requests: this farm takes %s POST or DELETE requests per second from one API key, in bursts of up to %d; "+
			"nothing was done, send the request again in %d s", formatRate(float64(a.limiter.limit)), a.limiter.burst, secs),
	}
}

func formatRate(perSecond float64) string {
	return strconv.FormatFloat(perSecond, 'f', -1, 64)
}
