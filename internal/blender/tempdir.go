package blender

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// runDirPrefix starts the name of every run directory (see runDir).
const runDirPrefix = "renderfarm-blender-"

// ClaimTempDir makes TempDir and removes the run directories an earlier
// process left in it. A run removes its own directory when it ends, but a
// worker killed while Blender runs (kill -9, a crash, a lost machine)
// cannot, and over restarts its scripts, JSON files and Blender's TMPDIR
// pile up. Call it once, before the first run.
//
// Processes may share a TempDir: each holds a shared lock on the directory
// from its claim until it exits (or Close), and a process removes what it
// finds only when no other holds the directory, so it never removes the
// run of a live one. It answers how many directories it removed. With
// TempDir "" (the system's, shared with everything) it does nothing.
func (r *Runner) ClaimTempDir() (removed int, err error) {
	if r.TempDir == "" {
		return 0, nil
	}
	if err := os.MkdirAll(r.TempDir, 0o755); err != nil {
		return 0, fmt.Errorf("blender: run directories: %w", err)
	}
	dir, err := os.Open(r.TempDir)
	if err != nil {
		return 0, fmt.Errorf("blender: run directories: %w", err)
	}
	fd := int(dir.Fd())
	switch err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil:
		// No live process uses the directory: whatever runs it holds are
		// over.
		removed, err = removeRunDirs(r.TempDir)
		if err != nil {
			dir.Close()
			return removed, err
		}
	case !errors.Is(err, syscall.EWOULDBLOCK):
		dir.Close()
		return 0, fmt.Errorf("blender: lock %s: %w", r.TempDir, err)
	}
	// From now on other processes may share it (turning the exclusive lock
	// into a shared one is not atomic, but this process has no run to lose
	// yet).
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil {
		dir.Close()
		return removed, fmt.Errorf("blender: lock %s: %w", r.TempDir, err)
	}
	r.mu.Lock()
	previous := r.tempLock
	r.tempLock = dir
	r.mu.Unlock()
	if previous != nil {
		previous.Close()
	}
	return removed, nil
}

// Close lets go of TempDir, which ClaimTempDir held: another process may
// then remove the runs still in it. A process's hold ends when it exits
// anyway; Close is for a Runner that goes away before its process does.
func (r *Runner) Close() error {
	r.mu.Lock()
	dir := r.tempLock
	r.tempLock = nil
	r.mu.Unlock()
	if dir == nil {
		return nil
	}
	return dir.Close()
}

func removeRunDirs(parent string) (int, error) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0, fmt.Errorf("blender: run directories: %w", err)
	}
	removed := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), runDirPrefix) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(parent, e.Name())); err != nil {
			return removed, fmt.Errorf("blender: remove a left-over run directory: %w", err)
		}
		removed++
	}
	return removed, nil
}
