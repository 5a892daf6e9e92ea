package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// A split frame (finalConfig.splitFrame, docs/split-frame.md) is rendered
// in parts: each part is a render task of its own, which the dispatcher
// hands out like a chunk and which a node carries out as one (a chunk
// whose task renders a part: renderPart instead of renderFrames). The
// task that stores a frame's last part queues the frame's merge, a task
// of its own (store.TaskMerge) that any node running the job's Blender
// takes: it fetches the parts, merges them with Blender and stores the
// frame as a render stores one.

// maxPartBytes bounds one part's file: a samples part holds eleven float
// channels to a frame's four, so three frames' worth.
const maxPartBytes = 3 * maxFrameBytes

// renderPart renders part p of its frame with Blender (inst) and stores
// the part's file, as renderFrames renders and stores frames: the frame
// is marked rendering as its first part begins, and the part's file is
// recorded once (the first holder to store it wins; a part rendered
// twice is used once).
func (n *Node) renderPart(ctx context.Context, w *waiter, ref engine.TaskRef, job *farm.Job, inst Install, p store.FramePart, times *chunkTimes) error {
	in, err := n.prepareInput(ctx, job)
	if err != nil {
		return err
	}
	outDir, err := n.freshRunDir(job.ID, "", ref)
	if err != nil {
		return err
	}
	defer os.RemoveAll(outDir)

	renderCtx, stop := context.WithCancel(ctx)
	defer stop()
	var recordErr error
	started, stored := false, false
	onEvent := func(ev blender.Event) {
		if recordErr != nil || ev.Frame != p.Frame {
			return
		}
		switch ev.Kind {
		case blender.FrameStarted:
			if started {
				return
			}
			started = true
			times.firstFrame = time.Now()
			recordErr = w.outlast(ctx, func(ctx context.Context) error { return n.partStarted(ctx, ref, p) })
		case blender.FrameSaved:
			recordErr = n.partSaved(ctx, w, ref, p, ev)
			times.lastSaved = time.Now()
			stored = recordErr == nil
		}
		if recordErr != nil {
			stop()
		}
	}
	settings := settingsFor(job.FinalConfig)
	settings.Part = &blender.Part{Mode: blender.SplitMode(job.FinalConfig.SplitFrame.Mode), Index: p.Part, Count: job.FinalConfig.SplitFrame.Parts}
	render := blender.RenderJob{
		BlendPath: in.BlendPath,
		Scene:     job.FinalConfig.Scene,
		Frames:    []int{p.Frame},
		OutputDir: outDir,
		Settings:  settings,
		Naming:    job.FinalConfig.OutputNaming,
	}
	times.spawn = time.Now()
	result, err := inst.Blender.Render(renderCtx, render, n.outputRoot(job.ID), onEvent)
	times.exited = time.Now()
	if re := (*blender.RenderError)(nil); errors.As(recordErr, &re) {
		err, recordErr = recordErr, nil
	}
	if recordErr != nil {
		return recordErr
	}
	if err == nil && !stored {
		err = &blender.RenderError{Frame: p.Frame, Line: fmt.Sprintf("Blender reported part %d of frame %d done, but never saved it", p.Part, p.Frame)}
	}
	paths := n.farmPaths(job.ID, in)
	var re *blender.RenderError
	if errors.As(err, &re) {
		// The job's failure names the part, not only the frame.
		re.Line = paths.scrub(fmt.Sprintf("part %d of %d: %s", p.Part+1, job.FinalConfig.SplitFrame.Parts, re.Line))
	}
	if result != nil && ctx.Err() == nil {
		lines := append([]string{fmt.Sprintf("renderfarm: part %d of %d of frame %d on render node %s with Blender %s",
			p.Part+1, job.FinalConfig.SplitFrame.Parts, p.Frame, n.cfg.WorkerName, inst.Version)}, result.LogTail...)
		n.keepLog(ctx, w, ref, fmt.Sprintf("part%d-%d-%d", p.Frame, p.Part, ref.Generation), lines, paths)
	}
	return err
}

// partStarted marks the part's frame rendering, on this node, when it is
// the first of the frame's parts to begin.
func (n *Node) partStarted(ctx context.Context, ref engine.TaskRef, p store.FramePart) error {
	return n.store.InTx(ctx, func(tx *store.Tx) error {
		if err := n.holdsTask(ctx, tx, ref); err != nil {
			return err
		}
		return tx.StartSplitFrame(ctx, ref.JobID, p.Frame, n.cfg.WorkerName)
	})
}

// partSaved stores the part's file, checked by the runner as a frame's
// is, under the task's generation, and records it. A part some holder
// stored before is left as it was, and this copy removed.
func (n *Node) partSaved(ctx context.Context, w *waiter, ref engine.TaskRef, p store.FramePart, ev blender.Event) error {
	if ev.Image == nil || ev.Image.Size == 0 {
		return &blender.RenderError{Frame: p.Frame, Line: fmt.Sprintf("Blender reported part %d of frame %d saved, but its file is missing or empty", p.Part, p.Frame)}
	}
	key := farm.PartKey(ref.JobID, p.Frame, ref.TaskID, ref.Generation, blender.PartFileName(p.Part))
	err := w.outlast(ctx, func(ctx context.Context) error {
		_, err := n.objects.Put(ctx, key, ev.Image.Reader(), maxPartBytes)
		return err
	})
	if err != nil {
		return fmt.Errorf("store part %d of frame %d: %w", p.Part, p.Frame, err)
	}
	p.TaskID, p.ObjectKey, p.RenderSeconds = ref.TaskID, key, ev.RenderSeconds
	used := true
	err = w.outlast(ctx, func(ctx context.Context) error {
		return n.store.InTx(ctx, func(tx *store.Tx) error {
			used = true
			if err := n.holdsTask(ctx, tx, ref); err != nil {
				return err
			}
			err := tx.StorePart(ctx, p)
			if errors.Is(err, store.ErrConflict) {
				used = false
				return nil
			}
			return err
		})
	})
	if err == nil && used {
		// A part is no frame: the frames-stored metric counts the merged
		// frame, once.
		return nil
	}
	if err == nil || errors.Is(err, errNotOurs) {
		n.removeUnrecordedPart(context.WithoutCancel(ctx), p, key)
	}
	return err
}

// removeUnrecordedPart removes the copy of part p this holder stored at
// key, which the part's record refused: another holder's copy came first,
// or the task is no longer this holder's. Unless the record names this
// very copy: an earlier try of this holder's record committed and its
// answer was lost (the connection dropped as the database answered), and
// the try again took the record for another's, or found the task handed
// on meanwhile, whose next holder takes the part as stored. Only this
// holder records key, so a copy not recorded now never will be; one that
// cannot be looked up is left, an orphan the job's removal takes, rather
// than risk a recorded part.
func (n *Node) removeUnrecordedPart(ctx context.Context, p store.FramePart, key string) {
	parts, err := n.store.PartsOfFrame(ctx, p.JobID, p.Frame)
	if err != nil {
		n.log.Warn("could not see whether a part stored twice is the one recorded; it is left", "key", key, "err", err)
		return
	}
	for _, q := range parts {
		if q.Part == p.Part && q.ObjectKey == key {
			return
		}
	}
	if err := n.objects.Delete(ctx, key); err != nil {
		n.log.Warn("could not remove a part stored twice", "key", key, "err", err)
	}
}

// holdsTask checks, in tx, that this node still holds ref's task at its
// generation: errNotOurs if not. It locks the task until tx ends.
func (n *Node) holdsTask(ctx context.Context, tx *store.Tx, ref engine.TaskRef) error {
	task, err := tx.LockTask(ctx, ref.TaskID)
	if err != nil {
		return err
	}
	if !n.holds(task, ref) {
		return errNotOurs
	}
	return nil
}

// recordPart records a part's task done, in the transaction that finished
// it, the job locked: when every part of its frame is stored and no merge
// of the frame is queued, running or done, the frame's merge is queued.
// The job's lock makes the parts that end together take turns, so only
// the last queues it.
func (n *Node) recordPart(ctx context.Context, tx *store.Tx, job *farm.Job, p store.FramePart) error {
	if job.Status != farm.StatusRendering && job.Status != farm.StatusBooting {
		return nil
	}
	if err := tx.ChunkSucceededOn(ctx, n.cfg.WorkerName); err != nil {
		return err
	}
	parts, err := tx.PartsOfFrame(ctx, job.ID, p.Frame)
	if err != nil {
		return err
	}
	if len(parts) < job.FinalConfig.PartsPerFrame() {
		return nil
	}
	for _, q := range parts {
		if !q.Stored() {
			return nil
		}
	}
	merging, err := tx.MergeOfFrame(ctx, job.ID, p.Frame)
	if err != nil || merging {
		return err
	}
	return n.engine.EnqueueMerge(ctx, tx, job, p.Frame)
}

// mergeWorker merges split frames' parts (merge_parts).
func (n *Node) mergeWorker() *taskWorker[engine.MergeArgs] {
	return &taskWorker[engine.MergeArgs]{n: n, kind: store.TaskMerge, start: newMerge, retryAfter: chunkRetry}
}

// merge is one attempt at merging a split frame's parts into the frame.
type merge struct {
	n     *Node
	ref   engine.TaskRef
	frame int
	// blender is the Blender the merge was queued for: the job's, or,
	// once that one's nodes all left the farm, the patch of its release
	// the reaper routed it to ("" for a merge queued before merges
	// named theirs: the job's).
	blender string
	parts   []store.FramePart // nil: nothing to merge (done, or not wanted)
	// leftover are the stored parts of the frame an earlier attempt of
	// this task merged: its node was killed once the frame was stored,
	// before its end removed and forgot them, which this attempt's end
	// does in its stead.
	leftover []store.FramePart
}

func newMerge(n *Node, args engine.MergeArgs) task {
	return &merge{n: n, ref: args.TaskRef, frame: args.Frame, blender: args.BlenderVersion}
}

func (m *merge) load(ctx context.Context) (*farm.Job, error) {
	var job *farm.Job
	m.parts, m.leftover = nil, nil
	err := m.n.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = tx.LockJob(ctx, "", m.ref.JobID); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusBooting:
			// A retried frame whose parts are all stored is merged
			// first: the job renders from here.
			if err := m.n.engine.MoveJob(ctx, tx, job, farm.StatusRendering); err != nil {
				return err
			}
		case farm.StatusRendering:
		default:
			job = nil
			return nil
		}
		frames, err := tx.FramesOfTask(ctx, m.ref.TaskID)
		if err != nil {
			return err
		}
		if len(frames) != 1 || frames[0].Frame != m.frame {
			return nil // no longer this task's
		}
		parts, err := tx.PartsOfFrame(ctx, job.ID, m.frame)
		if err != nil {
			return err
		}
		if frames[0].Status == farm.FrameCompleted {
			// Merged and stored by this task (only the frame's task may
			// complete it): an earlier attempt's end never came.
			for _, p := range parts {
				if p.Stored() {
					m.leftover = append(m.leftover, p)
				}
			}
			return nil
		}
		for _, p := range parts {
			if !p.Stored() {
				return fmt.Errorf("part %d of frame %d is not stored; the frame cannot be merged", p.Part, m.frame)
			}
		}
		m.parts = parts
		return nil
	})
	return job, err
}

func (m *merge) work(ctx context.Context, w *waiter, job *farm.Job) error {
	if job == nil || m.parts == nil {
		return nil
	}
	inst, want, ok := m.n.chunkBlender(job)
	if m.blender != "" {
		inst, ok = m.n.install(m.blender)
		want = m.blender
	}
	if !ok {
		return fmt.Errorf("this render node (%s) does not run Blender %s, which the merge needs", m.n.cfg.WorkerName, want)
	}
	if err := m.n.checkDiskSpace(); err != nil {
		return err
	}
	in, err := m.n.prepareInput(ctx, job)
	if err != nil {
		return err
	}
	fc := job.FinalConfig
	mj := blender.MergeJob{
		BlendPath: in.BlendPath,
		Scene:     fc.Scene,
		Frame:     m.frame,
		Mode:      blender.SplitMode(fc.SplitFrame.Mode),
		Parts:     fc.SplitFrame.Parts,
		Settings:  settingsFor(fc),
		Naming:    fc.OutputNaming,
	}
	if mj.Dir, err = m.n.freshRunDir(job.ID, "merge-", m.ref); err != nil {
		return err
	}
	defer os.RemoveAll(mj.Dir)
	dir, err := m.n.openMergeDir(job.ID, mj)
	if err != nil {
		return err
	}
	defer dir.Close()
	renderSeconds := 0.0
	for _, p := range m.parts {
		err := w.outlast(ctx, func(ctx context.Context) error {
			return m.n.fetchPart(ctx, p.ObjectKey, dir, filepath.Join(filepath.Base(mj.PartsDir()), blender.PartFileName(p.Part)))
		})
		if err != nil {
			return fmt.Errorf("fetch part %d of frame %d: %w", p.Part+1, m.frame, err)
		}
		renderSeconds += p.RenderSeconds
	}

	mergeCtx, stop := context.WithCancel(ctx)
	defer stop()
	var recordErr error
	stored := false
	start := time.Now()
	onEvent := func(ev blender.Event) {
		if recordErr != nil || ev.Kind != blender.FrameSaved || ev.Frame != m.frame {
			return
		}
		// The frame's render time is its parts', and the merge's.
		ev.RenderSeconds = renderSeconds + time.Since(start).Seconds()
		recordErr = m.n.frameSaved(ctx, w, m.ref, ev, nil)
		stored = recordErr == nil
		if recordErr != nil {
			stop()
		}
	}
	_, err = inst.Blender.Merge(mergeCtx, mj, onEvent)
	if recordErr != nil && !errors.As(recordErr, new(*blender.RenderError)) {
		return recordErr
	}
	if err == nil {
		err = recordErr
	}
	if err == nil && !stored {
		err = fmt.Errorf("Blender reported frame %d merged, but never saved it", m.frame)
	}
	if err != nil {
		return fmt.Errorf("merge the %d parts of frame %d: %s", len(m.parts), m.frame, m.n.farmPaths(job.ID, in).scrub(err.Error()))
	}
	return nil
}

// openMergeDir makes the parts and frame folders of mj in its fresh
// directory, and answers a handle on that directory for the parts to be
// written through. The directory lies in the job's output root, where
// every Blender session of the job on this node may write (a warm one
// included, while the parts are fetched): what the node writes there must
// not be diverted by a link such a session plants. So the handle is
// opened from the output root's, which no session can change, and every
// name below it is resolved within it (os.Root): a link that leads out is
// refused, and each folder and part is made new, never found.
func (n *Node) openMergeDir(jobID string, mj blender.MergeJob) (*os.Root, error) {
	root, err := os.OpenRoot(n.outputRoot(jobID))
	if err != nil {
		return nil, err
	}
	defer root.Close()
	dir, err := root.OpenRoot(filepath.Base(mj.Dir))
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{mj.PartsDir(), mj.OutputDir()} {
		if err := dir.Mkdir(filepath.Base(sub), 0o755); err != nil {
			dir.Close()
			return nil, err
		}
	}
	return dir, nil
}

// fetchPart copies the part stored at key into name, a new file below
// dir (the merge's own directory, see openMergeDir), refusing one larger
// than a part may be.
func (n *Node) fetchPart(ctx context.Context, key string, dir *os.Root, name string) error {
	body, err := n.objects.Get(ctx, key)
	if err != nil {
		return err
	}
	defer body.Close()
	f, err := dir.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	written, err := io.Copy(f, io.LimitReader(body, maxPartBytes+1))
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err == nil && written > maxPartBytes {
		err = fmt.Errorf("the part is larger than %d bytes", maxPartBytes)
	}
	return err
}

func (m *merge) finishAs(workErr error) store.TaskStatus { return chunkStatus(workErr) }

// record ends the merge: its last attempt failed, the job fails naming
// the frame; merged, the frame's parts are removed, and when it was the
// job's last frame, the job moves to finalizing.
func (m *merge) record(ctx context.Context, tx *store.Tx, job *farm.Job, workErr error) error {
	if job.Status != farm.StatusRendering {
		return nil
	}
	if workErr != nil {
		frames, err := tx.FramesOfTask(ctx, m.ref.TaskID)
		if err != nil {
			return err
		}
		for _, f := range frames {
			if !f.Status.IsFinal() {
				f.Status, f.Error = farm.FrameFailed, workErr.Error()
				if err := tx.UpdateFrame(ctx, f); err != nil {
					return err
				}
			}
		}
		job.FailedReason = renderFailure(&blender.RenderError{Frame: m.frame, Line: workErr.Error()}, m.n.engine.MergeAttempts(), 0, m.n.cfg.MaxFailedChunks, m.n.farmPaths(job.ID, nil))
		if err := m.n.engine.MoveJob(ctx, tx, job, farm.StatusFailed); err != nil {
			return err
		}
		return m.n.engine.CancelWork(ctx, tx, job.ID)
	}
	merged := m.parts
	if merged == nil {
		merged = m.leftover
	}
	if len(merged) > 0 {
		// The parts were the frame's intermediate files: removed, and
		// forgotten, so that a retry of the frame renders them again.
		if err := m.n.engine.Insert(ctx, tx, engine.DeleteObjectsArgs{JobID: job.ID, Prefixes: partHoldersPrefixes(job.ID, m.frame, merged)}); err != nil {
			return err
		}
		if err := tx.ForgetParts(ctx, job.ID, m.frame); err != nil {
			return err
		}
	}
	// A frame merged while others still merge cannot be the job's last;
	// else the job moves on as after a chunk (to finalizing, or suspended
	// for its scout frames), in this transaction, which holds its lock.
	merging, err := tx.UnfinishedTasks(ctx, job.ID, store.TaskMerge)
	if err != nil || merging > 0 {
		return err
	}
	_, err = m.n.engine.SettleRenderingIn(ctx, tx, job)
	return err
}

func (m *merge) done(bool) { m.n.tidyIfFinal(m.ref.JobID) }

// partHoldersPrefixes are the prefixes under which the tasks of a merged
// frame's parts stored them, each generation of each (farm.PartKey):
// what the merge removes. Not the frame's whole folder of parts: the
// removal may run late (River retries it through a bucket's outage),
// after a retry of the frame has stored new parts there, under tasks of
// its own.
func partHoldersPrefixes(jobID string, frame int, parts []store.FramePart) []string {
	var prefixes []string
	for _, p := range parts {
		prefix := farm.JobPartsPrefix(jobID) + strconv.Itoa(frame) + "/" + p.TaskID + "."
		if !slices.Contains(prefixes, prefix) {
			prefixes = append(prefixes, prefix)
		}
	}
	return prefixes
}
