package main_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
)

// brokenBwrap is a bubblewrap that is installed and cannot make its
// namespaces, as on a kernel without unprivileged user namespaces.
func brokenBwrap(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bwrap")
	script := "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n"
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestNodeWithoutAWorkingSandboxRefusesToStart: serve and worker, with the
// default --sandbox auto or with bwrap, stop at start when bubblewrap is
// missing or does not work, saying what failed and the ways out; nothing
// listens and nothing renders unconfined.
func TestNodeWithoutAWorkingSandboxRefusesToStart(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "no-bwrap")
	broken := brokenBwrap(t)
	backends := []string{"--database", "postgres://renderfarm@127.0.0.1:1/renderfarm", "--storage", "s3://bucket?endpoint=http://127.0.0.1:1&region=us-east-1"}
	tests := []struct {
		name string
		args []string
		says []string
	}{
		{"serve, bubblewrap missing", []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--bwrap", missing},
			[]string{missing, "is not installed", "apt-get install bubblewrap"}},
		{"serve, bubblewrap broken", []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--bwrap", broken},
			[]string{broken, "does not work here", "No permissions to creating new namespace", "user namespaces"}},
		{"serve --sandbox bwrap, bubblewrap broken", []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--sandbox", "bwrap", "--bwrap", broken},
			[]string{broken, "does not work here", "user namespaces"}},
		{"worker, bubblewrap missing", append([]string{"worker", "--work-dir", t.TempDir(), "--bwrap", missing}, backends...),
			[]string{missing, "is not installed", "apt-get install bubblewrap"}},
		{"worker, bubblewrap broken", append([]string{"worker", "--work-dir", t.TempDir(), "--bwrap", broken}, backends...),
			[]string{broken, "does not work here", "user namespaces"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := renderfarm(t, cleanEnv(), tt.args...)
			if r.code != 1 || strings.Contains(r.stdout, "running") || strings.Contains(r.stdout, "serving at") {
				t.Fatalf("want exit 1 before serving or rendering; got\n%s", r)
			}
			for _, want := range append(tt.says, "bubblewrap", "--sandbox none") {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the reason does not say %q:\n%s", want, r.stderr)
				}
			}
		})
	}
}

// startedServe runs serve with args, in the test's process, until it
// serves, stops it as SIGTERM does, and answers what it logged.
func startedServe(t *testing.T, args ...string) string {
	t.Helper()
	var log apptest.LogBuffer
	cfg, err := app.ParseConfig(app.Serve, append([]string{"--addr", "127.0.0.1:0", "--metrics-addr", ""}, args...), app.NewFlagSet("serve", &log))
	if err != nil {
		t.Fatal(err)
	}
	m := app.NewMain(cfg, &log)
	err = m.Run(t.Context())
	if closeErr := m.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		t.Fatalf("serve %v: %v\n%s", args, err, log.String())
	}
	return log.String()
}

// TestAPIOnlyServerNeedsNoSandbox: serve --workers 0 runs neither Blender
// nor ffmpeg, so an API replica starts without bubblewrap.
func TestAPIOnlyServerNeedsNoSandbox(t *testing.T) {
	t.Parallel()
	log := startedServe(t, "--data-dir", t.TempDir(), "--workers", "0", "--bwrap", filepath.Join(t.TempDir(), "no-bwrap"))
	if strings.Contains(log, "containment") || strings.Contains(log, "UNCONFINED") {
		t.Errorf("an API-only server spoke of containment:\n%s", log)
	}
}

// TestSandboxNoneWarnsAtEveryStart: running unconfined takes --sandbox none
// by name, and every start says so as a warning.
func TestSandboxNoneWarnsAtEveryStart(t *testing.T) {
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
	t.Parallel()
	dataDir := t.TempDir()
	for start := 1; start <= 2; start++ {
		log := startedServe(t, "--data-dir", dataDir, "--workers", "1", "--sandbox", "none")
		var warned bool
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "UNCONFINED (--sandbox none)") && strings.Contains(line, "install bubblewrap") {
				warned = true
			}
		}
		if !warned {
			t.Errorf("start %d with --sandbox none logged no warning:\n%s", start, log)
		}
	}
}
