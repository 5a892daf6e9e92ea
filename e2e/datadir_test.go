package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
)

// TestServeWithTheDefaultDataDir runs serve as the README's first command
// does, with no --data-dir: its data goes to ./renderfarm-data, a relative
// path, which Blender (running in a directory of its own) must never be
// handed as is. A job validates and renders.
func TestServeWithTheDefaultDataDir(t *testing.T) {
	requireTools(t)
	cwd := t.TempDir()
	// A process of its own: the working directory is the process's.
	f := &farm{Farm: apptest.NewProcess(t), t: t}
	f.Cwd, f.DataDir = cwd, filepath.Join(cwd, "renderfarm-data")
	f.Start()
	t.Cleanup(f.Stop)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	done := renderAndWait(ctx, t, c, job.ID, quickRender(2))
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	if _, err := os.Stat(filepath.Join(cwd, "renderfarm-data", "renderfarm.db")); err != nil {
		t.Errorf("the database is not in ./renderfarm-data: %v", err)
	}
}
