package engine

import (
	"context"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// RemoveOrphanFrames removes the objects under job jobID's frames/ that
// no frame records and whose holder can store and record nothing more
// (HoldersOver), and answers how many. A chunk handed out again (its
// worker was given up on) may still be running: a frame it stores after
// the job's finalizing removed the orphans, its node then dying before
// it could find the task gone and remove the file itself, would stay,
// counted in no workspace's storage, until the job is deleted. The
// reaper's requeue queues this for an hour later. The tasks are read
// before the frames, so a holder that records between the two reads is
// read running and its files kept; a file outside a holder's folder (a
// frame stored before frames had folders) is left to the finalizing.
func (e *Engine) RemoveOrphanFrames(ctx context.Context, jobID string) (int, error) {
	tasks, err := e.store.TasksOfJob(ctx, jobID, "")
	if err != nil {
		return 0, err
	}
	frames, err := e.store.FramesOfJob(ctx, jobID)
	if err != nil {
		return 0, err
	}
	outputs, err := e.store.FrameOutputsOfJob(ctx, jobID)
	if err != nil {
		return 0, err
	}
	removed, _, err := RemoveUnreferencedFrames(ctx, e.objects, jobID, tasks, frames, outputs, false)
	return removed, err
}

// RemoveUnreferencedFrames deletes from objects the files under job
// jobID's frames/ that neither frames nor outputs (a frame's recorded
// files) name, and whose holder was over in tasks, read before them:
// everything such a holder recorded is in frames and outputs. unheld
// also removes such a file outside any holder's folder. It answers how
// many it removed, and the first.
func RemoveUnreferencedFrames(ctx context.Context, objects objstore.Store, jobID string, tasks []store.Task, frames []store.Frame, outputs map[int][]farm.FrameOutput, unheld bool) (removed int, first string, err error) {
	referenced := make(map[string]bool, len(frames))
	for _, f := range frames {
		if f.ObjectKey != "" {
			referenced[f.ObjectKey] = true
		}
	}
	for _, files := range outputs {
		for _, o := range files {
			referenced[o.ObjectKey] = true
		}
	}
	stored, err := objects.List(ctx, farm.JobFramesPrefix(jobID))
	if err != nil {
		return 0, "", fmt.Errorf("list the frames of job %s: %w", jobID, err)
	}
	over := HoldersOver(tasks)
	for _, obj := range stored {
		if referenced[obj.Key] {
			continue
		}
		taskID, generation, held := farm.FramesHolder(jobID, obj.Key)
		if held && !over(taskID, generation) || !held && !unheld {
			continue
		}
		if err := objects.Delete(ctx, obj.Key); err != nil {
			return removed, first, fmt.Errorf("remove orphan frame image %s: %w", obj.Key, err)
		}
		if removed == 0 {
			first = obj.Key
		}
		removed++
	}
	return removed, first, nil
}
