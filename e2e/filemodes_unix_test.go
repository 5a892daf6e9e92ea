//go:build unix

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// requireFileMode fails unless path exists with mode want.
func requireFileMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

// TestTheDataDirAndDatabaseAreTheFarmsAlone: a serve started on a data
// directory that does not exist yet, with no umask to narrow the modes,
// makes the directory 0700 and the database and its -wal and -shm 0600;
// a database and directory that an older version left open to others are
// tightened when serve starts on them.
func TestTheDataDirAndDatabaseAreTheFarmsAlone(t *testing.T) {
	requireTools(t)
	f := &farm{t: t, dataDir: filepath.Join(t.TempDir(), "renderfarm-data")}
	oldMask := syscall.Umask(0)
	f.start()
	syscall.Umask(oldMask)
	t.Cleanup(func() { f.stop(syscall.SIGTERM) })
	// A request that writes, so that the write-ahead log is in use.
	f.key("studio")

	db := filepath.Join(f.dataDir, "renderfarm.db")
	requireFileMode(t, f.dataDir, 0o700)
	for _, name := range []string{db, db + "-wal", db + "-shm"} {
		requireFileMode(t, name, 0o600)
	}

	f.stop(syscall.SIGTERM)
	opened := []string{f.dataDir, db}
	for _, name := range []string{db + "-wal", db + "-shm"} {
		if _, err := os.Stat(name); err == nil {
			opened = append(opened, name)
		}
	}
	for _, name := range opened {
		mode := fs.FileMode(0o644)
		if name == f.dataDir {
			mode = 0o755
		}
		if err := os.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
	}

	f.start()
	requireFileMode(t, f.dataDir, 0o700)
	for _, name := range []string{db, db + "-wal", db + "-shm"} {
		if _, err := os.Stat(name); err == nil {
			requireFileMode(t, name, 0o600)
		}
	}
	c := f.client("studio")
	if _, err := c.ListJobs(testContext(t), client.ListOptions{}); err != nil {
		t.Errorf("the farm on its tightened files: %v", err)
	}
}
