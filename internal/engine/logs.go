package engine

import (
	"bufio"
	"context"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// maxLogBytes bounds what JobLog reads of a stored log.
const maxLogBytes = 256 << 10

// keepLog stores the tail of a Blender run that failed, under the job's
// logs/ prefix, so the user can read why; paths scrubs the farm's paths
// from it.
func (e *Engine) keepLog(ctx context.Context, jobID, name string, lines []string, paths farmPaths) {
	if len(lines) == 0 {
		return
	}
	key := farm.JobLogKey(jobID, time.Now(), name)
	body := paths.scrub(strings.Join(lines, "\n")) + "\n"
	if _, err := e.objects.Put(context.WithoutCancel(ctx), key, strings.NewReader(body), maxStoredLogBytes); err != nil {
		e.log.Warn("could not keep Blender's log", "job", jobID, "err", err)
	}
}

// farmPaths rewrites the farm's absolute paths, in what Blender printed or
// an error says, into names that mean something to the job's owner and tell
// nothing of the machine. Clients read Blender's lines in logs, failure
// reasons and frame errors. The folder the job's .blend was read from (a
// project's root, or the upload's folder) becomes <job>, so a project's
// files read as they are in its zip (<job>/scenes/shot.blend); the rest of
// the job's work directory also becomes <job> (<job>/out/…); Blender's run
// directories <blender>, and the work directory <work>.
type farmPaths struct {
	replacer *strings.Replacer
}

// farmPaths answers the paths of job jobID on this machine; in, its input
// once prepared, may be nil.
func (e *Engine) farmPaths(jobID string, in *preparedInput) farmPaths {
	var pairs []string
	add := func(path, label string) {
		if path == "" {
			return
		}
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if path != string(filepath.Separator) {
			pairs = append(pairs, path, label)
		}
	}
	// The most specific first: at each place in a line, the first pair that
	// matches is the one replaced.
	if in != nil && in.BlendPath != "" {
		root := filepath.Dir(in.BlendPath)
		if in.Project != nil {
			root = filepath.Join(e.jobDir(jobID), "input", "project", filepath.FromSlash(in.Project.Root))
		}
		add(root, "<job>")
	}
	if e.cfg.WorkDir != "" {
		add(e.jobDir(jobID), "<job>")
	}
	if e.cfg.Blender != nil {
		add(e.cfg.Blender.TempDir, "<blender>")
	}
	add(e.cfg.WorkDir, "<work>")
	return farmPaths{replacer: strings.NewReplacer(pairs...)}
}

// scrub rewrites the farm's paths in s.
func (p farmPaths) scrub(s string) string {
	if p.replacer == nil {
		return s
	}
	return p.replacer.Replace(s)
}

// JobLog returns the tail of the newest Blender log kept for a job: the
// one of its last failure. A job with none answers no lines.
func (e *Engine) JobLog(ctx context.Context, p farm.Principal, id string) (*farm.JobLog, error) {
	job, err := e.loadJob(ctx, e.store.Queries, p, id)
	if err != nil {
		return nil, err
	}
	log := &farm.JobLog{Lines: []string{}}
	if job.Output.IsDeletedForClient {
		// Gone with the job's other files, even while their removal runs.
		return log, nil
	}
	logs, err := e.objects.List(ctx, farm.JobLogsPrefix(id))
	if err != nil || len(logs) == 0 {
		return log, err
	}
	// Keys start with their time, so the last one listed is the newest.
	r, err := e.objects.Get(ctx, logs[len(logs)-1].Key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sc := bufio.NewScanner(io.LimitReader(r, maxLogBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		log.Lines = append(log.Lines, sc.Text())
	}
	return log, nil
}
