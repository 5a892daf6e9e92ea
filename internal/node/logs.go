package node

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// keepLog stores the tail of a Blender run of task ref, a chunk's or a
// validation that failed, under the job's logs/ prefix, so the user can
// read what Blender said; paths scrubs the farm's paths from it. The
// workspace's storage counts it: with w, the attempt's waiter, its size
// is written with the task's end, in the statement that ends it
// (finishTask), or as the attempt ends without one (waiter.done);
// without, at once.
//
// A log is kept even when the task is no longer this holder's (it was
// canceled, or given to another): the job's owner may read it, and the
// job's storage counts it (CountJobLogs counts the logs of a job that
// ended). But not once the job's files were deleted: their removal may
// have run already, and a log stored after it would stay under the
// deleted job's prefix for ever, which nothing lists or removes. The
// job is looked at before the log is stored, which spares the write in
// the common case, and again after: a deletion that commits before that
// second look is seen there, and the log removed; one that commits after
// it queues its removal after the log was stored, which takes it.
func (n *Node) keepLog(ctx context.Context, w *waiter, ref engine.TaskRef, name string, lines []string, paths farmPaths) {
	if len(lines) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	jobID := ref.JobID
	key := farm.JobLogKey(jobID, time.Now(), name)
	body := paths.scrub(strings.Join(lines, "\n")) + "\n"
	size, err := n.objects.Put(ctx, key, strings.NewReader(body), maxStoredLogBytes)
	if err != nil {
		n.log.Warn("could not keep Blender's log", "job", jobID, "err", err)
		return
	}
	// Asked after the log is stored, not before: a deletion that commits
	// after this answer queues its removal of the job's files after the
	// log is there, and takes it; one that committed before it is seen
	// here. (Deleted jobs are rare, so the log is not kept from being
	// written for them.)
	if n.jobFilesDeleted(ctx, jobID) {
		if err := n.objects.Delete(ctx, key); err != nil {
			n.log.Warn("could not remove a Blender log stored as its job's files were deleted", "job", jobID, "key", key, "err", err)
		}
		return
	}
	if w != nil {
		w.keptLog(size)
		return
	}
	n.recordLogBytes(ctx, ref, size)
}

// jobFilesDeleted reports whether job jobID's files were deleted (DELETE
// /jobs/{id}), so that nothing may be stored for it any more. A job that
// cannot be read is taken as not deleted: what is stored for it then is
// what would have been stored before this was asked.
func (n *Node) jobFilesDeleted(ctx context.Context, jobID string) bool {
	deleted, err := n.store.JobFilesDeleted(ctx, jobID)
	if err != nil {
		n.log.Warn("could not see whether a job's files were deleted", "job", jobID, "err", err)
		return false
	}
	return deleted
}

// chunkLogName names the log of an attempt at chunk ref: its task and
// generation, for the chunks of a job end together, many in the same
// millisecond of a log's key (farm.JobLogKey), and each keeps its own.
func chunkLogName(ref engine.TaskRef) string {
	return fmt.Sprintf("chunk-%s-%d", ref.TaskID, ref.Generation)
}

// recordLogBytes adds size bytes of logs kept for task ref to what its
// workspace stores. A log not counted is a few kB the quota misses, never
// a refusal, so a failure is only logged.
func (n *Node) recordLogBytes(ctx context.Context, ref engine.TaskRef, size int64) {
	if err := n.store.AddTaskLogBytes(context.WithoutCancel(ctx), ref.TaskID, size); err != nil {
		n.log.Warn("could not record the size of Blender's log", "job", ref.JobID, "err", err)
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
func (n *Node) farmPaths(jobID string, in *preparedInput) farmPaths {
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
			root = filepath.Join(n.jobDir(jobID), "input", "project", filepath.FromSlash(in.Project.Root))
		}
		add(root, "<job>")
	}
	if n.cfg.WorkDir != "" {
		add(n.jobDir(jobID), "<job>")
	}
	add(n.cfg.BlenderTempDir, "<blender>")
	add(n.cfg.WorkDir, "<work>")
	return farmPaths{replacer: strings.NewReplacer(pairs...)}
}

// scrub rewrites the farm's paths in s.
func (p farmPaths) scrub(s string) string {
	if p.replacer == nil {
		return s
	}
	return p.replacer.Replace(s)
}
