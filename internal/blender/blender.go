// Package blender runs Blender for the farm: it inspects .blend files at
// validation and renders chunks of frames, reading Blender's output as it
// comes.
//
// .blend files are untrusted, so Blender always runs with
// --factory-startup and --disable-autoexec: Python carried by a file never
// runs, and the worker's own Blender preferences and add-ons never change a
// render. Nothing from a file or a request reaches Blender's command line:
// our own Python scripts, embedded in the binary, load the file and take
// the scene, frames and settings from JSON the worker sends. Blender's output
// is information only: a frame is taken from the file the farm told Blender
// to write, checked, when our script says with the command's nonce that it
// is written.
package blender

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

//go:embed scripts/*.py
var scripts embed.FS

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
	// Sandbox confines every Blender process: no network, a read-only view
	// of the system and of the job's files, and only the run's own
	// directories writable, within memory and open-file limits. nil runs
	// Blender unconfined (--disable-autoexec still holds).
	Sandbox *sandbox.Sandbox
	// JobsDir is where the farm keeps one directory per job. A confined
	// Blender opening a .blend inside it may read that job's whole
	// directory, since a project's .blend can refer to files in folders
	// beside its own (//../textures); a .blend elsewhere gets its own
	// directory only.
	JobsDir string
	// FrameTimeout is how long a render may go without saving a frame (the
	// first counts from Blender's start) before Blender is killed and the
	// chunk fails naming the frame it was on; an inspection gets as long in
	// all. 0 waits for ever.
	FrameTimeout time.Duration
	// Wrap, if set, returns the argv actually executed, given the argv
	// Sandbox made (Blender binary first when unconfined). It is for tools
	// that must see the process start, such as a test recording the pid;
	// confinement belongs in Sandbox, which is told each run's directories.
	Wrap func(argv []string) []string
	// TempDir is where per-run directories are made; "" means os.TempDir().
	// A directory of the farm's own lets ClaimTempDir remove what killed
	// runs left there.
	TempDir string

	mu       sync.Mutex
	version  string
	tempLock *os.File // TempDir, locked by ClaimTempDir
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
		if r.Sandbox.Confined() {
			// The worker's home is not in the sandbox: whatever Blender
			// keeps in its home goes with the run.
			env = append(env, "HOME="+tmp)
		}
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

	argv := r.argv("--version")
	var first string
	var lines []string
	res, err := r.run(ctx, command{argv: argv, env: r.env("")}, func(line string) {
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

// argv is the command line of every Blender the farm starts, before the
// sandbox and Wrap: the flags, then action, either --version or our script
// with its argument.
//
// It is built here alone and holds only the farm's own paths (the run
// directory's, absolute, so none starts with "-") and numbers from the
// farm's configuration. No scene, file, camera or layer name, from the
// .blend or a zip entry or a request, is ever an argument: Blender reads
// some flags in an early pass that does not know which flags take a value,
// so a scene named "-y" after -S turned autoexec on. The .blend itself is
// loaded by session.py, named in its JSON: a project's .blend path holds
// the zip's entry names. --disable-autoexec comes last of the flags, so
// that nothing after it turns autoexec back on; --python-exit-code makes a
// failing script fail the process.
func (r *Runner) argv(action ...string) []string {
	argv := []string{r.binary(), "-b", "--factory-startup", "-noaudio"}
	if r.Threads > 0 {
		argv = append(argv, "-t", strconv.Itoa(r.Threads))
	}
	argv = append(argv, "--python-exit-code", "1", "--disable-autoexec")
	return append(argv, action...)
}

// runDir makes the private directory of one Blender run: its scripts, its
// JSON files and its TMPDIR. The caller removes it.
func (r *Runner) runDir() (dir, tmp string, err error) {
	parent := r.TempDir
	if parent == "" {
		parent = os.TempDir()
	}
	// Absolute, so that no path on Blender's command line starts with "-".
	if parent, err = filepath.Abs(parent); err != nil {
		return "", "", fmt.Errorf("blender: %w", err)
	}
	dir, err = os.MkdirTemp(parent, runDirPrefix)
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

// inputPath is what a confined Blender may read for blendPath (an absolute
// path): the job's directory when the .blend is under JobsDir, or else the
// .blend's own directory. A .blend lying in JobsDir itself gets only itself,
// since its directory holds every job.
func (r *Runner) inputPath(blendPath string) string {
	if r.JobsDir != "" {
		if jobs, err := filepath.Abs(r.JobsDir); err == nil {
			if rel, err := filepath.Rel(jobs, blendPath); err == nil && filepath.IsLocal(rel) {
				if job, _, found := strings.Cut(rel, string(filepath.Separator)); found {
					return filepath.Join(jobs, job)
				}
				return blendPath
			}
		}
	}
	return filepath.Dir(blendPath)
}
