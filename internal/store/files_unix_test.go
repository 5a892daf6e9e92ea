//go:build unix

package store_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
)

// The tests here set the process's umask, which every goroutine shares, so
// none of them runs in parallel with other tests.

// withUmask sets the process's umask for the rest of the test.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// requireMode fails unless the file at path exists with mode want.
func requireMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

func TestANewSQLiteDatabaseIsReadableByItsOwnerOnly(t *testing.T) {
	// With no umask at all, nothing narrows the modes the files are
	// created with: only the store's own choice can make them private.
	withUmask(t, 0)
	path := filepath.Join(t.TempDir(), "renderfarm.db")
	s, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A write, so that the write-ahead log is in use.
	ensureWorkspace(t, s, "studio")

	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		requireMode(t, name, store.SQLiteFileMode)
	}
}

func TestOpenSQLiteTightensTheFilesOfAnOlderDatabase(t *testing.T) {
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "renderfarm.db")
	older, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer older.Close()
	ensureWorkspace(t, older, "studio")
	// As a version that left the files at SQLite's default made them,
	// while it still runs.
	files := []string{path, path + "-wal", path + "-shm"}
	for _, name := range files {
		if err := os.Chmod(name, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	for _, name := range files {
		requireMode(t, name, store.SQLiteFileMode)
	}
	if _, err := s.EnsureWorkspace(t.Context(), "studio"); err != nil {
		t.Errorf("the tightened database does not work: %v", err)
	}
}
