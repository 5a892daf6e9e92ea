package httpapi

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// keyFarm is a farm that knows a set of keys, which a test adds to and
// revokes from, and counts how often it is asked about one. Only
// Authenticate is there: the cache in front of it is what is tested.
type keyFarm struct {
	Farm

	mu    sync.Mutex
	keys  map[string]farm.Principal
	asked int
	// whileAsked runs during each lookup, as a slow database would.
	whileAsked func()
}

func (f *keyFarm) Authenticate(ctx context.Context, apiKey string) (farm.Principal, error) {
	f.mu.Lock()
	f.asked++
	p, ok := f.keys[apiKey]
	whileAsked := f.whileAsked
	f.mu.Unlock()
	if whileAsked != nil {
		whileAsked()
	}
	if !ok {
		return farm.Principal{}, unauthorized("unknown API key")
	}
	return p, nil
}

func (f *keyFarm) set(key string, p farm.Principal) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = p
}

func (f *keyFarm) revoke(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.keys, key)
}

func (f *keyFarm) timesAsked() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked
}

var studio = farm.Principal{WorkspaceID: "ws-1", KeyID: "key-1"}

// cachingAPI is the API's authentication with a key cache on c's time.
func cachingAPI(c *clock) (*api, *keyFarm) {
	f := &keyFarm{keys: map[string]farm.Principal{"RF-good": studio}}
	return &api{farm: f, keys: newKeyCache(keyCacheTTL, keyCacheSize, c.now)}, f
}

// authenticate sends one request with key, as the API's middleware sees it.
func authenticate(a *api, key string) (farm.Principal, error) {
	r := httptest.NewRequest("GET", BasePath+"/jobs/progress", nil)
	r.Header.Set("Authorization", "Bearer "+key)
	return a.authenticate(r)
}

func isUnauthorized(err error) bool {
	var fe *farm.Error
	return errors.As(err, &fe) && fe.Kind == farm.KindUnauthorized
}

func TestAKeyIsLookedUpOncePerTTL(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	for i := range 100 {
		p, err := authenticate(a, "RF-good")
		if err != nil || p != studio {
			t.Fatalf("request %d: %+v, %v; want %+v", i+1, p, err, studio)
		}
		c.advance(keyCacheTTL / 200)
	}
	if n := f.timesAsked(); n != 1 {
		t.Errorf("100 requests within the TTL asked the farm %d times, want once", n)
	}
	c.advance(keyCacheTTL / 2)
	if _, err := authenticate(a, "RF-good"); err != nil {
		t.Fatal(err)
	}
	if n := f.timesAsked(); n != 2 {
		t.Errorf("after the TTL the farm was asked %d times in all, want 2", n)
	}
}

func TestARevokedKeyStopsWorkingWithinTheTTL(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	if _, err := authenticate(a, "RF-good"); err != nil {
		t.Fatal(err)
	}

	f.revoke("RF-good")

	// Until the TTL has passed since the farm said yes, the answer stands...
	c.advance(keyCacheTTL - time.Millisecond)
	if p, err := authenticate(a, "RF-good"); err != nil || p != studio {
		t.Errorf("just within the TTL: %+v, %v; want the key still trusted", p, err)
	}
	// ...and not a moment longer.
	c.advance(time.Millisecond)
	for i := range 2 {
		if _, err := authenticate(a, "RF-good"); !isUnauthorized(err) {
			t.Errorf("request %d once the TTL has passed: %v, want unauthorized", i+1, err)
		}
	}
}

// The promise of `renderfarm keys revoke`: every server refuses a revoked
// key within 5 s. The cache is the only thing that could keep it working
// that long.
func TestTheCacheTrustsAKeyForLessThanTheRevocationBound(t *testing.T) {
	const revocationBound = 5 * time.Second
	if keyCacheTTL >= revocationBound {
		t.Fatalf("keyCacheTTL is %v: a revoked key could work for that long, and the farm promises less than %v", keyCacheTTL, revocationBound)
	}
}

func TestAnExpiringKeyIsNotTrustedPastItsExpiry(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	expiring := farm.Principal{WorkspaceID: "ws-1", KeyID: "key-2", KeyExpiresAt: c.now().Add(keyCacheTTL / 4)}
	f.set("RF-expiring", expiring)
	if p, err := authenticate(a, "RF-expiring"); err != nil || p != expiring {
		t.Fatalf("before its expiry: %+v, %v; want %+v", p, err, expiring)
	}
	// From its expiry on, the farm refuses the key.
	f.revoke("RF-expiring")

	c.advance(keyCacheTTL/4 - time.Millisecond)
	if _, err := authenticate(a, "RF-expiring"); err != nil {
		t.Errorf("a moment before its expiry: %v, want the key still trusted", err)
	}
	c.advance(time.Millisecond)
	if _, err := authenticate(a, "RF-expiring"); !isUnauthorized(err) {
		t.Errorf("at its expiry, well within the TTL: %v, want the farm asked again and the key refused", err)
	}
	if n := f.timesAsked(); n != 2 {
		t.Errorf("the farm was asked %d times, want 2: once before the expiry, once at it", n)
	}
}

func TestTheTTLCountsFromWhenTheFarmWasAsked(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	// The lookup takes 2 s: a key revoked during it is trusted for the
	// TTL from the moment the farm was asked, not from its answer.
	f.whileAsked = func() { c.advance(2 * time.Second) }
	if _, err := authenticate(a, "RF-good"); err != nil {
		t.Fatal(err)
	}
	f.whileAsked = nil
	f.revoke("RF-good")

	c.advance(keyCacheTTL - 2*time.Second)

	if _, err := authenticate(a, "RF-good"); !isUnauthorized(err) {
		t.Errorf("TTL after the farm was asked: %v, want unauthorized", err)
	}
}

func TestRefusedKeysAreNotRemembered(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	if _, err := authenticate(a, "RF-new"); !isUnauthorized(err) {
		t.Fatalf("unknown key: %v, want unauthorized", err)
	}

	// The key is created a moment later (renderfarm keys create): it
	// works at once, not a TTL later.
	f.set("RF-new", studio)

	if p, err := authenticate(a, "RF-new"); err != nil || p != studio {
		t.Errorf("a key created after a refusal: %+v, %v; want it accepted at once", p, err)
	}
	if n := f.timesAsked(); n != 2 {
		t.Errorf("the farm was asked %d times, want 2 (the refusal was not kept)", n)
	}
}

func TestKeysAreToldApartByTheWholeKey(t *testing.T) {
	c := newClock()
	a, f := cachingAPI(c)
	other := farm.Principal{WorkspaceID: "ws-2", KeyID: "key-2"}
	f.set("RF-good2", other)
	for range 2 {
		if p, err := authenticate(a, "RF-good"); err != nil || p != studio {
			t.Errorf("RF-good: %+v, %v; want %+v", p, err, studio)
		}
		if p, err := authenticate(a, "RF-good2"); err != nil || p != other {
			t.Errorf("RF-good2: %+v, %v; want %+v", p, err, other)
		}
		if _, err := authenticate(a, "RF-goo"); !isUnauthorized(err) {
			t.Errorf("RF-goo: %v, want unauthorized", err)
		}
	}
}

func TestTheKeyCacheStaysWithinItsSize(t *testing.T) {
	c := newClock()
	const size = 8
	cache := newKeyCache(keyCacheTTL, size, c.now)
	hash := func(i int) [sha256.Size]byte { return sha256.Sum256(fmt.Appendf(nil, "RF-%d", i)) }
	p := func(i int) farm.Principal { return farm.Principal{WorkspaceID: "ws", KeyID: fmt.Sprint(i)} }

	for i := range 3 * size {
		cache.put(hash(i), p(i), c.now())
		if n := len(cache.entries); n > size {
			t.Fatalf("after %d keys the cache holds %d, more than %d", i+1, n, size)
		}
		// The key just checked is always kept.
		if got, ok := cache.get(hash(i)); !ok || got != p(i) {
			t.Fatalf("key %d just put: %+v, %v", i, got, ok)
		}
	}

	// Once they have expired, the old entries make room before any
	// live one is dropped.
	c.advance(keyCacheTTL)
	cache.put(hash(100), p(100), c.now())
	cache.put(hash(101), p(101), c.now())
	if n := len(cache.entries); n != 2 {
		t.Errorf("after every entry expired and two keys came, the cache holds %d, want 2", n)
	}
}
