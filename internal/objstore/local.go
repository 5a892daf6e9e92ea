package objstore

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultTransferIdleTimeout is how long an upload or download through a
// presigned URL may stall when LocalConfig.TransferIdleTimeout is not set:
// a minute is far longer than any pause of a working network, and short
// enough that stalled clients cannot pile up connections.
const DefaultTransferIdleTimeout = time.Minute

// DefaultMaxUploadBytes is the largest body a presigned PUT accepts when
// LocalConfig.MaxUploadBytes is not set: the 5 GiB that the API contract
// promises to clients.
const DefaultMaxUploadBytes int64 = 5 << 30

const (
	// tmpDirName is where writes land before they are renamed into place.
	// It sits inside Dir so the rename never crosses filesystems, which is
	// what makes it atomic; keys in it are therefore refused.
	tmpDirName = ".tmp"

	// staleTempAge is how old an untouched temp file must be before NewLocal
	// removes it. A live upload rewrites its file continuously, so only the
	// leftovers of a crash get this old.
	staleTempAge = 24 * time.Hour

	// commitAttempts bounds the retries of the final rename: another
	// process's Delete or DeletePrefix may remove the (empty) destination
	// folder between our MkdirAll and our Rename (this process's wait for
	// the write, see Local.dirs).
	commitAttempts = 10

	// Objects are readable by the farm's own user and group only. A
	// stored object is read-only: nothing changes an object in place
	// (writes go to a temp file that is renamed over the key), so the mode
	// only makes that promise visible, and keeps a stray write of the
	// farm's own from changing a file Blender may be reading.
	dirPerm    fs.FileMode = 0o750
	filePerm   fs.FileMode = 0o600
	objectPerm fs.FileMode = 0o400

	minSecretLen = 32
)

// LocalConfig configures a Local store.
type LocalConfig struct {
	// Dir holds the objects, one file per key. It is created if missing.
	Dir string

	// BaseURL is the public base URL of the server that mounts Handler, such
	// as "http://127.0.0.1:8080" or "https://farm.example.com". Presigned
	// URLs are BaseURL + "/objects/" + key. It may carry a path prefix if a
	// proxy strips that prefix before the request reaches Handler.
	BaseURL string

	// Secret keys the URL signatures: at least 32 bytes, kept across
	// restarts (see LoadOrCreateSecret) so that URLs already handed out keep
	// working.
	Secret []byte

	// MaxUploadBytes caps the body of a presigned PUT; 0 means
	// DefaultMaxUploadBytes. It does not apply to Put, whose callers state
	// a limit of their own (a job's frames.zip may legitimately be larger).
	MaxUploadBytes int64

	// AcceptPut, if set, is asked whether key still takes a presigned PUT,
	// before the body is read and again before it is stored, so that an
	// upload URL stops working the moment its upload is used or deleted
	// even though its signature is still good, and so that a workspace's
	// storage quota can refuse a file that would exceed it. size is the
	// body's declared length (-1 when it is sent without one) on the first
	// call, and the bytes received, all of them, on the second, which is
	// the last word before the file is stored. On the second call store
	// moves the received file into place under key (nil on the first): a
	// hook that accepts the file calls it, once, before it returns, so
	// that what the hook records of the file is written together with it,
	// within the hook's own transaction and under its locks, and nothing
	// that reads the record under those locks finds one without the
	// other. A hook that returns nil without calling store has the file
	// stored once it returns; one that fails after calling it leaves the
	// file stored. A *PutRefusal is answered to the client as it says;
	// any other error is the farm's own fault (503: try again). nil
	// accepts every PUT whose signature is good.
	AcceptPut func(ctx context.Context, key string, size int64, store func() error) error

	// PutFailed, if set, is told of a PUT that AcceptPut let begin and
	// that then stored nothing: its body ended early, stalled, or grew
	// past the limit, the disk was full, or AcceptPut refused it at its
	// last word. What AcceptPut recorded of the file as the PUT began is
	// then wrong; stored answers the size of what key holds now (0:
	// nothing), for the hook to record that instead, under its own locks.
	// Its error is logged.
	PutFailed func(ctx context.Context, key string, stored func() (int64, error)) error

	// Served, if set, is told the bytes each presigned GET sent of key
	// (a part of it for a Range request), after the answer, to count what
	// the farm serves. Its error is logged.
	Served func(ctx context.Context, key string, bytes int64) error

	// TransferIdleTimeout is how long a presigned PUT may send nothing, and
	// a presigned GET take nothing, before the connection is cut; each
	// read or write that moves bytes extends it, so a slow but steady
	// transfer of any length goes through. 0 means
	// DefaultTransferIdleTimeout.
	TransferIdleTimeout time.Duration

	// Now replaces time.Now, so tests can expire URLs without sleeping.
	Now func() time.Time

	// Log receives the internal errors behind a 500 answer from Handler,
	// which clients never see; nil discards them.
	Log *slog.Logger
}

// Local is a Store kept in a directory on this machine, for the embedded
// shape of renderfarm. Its presigned URLs are served by Handler, so the
// server that mounts Handler must be reachable at BaseURL.
//
// All file access goes through an os.Root, so even a symbolic link planted
// inside Dir cannot make a key reach a file outside it.
type Local struct {
	dir       string
	root      *os.Root
	urls      urlSigner
	maxUpload int64
	acceptPut func(ctx context.Context, key string, size int64, store func() error) error
	putFailed func(ctx context.Context, key string, stored func() (int64, error)) error
	served    func(ctx context.Context, key string, bytes int64) error
	idle      time.Duration
	log       *slog.Logger
	// dirs keeps this process's prunes of empty folders (after a delete)
	// from removing a folder that a write has just made for its object
	// and not yet renamed the object into: writes hold it shared from
	// the folder's creation to the rename, prunes hold it alone. The
	// retries of commit remain for other processes on the same folder.
	dirs sync.RWMutex
}

var _ Opener = (*Local)(nil)

// NewLocal opens (creating if needed) a local store in cfg.Dir and removes
// temp files left behind by a crash.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		return nil, errors.New("objstore: LocalConfig.Dir is empty")
	}
	urls, err := newURLSigner(cfg.BaseURL, cfg.Secret, cfg.Now)
	if err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	if err := os.MkdirAll(dir, dirPerm); err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	// A folder made by an older version, or by hand, may let every user
	// of the machine read the uploads and renders in it.
	if err := restrictDir(dir); err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("objstore: %w", err)
	}
	if err := root.MkdirAll(tmpDirName, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("objstore: %w", err)
	}
	l := &Local{
		dir:       dir,
		root:      root,
		urls:      urls,
		maxUpload: cfg.MaxUploadBytes,
		acceptPut: cfg.AcceptPut,
		putFailed: cfg.PutFailed,
		served:    cfg.Served,
		idle:      cfg.TransferIdleTimeout,
		log:       cfg.Log,
	}
	if l.maxUpload <= 0 {
		l.maxUpload = DefaultMaxUploadBytes
	}
	if l.idle <= 0 {
		l.idle = DefaultTransferIdleTimeout
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	l.removeStaleTemps()
	return l, nil
}

// restrictDir takes away whatever other users of the machine may do in dir
// (read, write, list), keeping the owner's and group's rights as they are.
func restrictDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if perm := fi.Mode().Perm(); perm&0o007 != 0 {
		return os.Chmod(dir, perm&^0o007)
	}
	return nil
}

func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("objstore: LocalConfig.BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("objstore: LocalConfig.BaseURL %q must be an absolute http or https URL such as http://127.0.0.1:8080", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("objstore: LocalConfig.BaseURL %q must not carry credentials, a query or a fragment", raw)
	}
	return strings.TrimSuffix(raw, "/"), nil
}

// Close releases the directory handle. The store cannot be used afterwards.
func (l *Local) Close() error { return l.root.Close() }

// Path returns the file that holds the object, so that a worker on this
// machine can hand an input straight to Blender instead of copying it. The
// file must be treated as read-only: writing through the path would bypass
// the write-then-rename that keeps objects whole. A missing object is
// ErrNotFound.
func (l *Local) Path(key string) (string, error) {
	if err := l.checkKey(key); err != nil {
		return "", err
	}
	fi, err := l.root.Lstat(key)
	if err != nil {
		return "", l.statError(key, err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return filepath.Join(l.dir, filepath.FromSlash(key)), nil
}

// Put implements Store.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	if err := l.checkKey(key); err != nil {
		return 0, err
	}
	if err := checkMaxBytes(maxBytes); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n, err := l.write(key, &limitReader{r: ctxReader{ctx, r}, max: maxBytes}, nil)
	if err != nil {
		return 0, fmt.Errorf("objstore: put %s: %w", key, err)
	}
	return n, nil
}

// Copy implements Store with a hard link: the copy costs no bytes and no
// time whatever the size. Objects are never changed in place (a write
// renames a new file over the key), so the two keys sharing one file
// behave as two objects. Where the filesystem refuses links, the bytes
// are copied.
func (l *Local) Copy(ctx context.Context, src, dst string, maxBytes int64) (Info, error) {
	if err := l.checkKey(src); err != nil {
		return Info{}, err
	}
	if err := l.checkKey(dst); err != nil {
		return Info{}, err
	}
	if err := checkMaxBytes(maxBytes); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	tmp := path.Join(tmpDirName, "copy-"+rand.Text())
	err := l.root.Link(src, tmp)
	if isNotExist(err) {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, src)
	}
	if err != nil {
		return l.copyBytes(ctx, src, dst, maxBytes)
	}
	// The link is to whatever src was at that instant; what it holds is
	// judged from the link, which nothing else can replace.
	fi, err := l.root.Lstat(tmp)
	switch {
	case err != nil:
		err = fmt.Errorf("objstore: copy %s: %w", src, err)
	case !fi.Mode().IsRegular():
		err = fmt.Errorf("%w: %s", ErrNotFound, src)
	case fi.Size() > maxBytes:
		err = fmt.Errorf("objstore: copy %s: %w: it holds %d bytes, the limit is %d", src, ErrTooLarge, fi.Size(), maxBytes)
	}
	if err == nil {
		if err = l.root.Chmod(tmp, objectPerm); err == nil {
			err = l.commit(tmp, dst)
		}
		if err != nil {
			err = fmt.Errorf("objstore: copy %s to %s: %w", src, dst, err)
		}
	}
	if err != nil {
		l.root.Remove(tmp)
		return Info{}, err
	}
	return Info{Key: dst, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// copyBytes is Copy for a filesystem without hard links.
func (l *Local) copyBytes(ctx context.Context, src, dst string, maxBytes int64) (Info, error) {
	f, fi, err := l.open(src)
	if err != nil {
		return Info{}, err
	}
	defer f.Close()
	if fi.Size() > maxBytes {
		return Info{}, fmt.Errorf("objstore: copy %s: %w: it holds %d bytes, the limit is %d", src, ErrTooLarge, fi.Size(), maxBytes)
	}
	if _, err := l.Put(ctx, dst, f, maxBytes); err != nil {
		return Info{}, err
	}
	return l.Stat(ctx, dst)
}

// Get implements Store. The returned *os.File keeps reading the version it
// opened even if the object is replaced or deleted meanwhile.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := l.checkKey(key); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, _, err := l.open(key)
	if err != nil {
		return nil, err // not a nil *os.File in a non-nil interface
	}
	return f, nil
}

// Open implements Opener: the object's file, and what it holds.
func (l *Local) Open(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	if err := l.checkKey(key); err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, err
	}
	f, fi, err := l.open(key)
	if err != nil {
		return nil, Info{}, err
	}
	return f, Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime(), ETag: fileETag(fi)}, nil
}

// fileETag tells one version of an object's file from another: an object
// is written to a new file that replaces the old (commit), so the file's
// identity, with its time and size, changes with every write.
func fileETag(fi fs.FileInfo) string {
	id := uint64(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		id = uint64(st.Ino)
	}
	return fmt.Sprintf("%x-%x-%x", id, fi.ModTime().UnixNano(), fi.Size())
}

// open opens the object's file, refusing anything but a regular file: a
// folder that happens to sit at a key is not an object.
func (l *Local) open(key string) (*os.File, fs.FileInfo, error) {
	f, err := l.root.Open(key)
	if err != nil {
		return nil, nil, l.statError(key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("objstore: %w", err)
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return f, fi, nil
}

// Stat implements Store.
func (l *Local) Stat(ctx context.Context, key string) (Info, error) {
	if err := l.checkKey(key); err != nil {
		return Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return Info{}, err
	}
	fi, err := l.root.Stat(key)
	if err != nil {
		return Info{}, l.statError(key, err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return Info{Key: key, Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// Delete implements Store. It also removes the folders the object leaves
// empty, so that deleting uploads one by one does not leave a trail of
// empty directories.
func (l *Local) Delete(ctx context.Context, key string) error {
	if err := l.checkKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := l.root.Lstat(key)
	if isNotExist(err) || (err == nil && fi.IsDir()) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	if err := l.root.Remove(key); err != nil && !isNotExist(err) {
		return fmt.Errorf("objstore: delete %s: %w", key, err)
	}
	l.pruneParents(path.Dir(key))
	return nil
}

// DeletePrefix implements Store.
func (l *Local) DeletePrefix(ctx context.Context, prefix string) error {
	if prefix == "" {
		return fmt.Errorf("%w: refusing to delete with an empty prefix, which would remove every object", ErrInvalidKey)
	}
	objects, err := l.List(ctx, prefix)
	if err != nil {
		return err
	}
	for _, o := range objects {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.root.Remove(o.Key); err != nil && !isNotExist(err) {
			return fmt.Errorf("objstore: delete %s: %w", o.Key, err)
		}
	}
	l.pruneEmptyDirs(path.Dir(prefix))
	return nil
}

// List implements Store.
func (l *Local) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Info
	// Walking starts at the deepest folder the prefix names, so listing one
	// job's frames does not read the whole store.
	start := path.Dir(prefix)
	err := fs.WalkDir(l.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			// Objects and folders vanish under concurrent deletes; a
			// missing start just means nothing matches.
			if isNotExist(err) {
				return nil
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if d.IsDir() {
			if p == tmpDirName {
				return fs.SkipDir
			}
			if p != "." && !strings.HasPrefix(p+"/", prefix) && !strings.HasPrefix(prefix, p+"/") {
				return fs.SkipDir
			}
			return nil
		}
		// Only regular files are objects; a stray symlink or device is not.
		if !d.Type().IsRegular() || !strings.HasPrefix(p, prefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if isNotExist(err) {
				return nil
			}
			return err
		}
		out = append(out, Info{Key: p, Size: fi.Size(), ModTime: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("objstore: list %q: %w", prefix, err)
	}
	// WalkDir's order is per folder ("a/b" before "a.txt"); the contract is
	// byte order of whole keys, as S3 lists them.
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// checkKey is ValidateKey plus the one name the local layout reserves.
func (l *Local) checkKey(key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if key == tmpDirName || strings.HasPrefix(key, tmpDirName+"/") {
		return fmt.Errorf("%w %q: the %q folder is reserved by the local store", ErrInvalidKey, key, tmpDirName)
	}
	return nil
}

// write streams r into a fresh temp file, syncs it and renames it over key,
// so readers see the old object or the new one and never a mix. On any
// failure the temp file is removed and key is untouched. storeWith, if
// not nil, has the last word once the whole body is on disk: it is handed
// the bytes written and the rename, which it calls to store them (or,
// returning nil without calling it, has them stored after); its error
// before it stores stops the write.
func (l *Local) write(key string, r io.Reader, storeWith func(n int64, store func() error) error) (n int64, err error) {
	tmp := path.Join(tmpDirName, putTempPrefix+rand.Text())
	f, err := l.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			f.Close()
			l.root.Remove(tmp)
		}
	}()
	n, err = io.Copy(f, r)
	if err != nil {
		return n, err
	}
	if err = f.Chmod(objectPerm); err != nil {
		return n, err
	}
	if err = f.Sync(); err != nil {
		return n, err
	}
	if err = f.Close(); err != nil {
		return n, err
	}
	if storeWith == nil {
		return n, l.commit(tmp, key)
	}
	stored := false
	err = storeWith(n, func() error {
		if stored {
			return fmt.Errorf("objstore: %s was already stored by this write", key)
		}
		stored = true
		return l.commit(tmp, key)
	})
	if err == nil && !stored {
		err = l.commit(tmp, key)
	}
	return n, err
}

// commit renames the finished temp file to key, creating its folders.
func (l *Local) commit(tmp, key string) error {
	dir := path.Dir(key)
	var err error
	for range commitAttempts {
		var retry bool
		if retry, err = l.moveInto(dir, tmp, key); err == nil {
			l.syncDir(dir)
			return nil
		}
		if !retry {
			return err
		}
	}
	return err
}

// moveInto makes the folder dir and renames tmp to key in it, and reports
// whether a failure is a race with a prune or another write, which trying
// again settles.
func (l *Local) moveInto(dir, tmp, key string) (retry bool, err error) {
	l.dirs.RLock()
	defer l.dirs.RUnlock()
	if dir != "." {
		if err := l.root.MkdirAll(dir, dirPerm); err != nil {
			// A parent pruned while we create it (by another process),
			// or a folder that a concurrent write created first:
			// os.Root.MkdirAll can report that race as "file exists"
			// (golang/go#75114).
			return isNotExist(err) || errors.Is(err, fs.ErrExist), err
		}
	}
	err = l.root.Rename(tmp, key)
	return isNotExist(err), err
}

// syncDir makes a rename durable. It is best effort: some filesystems
// refuse to sync a directory, and the object is already in place.
func (l *Local) syncDir(dir string) {
	d, err := l.root.Open(dir)
	if err != nil {
		return
	}
	d.Sync()
	d.Close()
}

// pruneParents removes dir and its ancestors while they are empty. Removing
// a folder that is not empty fails harmlessly, which is what stops the climb.
func (l *Local) pruneParents(dir string) {
	l.dirs.Lock()
	defer l.dirs.Unlock()
	for ; dir != "." && dir != "/"; dir = path.Dir(dir) {
		if l.root.Remove(dir) != nil {
			return
		}
	}
}

// removeEmptyDir removes the folder dir if it is empty, between writes
// (a write that has made dir has also renamed its object into it).
func (l *Local) removeEmptyDir(dir string) {
	l.dirs.Lock()
	defer l.dirs.Unlock()
	l.root.Remove(dir)
}

// pruneEmptyDirs removes every empty folder under start (deepest first),
// then start's empty ancestors. Empty folders are invisible to List, so this
// is housekeeping that keeps DeletePrefix from leaving skeletons behind.
func (l *Local) pruneEmptyDirs(start string) {
	var dirs []string
	fs.WalkDir(l.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() {
			if p == tmpDirName {
				return fs.SkipDir
			}
			dirs = append(dirs, p)
		}
		return nil
	})
	// WalkDir visits a folder before its contents, so backwards is deepest
	// first.
	for _, d := range slices.Backward(dirs) {
		if d != "." {
			l.removeEmptyDir(d)
		}
	}
	l.pruneParents(path.Dir(start))
}

// putTempPrefix starts the name of a Put's temp file (write).
const putTempPrefix = "put-"

// RemoveAbandonedWrites removes the temp files of Puts that nothing has
// written to since untouchedSince, and answers how many. A process killed
// while it stored a file (a serve in the middle of an upload's body, a
// render node storing a frame) leaves its temp file behind, which NewLocal
// removes only once it is a day old, as it opens: another process on the
// same directory may be writing its own. A live Put writes its file as its
// bytes come (an upload's body is cut off once it stalls past the idle
// timeout), so a Put's file untouched for long is a killed one's. A
// Copy's temp file is left to NewLocal: it is a hard link, with the times
// of the file it copies, and lives for a moment only.
func (l *Local) RemoveAbandonedWrites(untouchedSince time.Time) (int, error) {
	entries, err := fs.ReadDir(l.root.FS(), tmpDirName)
	if err != nil {
		return 0, fmt.Errorf("objstore: list the temp files: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), putTempPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.ModTime().Before(untouchedSince) {
			continue // gone meanwhile, or written to lately
		}
		if err := l.root.Remove(path.Join(tmpDirName, e.Name())); err != nil && !isNotExist(err) {
			return removed, fmt.Errorf("objstore: remove an abandoned temp file: %w", err)
		}
		removed++
	}
	return removed, nil
}

// removeStaleTemps deletes temp files that no live write can own any more.
func (l *Local) removeStaleTemps() {
	entries, err := fs.ReadDir(l.root.FS(), tmpDirName)
	if err != nil {
		return
	}
	// File times are on the real clock, whatever cfg.Now says.
	cutoff := time.Now().Add(-staleTempAge)
	for _, e := range entries {
		fi, err := e.Info()
		if err == nil && fi.ModTime().Before(cutoff) {
			l.root.RemoveAll(path.Join(tmpDirName, e.Name()))
		}
	}
}

func (l *Local) statError(key string, err error) error {
	if isNotExist(err) {
		return fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	return fmt.Errorf("objstore: %s: %w", key, err)
}

// isNotExist also treats ENOTDIR as missing: "a/b" cannot exist when "a" is
// an object.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// ctxReader stops a copy once ctx ends, so a canceled Put does not run to
// the end of a long stream.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
