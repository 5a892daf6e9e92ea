package objstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// secretLen is the size of a generated URL-signing secret: as long as the
// HMAC-SHA256 output, which is all the strength the signature can have.
const secretLen = 32

// secretPerm is the secret file's mode: whoever reads the secret can sign
// URLs that write or read any object, so only the farm's own user may.
const secretPerm = 0o600

// LoadOrCreateSecret returns the URL-signing secret stored at path, creating
// it (32 random bytes, mode 0600) on first use. Keeping the secret in a file
// is what lets presigned URLs survive a restart. Keep the file outside the
// Local store's Dir, or it would be listed as an object. A secret file that
// other users may read or write (left so by an older version, a copy or a
// restore) is brought back to 0600.
//
// The file appears atomically and complete: it is written to a temp file and
// hard-linked into place, which fails rather than overwrites if another
// process got there first; the loser then reads the winner's secret, so two
// processes starting together agree.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".secret-*") // created with mode 0600
	if err != nil {
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	defer os.Remove(tmp.Name())

	secret = make([]byte, secretLen)
	if _, err := rand.Read(secret); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	_, err = tmp.Write(secret)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}

	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSecret(path)
		}
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return secret, nil
}

func readSecret(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	if fi.Mode().Perm() != secretPerm {
		if err := f.Chmod(secretPerm); err != nil {
			return nil, fmt.Errorf("objstore: secret file %s has mode %v, and making it 0600 failed: %w; make it readable by the farm's user only", path, fi.Mode().Perm(), err)
		}
	}
	// One byte more than a secret, so that a longer file is noticed.
	b, err := io.ReadAll(io.LimitReader(f, secretLen+1))
	if err != nil {
		return nil, fmt.Errorf("objstore: secret: %w", err)
	}
	if len(b) != secretLen {
		return nil, fmt.Errorf("objstore: secret file %s holds %d bytes, want %d; remove it to generate a new one (URLs already handed out will stop working)", path, len(b), secretLen)
	}
	return b, nil
}
