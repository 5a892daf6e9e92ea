package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// chunkRetry is the wait after a chunk's failed attempt: 2 s, then 4 s,
// so that a frame that fails for a passing reason gets another go soon,
// and one that fails for good fails its job within seconds rather than
// River's default minutes.
func chunkRetry(attempt int) time.Duration { return time.Duration(attempt) * 2 * time.Second }

// chunk is one attempt at rendering a chunk of a job's frames, storing
// each frame the moment Blender saves it.
type chunk struct {
	n     *Node
	ref   engine.TaskRef
	times chunkTimes

	todo     []int // the chunk's frames not yet stored
	rendered bool  // Blender was asked to render them
	// part is the part of a split frame the task renders; nil for a
	// chunk of whole frames.
	part *store.FramePart
	// job is the job as the chunk started (nil when it no longer wanted
	// the chunk).
	job *farm.Job
}

func newChunk(n *Node, args engine.RenderArgs) task {
	return &chunk{n: n, ref: args.TaskRef, times: chunkTimes{start: time.Now()}}
}

func (c *chunk) done(recorded bool) {
	if c.rendered {
		c.n.tidyIfFinal(c.ref.JobID)
		if recorded {
			c.times.log(c.n.log, c.ref.JobID, c.ref.TaskID, len(c.todo))
		}
	}
}

func (c *chunk) load(ctx context.Context) (*farm.Job, error) {
	job, todo, err := c.n.startChunk(ctx, c.ref)
	c.todo, c.part, c.job = todo, nil, job
	if err != nil || job == nil || job.FinalConfig.PartsPerFrame() == 1 {
		return job, err
	}
	p, ok, err := c.n.store.PartOfTask(ctx, c.ref.TaskID)
	if err != nil || !ok {
		return job, err
	}
	c.part, c.todo = &p, nil
	if !p.Stored() {
		c.todo = []int{p.Frame}
	}
	return job, nil
}

func (c *chunk) work(ctx context.Context, w *waiter, job *farm.Job) error {
	if job == nil || len(c.todo) == 0 {
		return nil // the job no longer wants the chunk, or it is done
	}
	inst, want, ok := c.n.chunkBlender(job)
	if !ok {
		// The dispatcher gives a chunk only to nodes that run its job's
		// Blender; this node registered the Blenders it runs, so this is
		// a fault of the farm's, which the chunk's attempts and failure
		// report.
		return fmt.Errorf("this render node (%s) does not run Blender %s, which the job renders with; it runs %s",
			c.n.cfg.WorkerName, want, strings.Join(c.n.BlenderVersions(), ", "))
	}
	// Blender's frames need room: a disk below its reserve is waited for
	// before Blender starts, not found by a failure half-way.
	if err := c.n.checkDiskSpace(); err != nil {
		return err
	}
	c.rendered = true
	var err error
	if c.part != nil {
		err = c.n.renderPart(ctx, w, c.ref, job, inst, *c.part, &c.times)
	} else {
		err = c.n.renderFrames(ctx, w, c.ref, job, inst, c.todo, &c.times)
	}
	if savedEveryFrame(err) {
		// Blender failed on its way out, after every frame was saved and
		// stored: the chunk is done.
		c.n.log.Warn("Blender failed after saving every frame of the chunk", "job", job.ID, "task", c.ref.TaskID, "err", err)
		return nil
	}
	if ctx.Err() != nil {
		return err
	}
	return c.n.blameDisk(err)
}

func (c *chunk) finishAs(renderErr error) store.TaskStatus { return chunkStatus(renderErr) }

// unlockedJob: a chunk of whole frames that rendered ends without its
// job's lock, recorded against the job as it started, and settles the
// job once that end commits (settleAfterChunk). Nothing in such an end
// depends on the job's state meanwhile: a cancel, a suspension or a
// failure of the job cancels its chunks first, and the end of a chunk no
// longer running writes nothing (store.FinishTask). A chunk that failed
// (it may fail its job) and a part of a split frame (its frame's last
// part queues the merge) lock the job, as every task's end did before.
func (c *chunk) unlockedJob(renderErr error) *farm.Job {
	if c.part != nil || renderErr != nil {
		return nil
	}
	return c.job
}

func (c *chunk) afterUnlockedEnd(ctx context.Context) { c.n.settleAfterChunk(ctx, c.job) }

func (c *chunk) countFailure(ctx context.Context, attempt int, renderErr error) (bool, error) {
	return c.n.countChunkFailure(ctx, c.ref, attempt, renderErr)
}

// countChunkFailure records a failed attempt at a chunk against this node
// and the job, in one transaction (see farm's rules): the chunks of the
// job that failed here reach farm.BlockAfterFailedChunks, and this node
// takes no more of them while another live node may; the job's failed
// chunks on the nodes not blocked on it reach Config.MaxFailedChunks, and
// it fails now (failJob); else the node's run of failures takes in the
// job, which makes it sick once it spans farm.SickAfterJobs jobs.
//
// The count is tried again through an outage of the database: a try
// whose commit went through while its answer was lost has counted the
// attempt's failure (store.CountFailureOnce), and the next only reads
// whether the job fails.
func (n *Node) countChunkFailure(ctx context.Context, ref engine.TaskRef, attempt int, renderErr error) (failJob bool, err error) {
	worker := n.cfg.WorkerName
	message := n.farmPaths(ref.JobID, nil).scrub(renderErr.Error())
	err = n.store.InTx(ctx, func(tx *store.Tx) error {
		failJob = false
		job, err := tx.LockJob(ctx, "", ref.JobID)
		if err != nil {
			return err
		}
		task, err := tx.LockTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		if !n.holds(task, ref) {
			return errNotOurs
		}
		first, err := tx.CountFailureOnce(ctx, task.ID, ref.Generation, attempt)
		if err != nil {
			return err
		}
		if !first {
			jobFailures, err := tx.JobChunkFailures(ctx, job.ID)
			failJob = jobFailures >= n.cfg.MaxFailedChunks
			return err
		}
		counted, err := tx.CountChunkFailure(ctx, job.ID, worker, message)
		if err != nil {
			return err
		}
		if counted.WorkerFailures >= farm.BlockAfterFailedChunks {
			if err := n.blockOn(ctx, tx, job, counted.WorkerFailures); err != nil {
				return err
			}
		}
		// The failures of a node blocked on the job were the node's
		// fault, not the file's: they do not count towards failing it.
		jobFailures, err := tx.JobChunkFailures(ctx, job.ID)
		if err != nil {
			return err
		}
		if jobFailures >= n.cfg.MaxFailedChunks {
			// The job's own fault, most likely: it fails, and the nodes
			// are not held to account (recordChunk absolves them).
			failJob = true
			return nil
		}
		health, err := tx.ChunkFailedOn(ctx, worker, job.ID)
		if err != nil {
			return err
		}
		if health.Sick() && !health.SickSince.Before(time.Now().Add(-time.Second)) {
			n.log.Error("this render node is sick and takes no more work until `renderfarm workers enable "+worker+"`",
				"worker", worker, "why", health.SickReason)
		}
		return nil
	})
	return failJob, err
}

// blockOn blocks this node on job, whose chunks failed failures times
// here, unless no other live node may take them: the last node that may
// is not blocked, so the job's own limits (its failed chunks, its chunks'
// attempts) end it rather than leaving it to wait for ever.
func (n *Node) blockOn(ctx context.Context, tx *store.Tx, job *farm.Job, failures int) error {
	version := ""
	if job.FinalConfig != nil {
		version = job.FinalConfig.BlenderVersion
	}
	takers, err := tx.TakersOf(ctx, job.ID, n.cfg.WorkerName, version, time.Now().Add(-n.cfg.WorkerTimeout))
	if err != nil {
		return err
	}
	if len(takers) == 0 {
		n.log.Warn("the job's chunks keep failing on this render node, which stays on it: no other live node may take them",
			"job", job.ID, "worker", n.cfg.WorkerName, "failedChunks", failures)
		return nil
	}
	n.log.Warn("the job's chunks failed on this render node; it takes no more of them, and other nodes do",
		"job", job.ID, "worker", n.cfg.WorkerName, "failedChunks", failures, "others", strings.Join(takers, ","))
	return tx.BlockWorker(ctx, job.ID, n.cfg.WorkerName)
}

func (c *chunk) record(ctx context.Context, tx *store.Tx, current *farm.Job, renderErr error) error {
	if c.part != nil && renderErr == nil {
		return c.n.recordPart(ctx, tx, current, *c.part)
	}
	return c.n.recordChunk(ctx, tx, c.ref, current, renderErr)
}

// startChunk moves the job to rendering and lists the chunk's frames that
// still need rendering (after a retry or a rescue, some are done). A nil job
// means the job no longer wants this chunk.
//
// The job is locked only to move it: once it renders, each of its chunks
// starts without waiting for the job's lock, which every chunk's end
// takes (finishTask). A job of thousands of chunks on hundreds of slots
// would otherwise start and end them all in single file. A cancel that
// commits just after this read is no different from one just after this
// transaction: it cancels the chunk's River job, which ends the render.
func (n *Node) startChunk(ctx context.Context, ref engine.TaskRef) (*farm.Job, []int, error) {
	var job *farm.Job
	var todo []int
	err := n.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = tx.GetJob(ctx, "", ref.JobID); err != nil {
			return err
		}
		if job.Status == farm.StatusBooting {
			// The job's first chunks all start at once: one moves it, and
			// the others wait for it together, then find it moved
			// without taking its lock in turn (FirstToMoveJob).
			first, err := tx.FirstToMoveJob(ctx, ref.JobID)
			if err != nil {
				return err
			}
			if !first {
				if job, err = tx.GetJob(ctx, "", ref.JobID); err != nil {
					return err
				}
			}
			if job.Status == farm.StatusBooting {
				if job, err = tx.LockJob(ctx, "", ref.JobID); err != nil {
					return err
				}
			}
		}
		switch job.Status {
		case farm.StatusBooting:
			if err := n.engine.MoveJob(ctx, tx, job, farm.StatusRendering); err != nil {
				return err
			}
		case farm.StatusRendering:
		default:
			job = nil
			return nil
		}
		frames, err := tx.FramesOfTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		for _, f := range frames {
			if f.Status != farm.FrameCompleted {
				todo = append(todo, f.Frame)
			}
		}
		return nil
	})
	return job, todo, err
}

// chunkTimes is where a chunk's time went: Blender's own work, and what the
// farm adds around it (preparing, starting Blender, storing and recording
// frames). It is logged when the chunk ends, for operators and for the
// benchmarks in bench/.
type chunkTimes struct {
	start      time.Time // the worker took the chunk
	spawn      time.Time // Blender was started
	firstFrame time.Time // Blender began the first frame
	lastSaved  time.Time // the last frame was stored and recorded
	exited     time.Time // Blender exited
	// store is the time spent putting frames into the object store,
	// record the time spent in the database transactions of frames.
	store, record time.Duration
}

func (t *chunkTimes) log(log *slog.Logger, jobID, taskID string, frames int) {
	attrs := []slog.Attr{slog.String("job", jobID), slog.String("task", taskID), slog.Int("frames", frames)}
	// A phase that never came (a chunk whose Blender saved nothing, say)
	// is left out rather than logged as the distance to the zero time.
	phase := func(name string, from, to time.Time) {
		if !from.IsZero() && !to.IsZero() {
			attrs = append(attrs, slog.Duration(name, to.Sub(from)))
		}
	}
	// From taking the chunk to starting Blender: the claim, the job's move
	// to rendering and the input made ready.
	phase("prepare", t.start, t.spawn)
	// From starting Blender to its first frame: the process and its
	// sandbox, loading the file, applying the settings.
	phase("blenderStart", t.spawn, t.firstFrame)
	// From the first frame begun to the last one stored.
	phase("rendering", t.firstFrame, t.lastSaved)
	// From the last frame stored to Blender gone.
	phase("blenderExit", t.lastSaved, t.exited)
	attrs = append(attrs, slog.Duration("store", t.store), slog.Duration("record", t.record), slog.Duration("took", time.Since(t.start)))
	log.LogAttrs(context.Background(), slog.LevelInfo, "chunk rendered", attrs...)
}

// renderFrames runs Blender (inst) on the frames and records each as it
// lands; w waits out the outages that recording meets, Blender paused
// meanwhile.
func (n *Node) renderFrames(ctx context.Context, w *waiter, ref engine.TaskRef, job *farm.Job, inst Install, frames []int, times *chunkTimes) error {
	in, err := n.prepareInput(ctx, job)
	if err != nil {
		return err
	}
	outDir, err := n.freshRunDir(job.ID, "", ref)
	if err != nil {
		return err
	}
	defer os.RemoveAll(outDir)

	// A failure to record a frame stops Blender: going on would render
	// frames nobody can see.
	renderCtx, stop := context.WithCancel(ctx)
	defer stop()
	var recordErr error
	started, stored := map[int]bool{}, map[int]bool{}
	onEvent := func(ev blender.Event) {
		if recordErr != nil {
			return
		}
		switch ev.Kind {
		case blender.FrameStarted:
			if started[ev.Frame] {
				return // the same start, reported twice
			}
			started[ev.Frame] = true
			now := time.Now()
			if times.firstFrame.IsZero() {
				times.firstFrame = now
			}
			recordErr = w.outlast(ctx, func(ctx context.Context) error { return n.frameStarted(ctx, ref, ev.Frame) })
			times.record += time.Since(now)
		case blender.FrameSaved:
			recordErr = n.frameSaved(ctx, w, ref, ev, times)
			times.lastSaved = time.Now()
			stored[ev.Frame] = recordErr == nil
		}
		if recordErr != nil {
			stop()
		}
	}
	chunk := blender.RenderJob{
		BlendPath: in.BlendPath,
		Scene:     job.FinalConfig.Scene,
		Frames:    frames,
		OutputDir: outDir,
		Settings:  settingsFor(job.FinalConfig),
		Naming:    job.FinalConfig.OutputNaming,
	}
	times.spawn = time.Now()
	result, err := inst.Blender.Render(renderCtx, chunk, n.outputRoot(job.ID), onEvent)
	times.exited = time.Now()
	if re := (*blender.RenderError)(nil); errors.As(recordErr, &re) {
		// The frame Blender reported is not one the farm takes: the
		// frame failed, as if Blender had said so.
		err, recordErr = recordErr, nil
	}
	if recordErr != nil {
		return recordErr
	}
	if err == nil {
		// Blender's word that the chunk is done is not enough: every frame
		// must have been stored, or the job would wait for it for ever.
		for _, f := range frames {
			if !stored[f] {
				err = &blender.RenderError{Frame: f, Line: fmt.Sprintf("Blender reported the chunk done, but frame %d was never saved", f)}
				break
			}
		}
	}
	// Blender's lines reach the client (the frame's error, the job's
	// failure, the log) without the farm's paths.
	paths := n.farmPaths(job.ID, in)
	if err != nil {
		var re *blender.RenderError
		if errors.As(err, &re) {
			re.Line = paths.scrub(re.Line)
			if re.Frame >= 0 {
				n.frameFailed(ctx, ref, re.Frame, re.Line)
			}
		}
	}
	if result != nil && ctx.Err() == nil {
		// The chunk's log, first saying which Blender rendered it where:
		// a job's owner reads it to see what Blender said about the frames.
		lines := append([]string{fmt.Sprintf("renderfarm: frames %s on render node %s with Blender %s",
			strings.Join(farm.CompactRanges(slices.Sorted(slices.Values(frames))), ","), n.cfg.WorkerName, inst.Version)}, result.LogTail...)
		n.keepLog(ctx, w, ref, chunkLogName(ref), lines, paths)
	}
	return err
}

// frameStarted records that Blender began frame, once per start: every
// start counts as an attempt, a frame begun again after a restart of the
// same worker, or after a retry, too.
func (n *Node) frameStarted(ctx context.Context, ref engine.TaskRef, frame int) error {
	return n.updateFrame(ctx, ref, frame, func(f *store.Frame) {
		f.Status = farm.FrameRendering
		f.Worker = n.cfg.WorkerName
		f.Attempts++
	})
}

func (n *Node) frameFailed(ctx context.Context, ref engine.TaskRef, frame int, line string) {
	err := n.updateFrame(context.WithoutCancel(ctx), ref, frame, func(f *store.Frame) {
		if f.Status != farm.FrameRendering {
			// Blender failed before it announced the frame: it was
			// attempted all the same.
			f.Attempts++
		}
		f.Status = farm.FrameQueued
		f.Worker = n.cfg.WorkerName
		f.Error = line
	})
	if err != nil && !errors.Is(err, errNotOurs) {
		n.log.Warn("could not record failed frame", "job", ref.JobID, "frame", frame, "err", err)
	}
}

// frameFile is one file of a frame to store: its path below the chunk's
// output directory (the farm's name for it), what it is, and its bytes
// (from their start at each call, so a Put is tried again whole).
type frameFile struct {
	rel    string
	output farm.FrameOutput
	body   func() io.Reader
}

// frameSaved stores the frame's files, which the runner took from the
// chunk's output directory and checked, and marks the frame done, unless
// the task has moved on to another holder. times, when not nil, takes the
// time spent storing and recording.
func (n *Node) frameSaved(ctx context.Context, w *waiter, ref engine.TaskRef, ev blender.Event, times *chunkTimes) error {
	if ev.Image == nil {
		return fmt.Errorf("frame %d was reported saved without its image", ev.Frame)
	}
	if ev.Image.Size == 0 {
		// A success that is not one: Blender's word is not enough.
		return &blender.RenderError{Frame: ev.Frame, Line: fmt.Sprintf("Blender reported frame %d saved, but its image %s is empty (0 bytes)", ev.Frame, ev.Image.Name)}
	}
	files := []frameFile{{rel: ev.Image.Name, output: ev.Image.Output, body: ev.Image.Reader}}
	for _, img := range ev.Outputs {
		files = append(files, frameFile{rel: img.Name, output: img.Output, body: img.Reader})
	}
	return n.storeFrame(ctx, w, ref, ev.Frame, files, ev.RenderSeconds, times)
}

// storeFrame stores a frame's files, its own image first, and marks the
// frame done, recording every file, in one transaction (see frameSaved). w
// waits out an outage of the bucket or the database meanwhile: a file is
// stored again from its start when the bucket is back.
func (n *Node) storeFrame(ctx context.Context, w *waiter, ref engine.TaskRef, frame int, files []frameFile, renderSeconds float64, times *chunkTimes) error {
	start := time.Now()
	outputs := make([]farm.FrameOutput, 0, len(files))
	for _, file := range files {
		key := farm.FrameOutputKey(ref.JobID, ref.TaskID, ref.Generation, file.rel)
		var size int64
		err := w.outlast(ctx, func(ctx context.Context) error {
			var err error
			size, err = n.objects.Put(ctx, key, file.body(), maxFrameBytes)
			return err
		})
		if err != nil {
			// What was stored before belongs to no frame: finalizing
			// removes it with the other orphans.
			return fmt.Errorf("store frame %d (%s): %w", frame, file.rel, err)
		}
		output := file.output
		output.ObjectKey, output.SizeBytes = key, size
		outputs = append(outputs, output)
	}
	stored := time.Now()
	if times != nil {
		times.store += stored.Sub(start)
		defer func() { times.record += time.Since(stored) }()
	}
	err := w.outlast(ctx, func(ctx context.Context) error {
		return n.updateFrameAnd(ctx, ref, frame, func(f *store.Frame) {
			f.Status = farm.FrameCompleted
			f.Worker = n.cfg.WorkerName
			f.RenderSeconds = renderSeconds
			f.ObjectKey = outputs[0].ObjectKey
			f.SizeBytes = outputs[0].SizeBytes
			f.Error = ""
		}, func(tx *store.Tx) error {
			return tx.InsertFrameOutputs(ctx, ref.JobID, frame, outputs)
		})
	})
	switch {
	case err == nil:
		n.cfg.Metrics.FrameStored(n.cfg.WorkerName, renderSeconds)
	case errors.Is(err, errNotOurs):
		n.removeUnrecordedFrameFiles(context.WithoutCancel(ctx), ref, frame, outputs)
	}
	return err
}

// removeUnrecordedFrameFiles removes the files of frame this holder
// stored (outputs, its image first), whose record was refused: the task
// is no longer this holder's, so they belong to no frame. Unless the
// frame is recorded with them: an earlier try of this record committed
// and its answer was lost (the connection dropped as the database
// answered), and the task was handed on before the try again. A frame is
// recorded with all its files or none, and only this holder records
// these keys, so the frame's image says which. Files whose frame cannot
// be read are left, orphans that the job's finalizing or removal takes,
// rather than risk a recorded frame's.
func (n *Node) removeUnrecordedFrameFiles(ctx context.Context, ref engine.TaskRef, frame int, outputs []farm.FrameOutput) {
	f, err := n.store.FrameOfTask(ctx, ref.JobID, ref.TaskID, frame)
	switch {
	case err == nil && f.ObjectKey == outputs[0].ObjectKey:
		return
	case err != nil && !errors.Is(err, store.ErrNotFound):
		n.log.Warn("could not see whether a refused frame's files are the ones recorded; they are left", "job", ref.JobID, "frame", frame, "err", err)
		return
	}
	for _, o := range outputs {
		if err := n.objects.Delete(ctx, o.ObjectKey); err != nil {
			n.log.Warn("could not remove a refused frame's file", "key", o.ObjectKey, "err", err)
		}
	}
}

// updateFrame changes one frame of the chunk, checking in the same
// transaction that this worker still holds the task; the write itself
// checks it again in the database, so a requeue between the two cannot let
// a stale holder through.
func (n *Node) updateFrame(ctx context.Context, ref engine.TaskRef, frame int, change func(*store.Frame)) error {
	return n.updateFrameAnd(ctx, ref, frame, change, nil)
}

// updateFrameAnd is updateFrame that also runs and (when not nil) in the
// transaction, once the frame is written.
func (n *Node) updateFrameAnd(ctx context.Context, ref engine.TaskRef, frame int, change func(*store.Frame), and func(*store.Tx) error) error {
	return n.store.InTx(ctx, func(tx *store.Tx) error {
		task, err := tx.LockTask(ctx, ref.TaskID)
		if err != nil {
			return err
		}
		if !n.holds(task, ref) {
			return errNotOurs
		}
		// The one frame, not the chunk's every frame: a chunk of a hundred
		// frames would read them all at each of its frames' two writes.
		f, err := tx.FrameOfTask(ctx, ref.JobID, ref.TaskID, frame)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("frame %d is not part of task %s", frame, ref.TaskID)
		}
		if err != nil {
			return err
		}
		if f.Status == farm.FrameCompleted {
			return nil // each frame once
		}
		from := f.Status
		change(&f)
		if !farm.CanMoveFrame(from, f.Status) {
			return fmt.Errorf("frame %d of job %s cannot move from %s to %s", frame, ref.JobID, from, f.Status)
		}
		err = tx.UpdateFrameOwned(ctx, f, ref.Generation, n.workerID)
		if errors.Is(err, store.ErrConflict) {
			return errNotOurs
		}
		if err != nil || and == nil {
			return err
		}
		return and(tx)
	})
}

// endChunk closes a chunk's task as its last attempt ended, as runTask
// does: with renderErr, failed (see recordChunk); without, done, and its
// job settled after (see chunk.unlockedJob).
func (n *Node) endChunk(ctx context.Context, ref engine.TaskRef, renderErr error) error {
	if savedEveryFrame(renderErr) {
		renderErr = nil
	}
	job, err := n.store.GetJob(ctx, "", ref.JobID)
	if err != nil {
		return err
	}
	c := &chunk{n: n, ref: ref, job: job}
	unlocked, recorded := c.unlockedJob(renderErr), false
	err = n.finishTask(ctx, store.TaskRender, ref, chunkStatus(renderErr), 0, unlocked, func(ctx context.Context, tx *store.Tx, current *farm.Job) error {
		recorded = true
		return n.recordChunk(ctx, tx, ref, current, renderErr)
	})
	if errors.Is(err, errEndedEarlier) {
		recorded, err = true, nil
	}
	if err == nil && recorded && unlocked != nil {
		c.afterUnlockedEnd(ctx)
	}
	return err
}

// chunkStatus is the status a chunk's task ends in.
func chunkStatus(renderErr error) store.TaskStatus {
	if renderErr != nil {
		return store.TaskFailed
	}
	return store.TaskDone
}

// recordChunk records how a chunk ended, in the transaction that finished
// its task. With renderErr (the last attempt failed) the job fails, naming
// the frame; otherwise, if this was the last chunk, the job moves to
// finalizing and the finalize work is queued.
func (n *Node) recordChunk(ctx context.Context, tx *store.Tx, ref engine.TaskRef, job *farm.Job, renderErr error) error {
	if job.Status != farm.StatusRendering && job.Status != farm.StatusBooting {
		return nil
	}
	if renderErr != nil {
		// The frame Blender failed on is failed; the others that never
		// rendered are canceled with the job's other work.
		frameAttempts := 0
		var re *blender.RenderError
		if errors.As(renderErr, &re) && re.Frame >= 0 {
			// The job's frames, not the task's: a part's task is not its
			// frame's.
			frames, err := tx.FramesOfJob(ctx, job.ID)
			if err != nil {
				return err
			}
			for _, f := range frames {
				if f.Frame == re.Frame && !f.Status.IsFinal() {
					frameAttempts = f.Attempts
					f.Status = farm.FrameFailed
					if err := tx.UpdateFrame(ctx, f); err != nil {
						return err
					}
				}
			}
		}
		failures, err := tx.JobChunkFailures(ctx, job.ID)
		if err != nil {
			return err
		}
		// The chunk's last attempt failed, or the job's failed chunks
		// reached the most it may have: then the frame's own attempts say
		// how often it was tried.
		attempts := n.engine.RenderAttempts()
		if failures >= n.cfg.MaxFailedChunks && frameAttempts > 0 {
			attempts = frameAttempts
		}
		job.FailedReason = renderFailure(renderErr, attempts, failures, n.cfg.MaxFailedChunks, n.farmPaths(job.ID, nil))
		if err := n.engine.MoveJob(ctx, tx, job, farm.StatusFailed); err != nil {
			return err
		}
		// The job's other chunks are canceled before any node's row is
		// written: a chunk that rendered ends without the job's lock,
		// holding its task as it writes its node's row, so this
		// transaction must not hold that row as it waits for the task.
		if err := n.engine.CancelWork(ctx, tx, job.ID); err != nil {
			return err
		}
		// The job failed for its own fault, on however many nodes: those
		// failures say nothing of the nodes' health.
		return tx.AbsolveWorkers(ctx, job.ID)
	}
	// What the job does next, now that one more chunk is through, is for
	// settleAfterChunk, once this transaction commits: it does not lock
	// the job (see unlockedJob).
	return tx.ChunkSucceededOn(ctx, n.cfg.WorkerName)
}

// settleAfterChunk moves the job of a chunk of whole frames that just
// ended on (engine.SettleRendering): to finalizing once every frame is
// completed, or suspended once its scout frames are. A job's chunks end
// side by side, without its lock, so each one that finds every frame
// completed right after its commit asks; a job with scout frames asks at
// every chunk's end, its held frames being never completed. A settling
// that fails is left to the reaper, which settles every rendering job
// whose chunks are all through.
func (n *Node) settleAfterChunk(ctx context.Context, job *farm.Job) {
	ctx = context.WithoutCancel(ctx)
	if len(job.FinalConfig.Scouts()) == 0 {
		done, err := n.store.EveryFrameCompleted(ctx, job.ID)
		if err != nil {
			n.log.Warn("could not see whether the job's frames are all rendered; the reaper will", "job", job.ID, "err", err)
			return
		}
		if !done {
			return
		}
	}
	if _, err := n.engine.SettleRendering(ctx, job.ID); err != nil {
		n.log.Warn("could not move the job on after its chunks; the reaper will", "job", job.ID, "err", err)
	}
}

// renderFailure is the reason a job fails for a chunk that failed on its
// last attempt, or as the job's failed chunks reached maxFailed, told
// without the farm's paths. attempts are the failed frame's.
func renderFailure(err error, attempts, failedChunks, maxFailed int, paths farmPaths) *farm.FailedReason {
	if reason := outageFailure(err, farm.FailRender); reason != nil {
		return reason
	}
	var re *blender.RenderError
	if errors.As(err, &re) && re.Frame >= 0 {
		msg := fmt.Sprintf("frame %d failed after %d attempts", re.Frame, attempts)
		if failedChunks >= maxFailed {
			msg += fmt.Sprintf(" (%d chunks of the job failed, the most --max-failed-chunks allows)", failedChunks)
		}
		if re.Line != "" {
			msg += ": " + re.Line
		}
		return &farm.FailedReason{Name: "FRAME_FAILED", Type: farm.FailRender, Message: paths.scrub(msg)}
	}
	return &farm.FailedReason{Name: "RENDER_FAILED", Type: farm.FailRender,
		Message: paths.scrub(fmt.Sprintf("a chunk failed after %d attempts: %v", attempts, err))}
}

// settingsFor turns the final configuration into what the settings script
// applies in Blender.
func settingsFor(fc *farm.FinalConfig) blender.Settings {
	denoise := fc.DenoisingEnabled
	s := blender.Settings{
		Engine:               fc.RenderEngine,
		Samples:              fc.SampleCount,
		ResolutionPercentage: fc.ResolutionPercentage,
		OutputFormat:         fc.OutputFormat,
		ColorMode:            fc.OutputSettings.ColorMode,
		ColorDepth:           fc.OutputSettings.ColorDepth,
		ExrCodec:             fc.OutputSettings.ExrCodec,
		TiffCodec:            fc.OutputSettings.TiffCodec,
		Denoising:            &denoise,
		UseTiling:            fc.UseTiling,
		TileSize:             fc.TileSize,
		ColorManagement:      fc.ColorManagementPreset,
	}
	// A render on GPUs: the dispatcher gave the chunk only to a node with
	// enough of them (farm.RequirementsOf).
	if need := farm.RequirementsOf(fc); need.GPUType != "" {
		s.ComputeDeviceType, s.GPUDevices = need.GPUType, need.GPUCount
	}
	if len(fc.Resolution) == 2 {
		s.ResolutionX, s.ResolutionY = fc.Resolution[0], fc.Resolution[1]
	}
	if fc.OutputSettings.Compression != nil {
		s.Compression = *fc.OutputSettings.Compression
	}
	if fc.OutputSettings.Quality != nil {
		s.Quality = *fc.OutputSettings.Quality
	}
	return s
}

// savedEveryFrame reports whether a render error came after Blender had
// saved every frame it was given (the runner names no frame then).
func savedEveryFrame(err error) bool {
	var re *blender.RenderError
	return errors.As(err, &re) && re.Frame < 0
}
