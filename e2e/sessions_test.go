package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// blenderStarts is a stand-in for Blender that notes the arguments of each
// start in a file, then runs the real Blender. It writes outside Blender's
// run directories, so the farm must run it unconfined (--sandbox none).
func blenderStarts(t *testing.T) (wrapper string, starts func() []string) {
	t.Helper()
	dir := t.TempDir()
	wrapper, log := filepath.Join(dir, "blender"), filepath.Join(dir, "starts")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s\nexec blender \"$@\"\n", log)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, func() []string {
		body, _ := os.ReadFile(log)
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			if line != "" && !strings.Contains(line, "--version") {
				out = append(out, line)
			}
		}
		return out
	}
}

// TestWarmSessionValidatesAndRendersInOneBlender validates a file and
// renders it in two chunks, and counts the Blenders the worker started:
// one, the Blender that inspected the file at validation, which rendered
// both chunks. With --blender-keep-alive 0 the same job takes three: one
// for the inspection and one a chunk. (That a session's frames are those of
// a Blender of their own, pixel for pixel, is internal/blender's test.)
func TestWarmSessionValidatesAndRendersInOneBlender(t *testing.T) {
	requireTools(t)
	for _, tt := range []struct {
		name   string
		args   []string
		starts int
		script string
	}{
		{"warm sessions", nil, 1, "session.py"},
		{"a Blender per chunk", []string{"--blender-keep-alive", "0"}, 3, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			blender, starts := blenderStarts(t)
			f := startFarm(t, append([]string{"--blender", blender, "--sandbox", "none", "--workers", "1"}, tt.args...)...)
			c := f.client("studio")
			ctx := testContext(t)

			job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
			cfg := quickRender(4)
			cfg.ChunkSize = client.Int(2)
			done := renderAndWait(ctx, t, c, job.ID, cfg)
			if done.Status != client.StatusCompleted {
				t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
			}
			checkCompletedOnce(ctx, t, f, c, job.ID, 4)
			got := starts()
			if len(got) != tt.starts {
				t.Fatalf("%d Blenders started, want %d:\n%s", len(got), tt.starts, strings.Join(got, "\n"))
			}
			if tt.script != "" && !strings.Contains(got[0], tt.script) {
				t.Errorf("Blender started as %q, want a session (%s)", got[0], tt.script)
			}
		})
	}
}
