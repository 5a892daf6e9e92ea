// Package blender runs Blender for the farm: it inspects .blend files at
// validation and renders chunks of frames, reading Blender's output as it
// comes.
//
// .blend files are untrusted, so Blender always runs with
// --factory-startup and --disable-autoexec: Python carried by a file never
// runs, and the worker's own Blender preferences and add-ons never change a
// render. Our own Python scripts are embedded in the binary and talk to Go
// through JSON files, never through Blender's stdout.
package blender

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sync"
)

//go:embed scripts/*.py
var scripts embed.FS

// baseArgs are the flags every Blender process of the farm gets. Autoexec stays
// off because a .blend can register Python to run on load; factory startup
// keeps the worker's preferences and add-ons out of renders.
var baseArgs = []string{"-b", "--factory-startup", "--disable-autoexec", "-noaudio"}

// inheritedEnv lists the worker's environment variables Blender may see. A
// render node holds database and bucket credentials; Blender, which opens
// untrusted files, gets only what it needs to run.
var inheritedEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "XDG_RUNTIME_DIR"}

// Runner starts Blender processes. The zero value runs "blender" from PATH.
// A Runner is safe for concurrent use; it must not be copied after first use.
type Runner struct {
	// Binary is the Blender executable; "" means "blender" from PATH.
	Binary string
	// Threads is passed as -t so several renders can share a machine; 0 keeps
	// Blender's default of one thread per core.
	Threads int
	// ExtraEnv is added to the small environment Blender gets (see
	// inheritedEnv); later entries win, so it can override those too.
	ExtraEnv []string
	// Wrap, if set, returns the argv actually executed, so Blender can run
	// inside a sandbox such as bubblewrap. It sees the complete argv,
	// Blender binary first. The per-run directory (scripts, JSON, TMPDIR) is
	// under TempDir and must be visible at the same path inside the sandbox,
	// as must the .blend file and the output directory.
	Wrap func(argv []string) []string
	// TempDir is where per-run directories are made; "" means os.TempDir().
	TempDir string

	mu      sync.Mutex
	version string
}

func (r *Runner) binary() string {
	if r.Binary == "" {
		return "blender"
	}
	return r.Binary
}

func (r *Runner) wrap(argv []string) []string {
	if r.Wrap == nil {
		return argv
	}
	return r.Wrap(argv)
}

// env is the environment of a Blender process; tmp becomes its TMPDIR so
// whatever Blender writes there is removed with the run.
func (r *Runner) env(tmp string) []string {
	var env []string
	for _, name := range inheritedEnv {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	if tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	return append(env, r.ExtraEnv...)
}

var versionRe = regexp.MustCompile(`Blender (\d+\.\d+(?:\.\d+)?)`)

// Version answers the version of Blender the runner starts, such as "3.4.1".
// Workers report it and validation compares it with the version a file was
// saved with. It is cached after the first success (Inspect fills the cache
// too), since starting Blender costs about a second.
func (r *Runner) Version(ctx context.Context) (string, error) {
	r.mu.Lock()
	v := r.version
	r.mu.Unlock()
	if v != "" {
		return v, nil
	}

	argv := append([]string{r.binary()}, baseArgs...)
	argv = append(argv, "--version")
	var first string
	var lines []string
	res, err := r.run(ctx, argv, r.env(""), func(line string) {
		if len(lines) < 20 {
			lines = append(lines, line)
		}
		if first == "" {
			if m := versionRe.FindStringSubmatch(line); m != nil {
				first = m[1]
			}
		}
	})
	if err != nil {
		return "", fmt.Errorf("blender: version: %w", err)
	}
	if first == "" {
		return "", fmt.Errorf("blender: version: no version in the output of %s --version (exit code %d): %q", r.binary(), res.exitCode, lines)
	}
	r.setVersion(first)
	return first, nil
}

func (r *Runner) setVersion(v string) {
	if v == "" {
		return
	}
	r.mu.Lock()
	r.version = v
	r.mu.Unlock()
}

// runDir makes the private directory of one Blender run: its scripts, its
// JSON files and its TMPDIR. The caller removes it.
func (r *Runner) runDir() (dir, tmp string, err error) {
	dir, err = os.MkdirTemp(r.TempDir, "renderfarm-blender-")
	if err != nil {
		return "", "", fmt.Errorf("blender: %w", err)
	}
	tmp = dir + "/tmp"
	if err := os.Mkdir(tmp, 0o700); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("blender: %w", err)
	}
	return dir, tmp, nil
}

// writeScript copies the embedded script name into dir and answers its path.
func writeScript(dir, name string) (string, error) {
	body, err := scripts.ReadFile("scripts/" + name)
	if err != nil {
		return "", fmt.Errorf("blender: embedded script %s: %w", name, err)
	}
	path := dir + "/" + name
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return "", fmt.Errorf("blender: %w", err)
	}
	return path, nil
}

// ErrNotStarted is returned (wrapped) when the Blender binary cannot be run,
// for example because it is not installed, so callers can tell a broken
// worker from a bad file.
var ErrNotStarted = errors.New("blender could not be started")

func startError(argv []string, err error) error {
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		return fmt.Errorf("%w: %s: %v", ErrNotStarted, argv[0], execErr.Err)
	}
	return fmt.Errorf("%w: %v", ErrNotStarted, err)
}
