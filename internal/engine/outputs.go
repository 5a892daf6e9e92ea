package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// RemoveUnkeptOutputs removes what job jobID's finalizings stored that
// the job does not keep, and answers how many objects of their folders it
// removed: the zips and preview video of a finalizing that failed, lost
// its task (canceled, or given to another node while its own node
// stalled), or died, and those of a completed finalizing that a retry
// superseded (the retry forgets the job's files in its transaction and
// queues this). A holder whose River attempt failed in passing and
// handed its task back keeps its folder for the next attempt of the same
// generation, which stores there again.
//
// Each holder of a finalize task stores in a folder of its own
// (farm.FinalizeOutputsPrefix), and a folder is removed only once its
// holder can neither store in it nor record it any more (HoldersOver:
// its task had moved on to a later generation, or ended) and the job
// does not record its files. That holds for good, so this may run late
// (a retry's removal, queued long before it runs) and still never takes
// the files of a finalizing that followed: a finalize task it did not
// read, or the generation it read of a task still queued or running, or
// a later one, is left alone. The tasks are read before the job: a
// holder that ends between the two reads is read running, and what it
// recorded as it ended is read with the job.
//
// Zips and previews stored under the keys of farms before the outputs/
// folders (farm.LegacyJobOutputKeys) are removed unless the job records
// them or is finalizing: in a rolling update, a node of such a version
// may be finalizing the job, storing them there and then recording them.
// What it did not record goes with a sweep once the job has moved on (a
// cancel's, a retry's, or the end of a finalizing of this version).
func (e *Engine) RemoveUnkeptOutputs(ctx context.Context, jobID string) (int, error) {
	tasks, err := e.store.TasksOfJob(ctx, jobID, store.TaskFinalize)
	if err != nil {
		return 0, err
	}
	job, err := e.store.GetJob(ctx, "", jobID)
	if errors.Is(err, store.ErrNotFound) {
		// No such job. A deleted one (DELETE /jobs/{id}) keeps its row,
		// its files marked deleted: it is swept below, keeping nothing.
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	kept := map[string]bool{}
	if !job.Output.IsDeletedForClient {
		for _, key := range []string{job.Files.FramesZipKey, job.Files.CompositeNodesZipKey, job.Files.VideoKey} {
			kept[key] = key != ""
		}
	}
	over := HoldersOver(tasks)
	stored, err := e.objects.List(ctx, farm.JobOutputsPrefix(jobID))
	if err != nil {
		return 0, fmt.Errorf("list the outputs of job %s: %w", jobID, err)
	}
	var unkept []string
	for _, obj := range stored {
		taskID, generation, ok := farm.OutputsHolder(jobID, obj.Key)
		if ok && !kept[obj.Key] && over(taskID, generation) {
			unkept = append(unkept, obj.Key)
		}
	}
	removed := 0
	for _, key := range unkept {
		if err := e.objects.Delete(ctx, key); err != nil {
			return removed, fmt.Errorf("remove %s: %w", key, err)
		}
		removed++
	}
	if job.Status == farm.StatusFinalizing {
		return removed, nil
	}
	for _, key := range farm.LegacyJobOutputKeys(jobID) {
		if kept[key] {
			continue
		}
		if err := e.objects.Delete(ctx, key); err != nil {
			return removed, fmt.Errorf("remove %s: %w", key, err)
		}
	}
	return removed, nil
}

// HoldersOver answers, from a job's tasks as read, whether the holder of
// a task's generation can store and record nothing more: the task ended
// (an ended task is never handed out again, at any generation), or had
// moved on to a later generation. A task that was not read (made since)
// is not over. Once over, a holder stays so, and what it recorded is in
// any read made after the tasks were: it records nothing once its task
// has moved on or ended.
func HoldersOver(tasks []store.Task) func(taskID string, generation int) bool {
	read := make(map[string]store.Task, len(tasks))
	for _, t := range tasks {
		read[t.ID] = t
	}
	return func(taskID string, generation int) bool {
		t, ok := read[taskID]
		if !ok {
			return false
		}
		switch t.Status {
		case store.TaskDone, store.TaskFailed, store.TaskCanceled:
			return true
		}
		return generation < t.Generation
	}
}
