package app

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// fakeBlender writes an executable at path that answers --version as a
// Blender of version does (or exits 1 when version is ""), for the tests
// of which Blenders a node starts with; rendering is never asked of it.
func fakeBlender(t *testing.T, path, version string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho 'Blender " + version + "'\necho '\tbuild date: 2026-12-03'\n"
	if version == "" {
		script = "#!/bin/sh\necho 'error while loading shared libraries: libfoo.so.1' >&2\nexit 127\n"
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
}

// blenderConfig is serve's configuration with the given flags, on a data
// directory of the test's own.
func blenderConfig(t *testing.T, args ...string) Config {
	t.Helper()
	c, err := ParseConfig(Serve, append([]string{"--data-dir", t.TempDir()}, args...), NewFlagSet("serve", io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestBlenderIsGivenOnceForEachBlender(t *testing.T) {
	c := blenderConfig(t, "--blender", "/opt/blender-4.5/blender", "--blender", "/opt/renderfarm/blender/debian-trixie")
	if want := []string{"/opt/blender-4.5/blender", "/opt/renderfarm/blender/debian-trixie"}; !slices.Equal(c.Blenders, want) {
		t.Errorf("Blenders = %q, want %q", c.Blenders, want)
	}
	if c := blenderConfig(t); len(c.Blenders) != 0 || c.BlenderRoots != "/opt/renderfarm/blender" {
		t.Errorf("defaults: Blenders %q, roots %q; want none given, roots /opt/renderfarm/blender", c.Blenders, c.BlenderRoots)
	}
	t.Setenv("RENDERFARM_BLENDER_ROOTS", "/srv/blenders")
	if c := blenderConfig(t); c.BlenderRoots != "/srv/blenders" {
		t.Errorf("RENDERFARM_BLENDER_ROOTS gives roots %q", c.BlenderRoots)
	}
	if _, err := ParseConfig(Serve, []string{"--blender", " "}, NewFlagSet("serve", io.Discard)); !errors.Is(err, ErrUsage) {
		t.Errorf("--blender with no path: %v, want a usage error", err)
	}
}

// TestWithoutBlenderTheNodeRunsThoseOnPathAndUnderTheRoots: with no
// --blender, `blender` on PATH and every root under --blender-roots that
// holds usr/bin/blender; under --sandbox none, which cannot run a root,
// the roots are left out, saying so.
func TestWithoutBlenderTheNodeRunsThoseOnPathAndUnderTheRoots(t *testing.T) {
	bin, roots := t.TempDir(), t.TempDir()
	fakeBlender(t, filepath.Join(bin, "blender"), "3.4.1")
	fakeBlender(t, filepath.Join(roots, "trixie", "usr/bin/blender"), "4.3.2")
	fakeBlender(t, filepath.Join(roots, "forky", "usr/bin/blender"), "4.5.0")
	if err := os.MkdirAll(filepath.Join(roots, "half-installed", "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	confined := confinedSandbox(t)
	c := blenderConfig(t, "--blender-roots", roots)
	var log bytes.Buffer
	installs, err := c.blenderInstalls(confined, slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	want := []blenderInstall{{from: filepath.Join(bin, "blender")},
		{from: filepath.Join(roots, "forky"), root: filepath.Join(roots, "forky")},
		{from: filepath.Join(roots, "trixie"), root: filepath.Join(roots, "trixie")}}
	if !slices.Equal(installs, want) {
		t.Errorf("installs = %+v, want %+v", installs, want)
	}

	c = blenderConfig(t, "--blender-roots", roots, "--sandbox", "none")
	log.Reset()
	installs, err = c.blenderInstalls(unconfinedSandbox(t), slog.New(slog.NewTextHandler(&log, nil)))
	if err != nil || len(installs) != 1 || installs[0].from != filepath.Join(bin, "blender") {
		t.Errorf("under --sandbox none: %+v, %v; want the one on PATH", installs, err)
	}
	if strings.Count(log.String(), "runs only inside bubblewrap") != 2 {
		t.Errorf("the roots left out are not named in the log:\n%s", log.String())
	}
}

func TestBlenderRefusals(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "trixie")
	fakeBlender(t, filepath.Join(root, "usr/bin/blender"), "4.3.2")
	notARoot := filepath.Join(dir, "empty")
	if err := os.Mkdir(notARoot, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		sandbox  bool // confined
		usage    bool
		contains string
	}{
		{"a root under --sandbox none", []string{"--blender", root, "--sandbox", "none"}, false, true, "runs in only inside bubblewrap; drop --sandbox none"},
		{"a directory without Blender", []string{"--blender", notARoot}, true, true, "a directory without usr/bin/blender in it"},
		{"a Blender that is not there", []string{"--blender", filepath.Join(dir, "blender-9.9/blender")}, true, false, "give the path of a Blender executable"},
		{"none at all", []string{"--blender-roots", dir + "/nothing"}, true, false, "blender is needed to render"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sb := unconfinedSandbox(t)
			if tt.sandbox {
				sb = confinedSandbox(t)
			}
			if tt.name == "none at all" {
				t.Setenv("PATH", t.TempDir())
			}
			_, err := blenderConfig(t, tt.args...).blenderInstalls(sb, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil || errors.Is(err, ErrUsage) != tt.usage || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error = %v; want one saying %q (a usage error: %v)", err, tt.contains, tt.usage)
			}
		})
	}
}

// TestEveryBlendersVersionIsReadAtStartAndOneThatDoesNotStartIsNamed: the
// node knows each Blender's version before it takes work; one that does
// not start stops the process, naming it; two of one version are one.
func TestEveryBlendersVersionIsReadAtStartAndOneThatDoesNotStartIsNamed(t *testing.T) {
	dir := t.TempDir()
	good, other, same, broken := filepath.Join(dir, "a/blender"), filepath.Join(dir, "b/blender"), filepath.Join(dir, "c/blender"), filepath.Join(dir, "d/blender")
	fakeBlender(t, good, "3.4.1")
	fakeBlender(t, other, "4.5.0")
	fakeBlender(t, same, "3.4.1")
	fakeBlender(t, broken, "")
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))

	c := blenderConfig(t, "--sandbox", "none", "--blender", good, "--blender", other, "--blender", same)
	installs, _, err := c.blenderRunners(context.Background(), logger)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range installs {
		got = append(got, in.version+" "+in.from)
	}
	if want := []string{"3.4.1 " + good, "4.5.0 " + other}; !slices.Equal(got, want) {
		t.Errorf("installs = %q, want %q", got, want)
	}
	if !strings.Contains(log.String(), "left out a second Blender of the same version") {
		t.Errorf("the repeated version is not logged:\n%s", log.String())
	}

	c = blenderConfig(t, "--sandbox", "none", "--blender", good, "--blender", broken)
	if _, _, err := c.blenderRunners(context.Background(), logger); err == nil || !strings.Contains(err.Error(), "the Blender of "+broken+" does not start") {
		t.Errorf("a Blender that does not start: %v, want an error naming it", err)
	}
}

func unconfinedSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	sb, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.None})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func confinedSandbox(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bubblewrap is not installed")
	}
	sb, err := sandbox.New(context.Background(), sandbox.Config{Mode: sandbox.Bwrap})
	if err != nil {
		t.Fatal(err)
	}
	return sb
}
