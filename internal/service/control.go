package service

import (
	"context"
	"fmt"
	"strings"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Job control: suspend a rendering job and resume it, retry frames of a
// job that ended. Each is one transaction: the job locked, its status
// moved (engine.MoveJob, with its webhook events) and its work stopped or
// queued through the engine.

// Suspend stops a booting or rendering job's work: its running Blenders
// are killed (their River jobs canceled, as a cancel does), frames
// already stored stay stored, and the others wait in the queue for
// Resume. Suspending a suspended job answers it as it is, with replay set.
func (s *Service) Suspend(ctx context.Context, p farm.Principal, id string) (*farm.Job, bool, error) {
	var job *farm.Job
	replay := false
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusSuspended:
			replay = true
			return nil
		case farm.StatusBooting, farm.StatusRendering:
		case farm.StatusFinalizing:
			return farm.InvalidState("suspend", job.Status, "every frame is rendered and its zip and preview are being made; wait for it to complete")
		case farm.StatusCreated, farm.StatusValidating, farm.StatusValidated:
			return farm.InvalidState("suspend", job.Status, "only a rendering job can be suspended; a job that is not rendering yet has nothing to stop")
		default:
			return farm.InvalidState("suspend", job.Status, "only a rendering job can be suspended; render some of its frames again with POST /jobs/"+id+"/retry")
		}
		if err := s.engine.SuspendWork(ctx, tx, job.ID); err != nil {
			return err
		}
		job.SuspendedReason = farm.SuspendedOnRequest
		return s.engine.MoveJob(ctx, tx, job, farm.StatusSuspended)
	})
	if err != nil {
		return nil, false, err
	}
	if !replay {
		// The slots its chunks held go to other jobs' waiting chunks.
		s.dispatch(ctx)
	}
	return s.present(ctx, job), replay, nil
}

// Resume renders a suspended job's frames that are not completed yet,
// and only those: a frame stored before the suspend is neither rendered
// nor stored again. The job goes back to rendering. Resuming a job that
// is rendering again, or went on to finalize and complete, answers it as
// it is, with replay set.
func (s *Service) Resume(ctx context.Context, p farm.Principal, id string) (*farm.Job, bool, error) {
	var job *farm.Job
	replay := false
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusSuspended:
		case farm.StatusBooting, farm.StatusRendering, farm.StatusFinalizing, farm.StatusCompleted:
			replay = true
			return nil
		case farm.StatusFailed, farm.StatusCanceled:
			return farm.InvalidState("resume", job.Status, "only a suspended job can be resumed; render some of its frames again with POST /jobs/"+id+"/retry")
		default:
			return farm.InvalidState("resume", job.Status, "only a suspended job can be resumed")
		}
		frames, err := tx.FramesOfJob(ctx, job.ID)
		if err != nil {
			return err
		}
		var left []int
		for _, f := range frames {
			if f.Status != farm.FrameCompleted {
				left = append(left, f.Frame)
			}
		}
		if err := s.engine.MoveJob(ctx, tx, job, farm.StatusRendering); err != nil {
			return err
		}
		if len(left) == 0 {
			// Every frame landed as the job was suspended: what is left is
			// its zip and preview.
			if err := s.engine.MoveJob(ctx, tx, job, farm.StatusFinalizing); err != nil {
				return err
			}
			_, err := s.engine.Enqueue(ctx, tx, job, store.TaskFinalize)
			return err
		}
		if err := s.engine.EnqueueChunks(ctx, tx, job, farm.Chunks(left, job.FinalConfig.ChunkSize)); err != nil {
			return err
		}
		// A split job's frames count already, but the parts of those left
		// out until now (a scout job's) are queued only here.
		if parts := job.FinalConfig.PartsPerFrame(); parts > 1 {
			return s.checkRoomForFrames(ctx, tx, p.WorkspaceID, len(left)*parts, "resuming this job, its frames in parts, asks for")
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	if !replay {
		s.dispatch(ctx)
	}
	return s.present(ctx, job), replay, nil
}

// Retry renders again some frames of a job that completed, failed or was
// canceled, with the job's final configuration: every frame that did not
// complete (req.Frames "failed"), or the frames req.FrameRanges names. A
// frame keeps its attempts and is replaced where it is: its new image,
// stored under its new task's key, is the one its downloads name once it
// lands. The job then makes its zip and preview again and completes; a
// failed job whose frames all completed only makes them again. Every
// render node the job had blocked may take its chunks again.
//
// What the retry supersedes is removed with its records: the files of
// the frames it renders again, and the job's zips and preview, which no
// longer show the frames. Their records go in the retry's transaction
// and their removal is queued in it (delete_objects), so that a retry
// that then ends without finalizing (canceled, failed) leaves no file
// that nothing records and the workspace's storage no longer counts.
func (s *Service) Retry(ctx context.Context, p farm.Principal, id string, req farm.RetryRequest) (*farm.Job, error) {
	var job *farm.Job
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusCompleted, farm.StatusFailed, farm.StatusCanceled:
		case farm.StatusSuspended:
			return farm.InvalidState("retry", job.Status, "resume it with POST /jobs/"+id+"/resume, which renders the frames not yet completed")
		default:
			return farm.InvalidState("retry", job.Status, "only a job that ended (completed, failed or canceled) can be retried; wait for it to end, or cancel it first")
		}
		if job.Output.IsDeletedForClient {
			return farm.InvalidState("retry", job.Status, "its files, the uploaded file among them, were deleted (DELETE /jobs/"+id+"); upload the file again to render it")
		}
		if job.FinalConfig == nil {
			return farm.InvalidState("retry", job.Status, "it never rendered, so it has no frames to render again; upload the file again to make a new job")
		}
		rows, err := tx.FramesOfJob(ctx, job.ID)
		if err != nil {
			return err
		}
		statuses := make(map[int]farm.FrameStatus, len(rows))
		for _, f := range rows {
			statuses[f.Frame] = f.Status
		}
		frames, err := farm.RetryFrames(req, statuses)
		if err != nil {
			return err
		}
		if err := tx.ForgetJobFailures(ctx, job.ID); err != nil {
			return err
		}
		// The zip and preview no longer show the frames; finalizing
		// makes them anew.
		job.Files = farm.JobFiles{}
		if len(frames) == 0 {
			if job.Status != farm.StatusFailed || len(rows) == 0 {
				return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "frames",
					Message: fmt.Sprintf("every frame of the job completed, so none failed; name the frames to render again with frameRanges, such as {\"frameRanges\": [\"%d\"]}", job.FinalConfig.FirstFrame())}
			}
			// Its frames all rendered and its finalizing failed: finalize
			// again.
			if err := s.engine.MoveJob(ctx, tx, job, farm.StatusFinalizing); err != nil {
				return err
			}
			_, err := s.engine.Enqueue(ctx, tx, job, store.TaskFinalize)
			return err
		}
		removal, err := supersededFiles(ctx, tx, job.ID, rows, frames)
		if err != nil {
			return err
		}
		if err := tx.ForgetFrameFiles(ctx, job.ID, frames); err != nil {
			return err
		}
		for _, batch := range removalBatches(removal, maxRemovalEntries) {
			if err := s.engine.Insert(ctx, tx, batch); err != nil {
				return fmt.Errorf("removal of the files job %s's retry supersedes: %w", job.ID, err)
			}
		}
		if err := s.engine.MoveJob(ctx, tx, job, farm.StatusBooting); err != nil {
			return err
		}
		if err := s.engine.EnqueueChunks(ctx, tx, job, farm.Chunks(frames, job.FinalConfig.ChunkSize)); err != nil {
			return err
		}
		// The job's every frame is in progress again, and listed so.
		if err := s.checkRoomForFrames(ctx, tx, p.WorkspaceID, len(rows), "retrying this job puts back in progress its"); err != nil {
			return err
		}
		s.log.Info("retrying frames of a job", "job", job.ID, "frames", strings.Join(farm.CompactRanges(frames), ","))
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.dispatch(ctx)
	return s.present(ctx, job), nil
}

// supersededFiles is the removal of what a retry of frames retried of
// job jobID supersedes, rows being the job's frames: the files those
// frames recorded (their images, each view's, the File Output nodes'
// images, the preview's proxies), but none that a frame not retried
// refers to, and the job's zips and preview (Outputs). A holder's folder
// (frames/{task}.{generation}/) none of whose recorded files is kept is
// removed whole, which also takes what its holder stored and never
// recorded, and keeps the removal small for a retry of thousands of
// frames: nothing is stored there again, as the retry renders its frames
// under new tasks. A frame recorded before frames had folders of their
// own (its image right under frames/) is removed by its key.
// maxRemovalEntries bounds the keys and prefixes one delete_objects job
// names: a retry of a job of 100,000 one-frame chunks supersedes as many
// folders, and one River job of them all would be megabytes of arguments
// that a failure makes start over from the first.
const maxRemovalEntries = 1000

// removalBatches splits a removal into removals of at most max keys and
// prefixes each; the first carries its other instructions (Outputs).
func removalBatches(a engine.DeleteObjectsArgs, max int) []engine.DeleteObjectsArgs {
	batches := []engine.DeleteObjectsArgs{{JobID: a.JobID, Outputs: a.Outputs}}
	add := func(key, prefix string) {
		last := &batches[len(batches)-1]
		if len(last.Keys)+len(last.Prefixes) == max {
			batches = append(batches, engine.DeleteObjectsArgs{JobID: a.JobID})
			last = &batches[len(batches)-1]
		}
		if key != "" {
			last.Keys = append(last.Keys, key)
		} else {
			last.Prefixes = append(last.Prefixes, prefix)
		}
	}
	for _, key := range a.Keys {
		add(key, "")
	}
	for _, prefix := range a.Prefixes {
		add("", prefix)
	}
	return batches
}

func supersededFiles(ctx context.Context, tx *store.Tx, jobID string, rows []store.Frame, retried []int) (engine.DeleteObjectsArgs, error) {
	removal := engine.DeleteObjectsArgs{JobID: jobID, Outputs: true}
	outputs, err := tx.FrameOutputsOfJob(ctx, jobID)
	if err != nil {
		return removal, err
	}
	again := make(map[int]bool, len(retried))
	for _, f := range retried {
		again[f] = true
	}
	framesPrefix := farm.JobFramesPrefix(jobID)
	// holder is the folder of the task's holder that stored key, "" for a
	// key of no such folder.
	holder := func(key string) string {
		rest, ok := strings.CutPrefix(key, framesPrefix)
		if i := strings.Index(rest, "/"); ok && i > 0 {
			return framesPrefix + rest[:i+1]
		}
		return ""
	}
	var gone []string
	kept := map[string]bool{}
	for _, f := range rows {
		keys := make([]string, 0, 1+len(outputs[f.Frame]))
		if f.ObjectKey != "" {
			keys = append(keys, f.ObjectKey)
		}
		for _, o := range outputs[f.Frame] {
			keys = append(keys, o.ObjectKey)
		}
		for _, key := range keys {
			if again[f.Frame] {
				gone = append(gone, key)
			} else {
				kept[key], kept[holder(key)] = true, true
			}
		}
	}
	listed := map[string]bool{}
	for _, key := range gone {
		folder := holder(key)
		switch {
		case kept[key], listed[key], folder != "" && listed[folder]:
		case folder != "" && !kept[folder]:
			listed[folder] = true
			removal.Prefixes = append(removal.Prefixes, folder)
		default:
			listed[key] = true
			removal.Keys = append(removal.Keys, key)
		}
	}
	return removal, nil
}
