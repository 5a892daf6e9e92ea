package blender

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// maxInspectionBytes bounds the JSON read back from Blender: the file is
// untrusted and could name a huge number of external files. The job's
// analysis made of it is bounded much further (farm.MaxAnalysisBytes).
const maxInspectionBytes = 16 << 20

// InspectError is returned when Blender could not inspect a file: it is not
// a .blend, it is damaged, or it was saved by a much newer Blender. Line is
// Blender's own explanation.
type InspectError struct {
	Path     string
	Line     string
	ExitCode int
	LogTail  []string
}

func (e *InspectError) Error() string {
	return fmt.Sprintf("blender: cannot inspect %s: %s", filepath.Base(e.Path), e.Line)
}

// Inspect loads blendPath in Blender (its Python stays off) and describes
// its scenes, render settings and external files. A file Blender cannot read
// gives an *InspectError. It costs one Blender start, about a second: a
// session given one inspection.
func (r *Runner) Inspect(ctx context.Context, blendPath string) (*farm.Inspection, error) {
	s, err := r.StartSession(SessionSpec{BlendPath: blendPath})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.Inspect(ctx)
}

// inspection reads what an inspection of abs wrote to name in dir (the
// run directory), or says why it failed: it timed out, or (not ok) Blender
// failed, its first error line or else its last words telling why.
func (r *Runner) inspection(abs string, dir *os.File, name string, ok bool, status exitStatus, timedOut bool, firstError string, logTail []string) (*farm.Inspection, error) {
	switch {
	case timedOut:
		return nil, &InspectError{Path: abs, ExitCode: status.exitCode, LogTail: logTail,
			Line: fmt.Sprintf("Blender did not finish reading the file in %v; killed", r.FrameTimeout)}
	case !ok:
		line := firstError
		if line == "" {
			line = r.explainCrash(lastMeaningfulLine(logTail, status), status)
		}
		// Users see this line; the worker's paths mean nothing to them.
		line = strings.ReplaceAll(line, abs, filepath.Base(abs))
		return nil, &InspectError{Path: abs, Line: line, ExitCode: status.exitCode, LogTail: logTail}
	}
	insp, err := readInspection(dir, name)
	if err != nil {
		return nil, &InspectError{Path: abs, Line: err.Error(), ExitCode: status.exitCode, LogTail: logTail}
	}
	r.setVersion(insp.BlenderVersion)
	return insp, nil
}

// readInspection reads the inspection JSON name from dir, where Blender
// may write too: opened as a frame is, following no link.
func readInspection(dir *os.File, name string) (*farm.Inspection, error) {
	body, err := readAnswer(dir, name, maxInspectionBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("the inspection script wrote no result")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the inspection: %w", err)
	}
	insp, err := decodeInspection(body)
	if err != nil {
		return nil, fmt.Errorf("decoding the inspection: %w", err)
	}
	return insp, nil
}

// lastMeaningfulLine picks the line that best explains a failure when
// Blender printed no error line: the last one with content, or how the
// process ended.
func lastMeaningfulLine(lines []string, status exitStatus) string {
	if status.signal != 0 {
		return status.describe()
	}
	for i := len(lines) - 1; i >= 0; i-- {
		line := strings.TrimSpace(lines[i])
		if line == "" || line == "Blender quit" {
			continue
		}
		return line
	}
	return status.describe()
}
