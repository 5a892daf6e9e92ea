package httpapi

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// keyCacheTTL is how long the API trusts a key it has checked without
// asking the farm again. A client polling progress sends its key with
// every request; without the cache each of them costs a database lookup.
// It is also the longest a revoked key (`renderfarm keys revoke`, on this
// server or another replica) goes on working here: an entry counts from
// when the farm was asked, which was before the revocation committed, so
// every server refuses the key less than keyCacheTTL after the revocation
// took effect. Two seconds keeps that well inside the 5 s the farm
// promises, and still spares all but one lookup in twenty for a client
// polling ten times a second. An expiring key is never trusted past its
// expiry (see put).
const keyCacheTTL = 2 * time.Second

// keyCacheSize bounds how many keys the cache holds. Only keys the farm
// accepted are kept, so a client sending made-up keys cannot fill it;
// past the bound the least useful entries go (see put).
const keyCacheSize = 10_000

// keyCache remembers, for ttl after it asked, which principal the farm
// said an API key acts for. It is keyed by the key's SHA-256, so no key
// is kept in memory in the clear. Refusals are not kept: a key created a
// moment ago must work at once, and an unknown key is not worth memory.
type keyCache struct {
	ttl  time.Duration
	size int
	now  func() time.Time

	mu        sync.Mutex
	entries   map[[sha256.Size]byte]cachedKey
	lastSweep time.Time
}

type cachedKey struct {
	p       farm.Principal
	expires time.Time
}

func newKeyCache(ttl time.Duration, size int, now func() time.Time) *keyCache {
	return &keyCache{ttl: ttl, size: size, now: now, entries: map[[sha256.Size]byte]cachedKey{}}
}

// get returns the principal of a key checked less than ttl ago.
func (c *keyCache) get(hash [sha256.Size]byte) (farm.Principal, bool) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[hash]
	if !ok {
		return farm.Principal{}, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, hash)
		return farm.Principal{}, false
	}
	return e.p, true
}

// put records that the farm accepted a key. asked is when the lookup
// began: the entry expires ttl after that, so a key revoked while the
// farm was looking it up is not trusted for longer than ttl either, and
// at the key's own expiry if that comes first.
func (c *keyCache) put(hash [sha256.Size]byte, p farm.Principal, asked time.Time) {
	expires := asked.Add(c.ttl)
	if !p.KeyExpiresAt.IsZero() && p.KeyExpiresAt.Before(expires) {
		expires = p.KeyExpiresAt
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[hash]; !ok && len(c.entries) >= c.size {
		// Expired entries go first. A sweep is a pass over the whole
		// cache, so it runs at most once per ttl: sooner, few entries
		// would have expired since the last one.
		if now.Sub(c.lastSweep) >= c.ttl {
			c.lastSweep = now
			for h, e := range c.entries {
				if !now.Before(e.expires) {
					delete(c.entries, h)
				}
			}
		}
		// Still full: dropping any entry costs its key one lookup when
		// it comes back.
		for h := range c.entries {
			if len(c.entries) < c.size {
				break
			}
			delete(c.entries, h)
		}
	}
	c.entries[hash] = cachedKey{p: p, expires: expires}
}
