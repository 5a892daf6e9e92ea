package blender

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// Script is one run of a Python script that is not among the farm's own, such
// as the packer that `renderfarm pack` runs on an artist's machine. It gets
// the command line every Blender of the farm gets (see argv): the script and
// its JSON input are files of the run directory, the script's only argument
// is the input's path, and nothing from a .blend is on it; the script opens
// whatever it works on itself.
type Script struct {
	// Name is the script's file name in the run directory, such as
	// "packer.py"; Body is its text.
	Name string
	Body []byte
	// Input is written into the run directory as JSON; its path is the
	// script's one argument, after "--".
	Input any
	// Paths are the directories a confined Blender may read and write
	// besides its run directory; an unconfined Runner ignores them.
	Paths sandbox.Paths
	// OnLine, if set, sees each line Blender prints, in order.
	OnLine func(string)
}

// ScriptError is returned by RunScript when Blender or the script failed.
type ScriptError struct {
	Script string
	// Line says how it ended: Blender's last meaningful line, or the
	// signal that killed it.
	Line     string
	ExitCode int
	LogTail  []string
}

func (e *ScriptError) Error() string {
	return fmt.Sprintf("blender: %s failed: %s", e.Script, e.Line)
}

// RunScript runs s in a Blender of its own and waits for it to end. The run
// directory, with Blender's TMPDIR, is removed when it returns, so a script
// writes what it makes where its Input says. A Blender that cannot start is
// ErrNotStarted; a non-zero exit is a *ScriptError; when ctx ends, Blender's
// process group is killed and ctx's error returned.
func (r *Runner) RunScript(ctx context.Context, s Script) error {
	if s.Name == "" || s.Name != filepath.Base(s.Name) {
		return fmt.Errorf("blender: script name %q must be a plain file name", s.Name)
	}
	dir, tmp, err := r.runDir()
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, s.Name)
	if err := os.WriteFile(script, s.Body, 0o600); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	input, err := json.Marshal(s.Input)
	if err != nil {
		return fmt.Errorf("blender: %s input: %w", s.Name, err)
	}
	inputPath := filepath.Join(dir, "input.json")
	if err := os.WriteFile(inputPath, input, 0o600); err != nil {
		return fmt.Errorf("blender: %w", err)
	}
	paths := s.Paths
	paths.Writable = append(append([]string(nil), paths.Writable...), dir)

	tail := newLogTail(logTailLines)
	status, err := r.run(ctx, command{
		argv:  r.argv("--python", script, "--", inputPath),
		env:   r.env(tmp),
		paths: paths,
	}, func(line string) {
		tail.add(line)
		if s.OnLine != nil {
			s.OnLine(line)
		}
	})
	if err != nil {
		return err
	}
	if status.failed() {
		lines := tail.lines()
		return &ScriptError{Script: s.Name, Line: r.explainCrash(lastMeaningfulLine(lines, status), status),
			ExitCode: status.exitCode, LogTail: lines}
	}
	return nil
}
