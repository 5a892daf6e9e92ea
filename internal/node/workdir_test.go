//go:build unix

package node

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
)

// TestTheWorkDirectoryIsTheFarmsAlone: the work directory holds the jobs'
// inputs and frames, so a node makes it 0700, and one that an older
// version (or a wide umask) left open to every user of the machine is
// closed when the node starts on it.
func TestTheWorkDirectoryIsTheFarmsAlone(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		parent := t.TempDir()
		fresh := filepath.Join(parent, "fresh")
		left := filepath.Join(parent, "left-open")
		if err := os.Mkdir(left, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(left, 0o777); err != nil {
			t.Fatal(err)
		}
		for _, dir := range []string{fresh, left} {
			newFixtureWith(t, db, func(c *Config) { c.WorkDir = dir })
			info, err := os.Stat(dir)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != 0o700 {
				t.Errorf("work directory %s has mode %04o after the node started, want 0700", filepath.Base(dir), got)
			}
		}
	})
}
