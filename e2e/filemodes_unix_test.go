//go:build unix

package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
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
	f := &farm{Farm: apptest.New(t), t: t}
	f.DataDir = filepath.Join(t.TempDir(), "renderfarm-data")
	oldMask := syscall.Umask(0)
	f.Start()
	syscall.Umask(oldMask)
	t.Cleanup(f.Stop)
	// A request that writes, so that the write-ahead log is in use.
	f.Key("studio")

	db := filepath.Join(f.DataDir, "renderfarm.db")
	requireFileMode(t, f.DataDir, 0o700)
	for _, name := range []string{db, db + "-wal", db + "-shm"} {
		requireFileMode(t, name, 0o600)
	}

	f.Stop()
	opened := []string{f.DataDir, db}
	for _, name := range []string{db + "-wal", db + "-shm"} {
		if _, err := os.Stat(name); err == nil {
			opened = append(opened, name)
		}
	}
	for _, name := range opened {
		mode := fs.FileMode(0o644)
		if name == f.DataDir {
			mode = 0o755
		}
		if err := os.Chmod(name, mode); err != nil {
			t.Fatal(err)
		}
	}

	f.Start()
	requireFileMode(t, f.DataDir, 0o700)
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
