package node

import (
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// inputCache keeps the files workers fetched from the bucket, named by
// their SHA-256, so a node fetches a given input once however many chunks
// (or jobs made from the same file) it renders. Files enter by hard link
// from the job's work directory and leave oldest-used first once the cache
// is over its cap; a job's own link keeps an evicted file alive while the
// job needs it.
//
// A cached file is one file with the inputs of every job prepared from
// it, so its times are theirs, and it is never touched: a job's prepared
// input is reused only while its file's modification time is the one
// recorded (fileIdentity), and a use of the cache that touched the file
// made every other job's preparation stale, to be removed and made again
// under the chunks rendering from it. When a file was last used is kept
// here instead, for this process's life; a file it has not used counts
// from when it was written.
type inputCache struct {
	dir      string
	maxBytes int64
	mu       sync.Mutex
	// used is when linkTo last gave each cached file (by path).
	used map[string]time.Time
}

func newInputCache(dir string, maxBytes int64) *inputCache {
	if maxBytes <= 0 || dir == "" {
		return nil
	}
	return &inputCache{dir: dir, maxBytes: maxBytes}
}

// linkTo links the cached file with this hash to dst; false when the cache
// does not have it.
func (c *inputCache) linkTo(sha256, dst string) bool {
	if c == nil || !isSHA256(sha256) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	src := filepath.Join(c.dir, sha256)
	if err := os.Link(src, dst); err != nil {
		return false
	}
	if c.used == nil {
		c.used = map[string]time.Time{}
	}
	c.used[src] = time.Now() // the file was used: evict it last
	return true
}

// drop removes the cached file with this hash if it is still the file
// found bad at path (the one linked from it): a file that another
// preparation has cached since in its place stays.
func (c *inputCache) drop(sha256, path string) {
	if c == nil || !isSHA256(sha256) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cached := filepath.Join(c.dir, sha256)
	bad, err := os.Stat(path)
	if err != nil {
		return
	}
	if now, err := os.Stat(cached); err == nil && os.SameFile(bad, now) {
		_ = os.Remove(cached)
		delete(c.used, cached)
	}
}

// add keeps path in the cache under its hash, then trims the cache. The
// cache is the worker's alone: its folder is closed to other users, and
// its files are the read-only inputs download made. A cached file is
// hashed again by every preparation that uses it, and dropped if it no
// longer hashes to its name.
func (c *inputCache) add(sha256, path string) {
	if c == nil || !isSHA256(sha256) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return
	}
	_ = os.Link(path, filepath.Join(c.dir, sha256))
	c.trim()
}

// isSHA256 reports whether name is a SHA-256 as the farm writes one (64
// lowercase hex digits), the only names the cache's files have: a
// checksum read from the database names a file in the cache's folder and
// nowhere else.
func isSHA256(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, r := range name {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// trim removes the least recently used files until the cache fits its cap.
func (c *inputCache) trim() {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type file struct {
		path string
		size int64
		used time.Time
	}
	var files []file
	var total int64
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		path, used := filepath.Join(c.dir, e.Name()), info.ModTime()
		if at, ok := c.used[path]; ok && at.After(used) {
			used = at
		}
		files = append(files, file{path, info.Size(), used})
		total += info.Size()
	}
	sort.Slice(files, func(i, j int) bool { return files[i].used.Before(files[j].used) })
	for _, f := range files {
		if total <= c.maxBytes {
			return
		}
		if os.Remove(f.path) == nil {
			total -= f.size
			delete(c.used, f.path)
		}
	}
}
