// Package dashboard drives the web dashboard of renderfarm serve (real
// Blender, real ffmpeg, run in the test's process) with a real headless
// Chromium.
package dashboard

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/renderfarm/renderfarm/internal/app/apptest"
)

func TestMain(m *testing.M) { os.Exit(apptest.Main(m)) }

// farm is one renderfarm serve with a fresh data directory.
type farm struct {
	*apptest.Farm
	url string
}

func startFarm(t *testing.T) *farm {
	t.Helper()
	f := apptest.Start(t)
	return &farm{Farm: f, url: f.URL}
}

// key creates an API key for a workspace.
func (f *farm) key(t *testing.T, workspace string) string {
	t.Helper()
	return f.Key(workspace)
}

// scene is the path of a test scene made by testdata/scenes/make_scenes.py.
func scene(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "scenes", name)
}
