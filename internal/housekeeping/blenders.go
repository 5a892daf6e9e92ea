package housekeeping

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// RouteFromGoneBlenders moves on the validations and merges queued for a
// Blender version that no live render node has run for longer than the
// farm's worker timeout: such a task waits on that version's control
// queue, which only nodes of that Blender work, and would wait for ever.
// Each is given what the rule that chose its Blender would choose now,
// among the versions the farm's live nodes offer:
//
//   - a validation, the Blender that opens its file (farm.ChooseBlender of
//     the file's version, which the node that routed it recorded on the
//     job); a validation routed before nodes recorded it goes to the
//     queue every node works, whose first taker reads the file and
//     chooses;
//   - a merge, the newest patch of the job's Blender's release (its parts
//     were rendered by it, and another release's compositor and color
//     management could make the frame differ from the job's others), or
//     exactly the version the render request pinned, when it named a
//     patch.
//
// When none will do, the job fails with BLENDER_UNAVAILABLE, saying which
// Blender the task needs. A farm with no live render node at all is left
// to wait: it lacks every Blender, not one, and its work goes on when the
// nodes are back.
//
// A version is taken for gone when no run that offered it beat its heart
// within twice the worker timeout: a node counts as live for a worker
// timeout after its last heartbeat, so that is a worker timeout without
// one. A task routed to it less than a worker timeout ago is left too.
// Until then the job's progress names the Blender it waits for
// (waitingFor).
func (h *Housekeeping) RouteFromGoneBlenders(ctx context.Context) error {
	timeout := h.workerTimeout(ctx)
	now := time.Now()
	heard, err := h.store.BlenderLastBeats(ctx, now.Add(-2*timeout))
	if err != nil {
		return err
	}
	tasks, err := h.store.TasksOnBlenderQueues(ctx, now.Add(-timeout), slices.Collect(maps.Keys(heard)))
	if err != nil || len(tasks) == 0 {
		return err
	}
	offers, err := h.store.LiveBlenderVersions(ctx, now.Add(-timeout))
	if err != nil {
		return err
	}
	if len(offers) == 0 {
		return nil
	}
	offered := make([]string, len(offers))
	for i, o := range offers {
		offered[i] = o.Version
	}
	for _, t := range tasks {
		if err := h.routeFromGoneBlender(ctx, t, offered, timeout); err != nil {
			h.log.Error("could not move on a task whose Blender left the farm", "task", t.ID, "job", t.JobID, "kind", t.Kind, "blender", t.BlenderVersion, "err", err)
		}
	}
	return nil
}

// routeFromGoneBlender routes t, whose Blender left the farm, to the
// Blender that will do instead, or fails its job.
func (h *Housekeeping) routeFromGoneBlender(ctx context.Context, t store.Task, offered []string, timeout time.Duration) error {
	job, err := h.store.GetJob(ctx, "", t.JobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	to, failure := blenderInstead(job, t, offered, timeout)
	if failure == nil {
		routed, err := h.engine.Reroute(ctx, t, to)
		if routed {
			h.log.Warn("a task's Blender left the farm; it goes to another Blender", "task", t.ID, "job", t.JobID, "kind", t.Kind,
				"from", t.BlenderVersion, "to", cmp.Or(to, "any node"), "offered", offered)
		}
		return err
	}
	return h.store.InTx(ctx, func(tx *store.Tx) error {
		job, err := tx.LockJob(ctx, "", t.JobID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		current, err := tx.LockTask(ctx, t.ID)
		if err != nil {
			return err
		}
		if current.Status != store.TaskQueued || current.Generation != t.Generation {
			return nil // a node took it, or it ended, meanwhile
		}
		// What the farm runs is read again under the job's lock: a node of
		// the task's Blender, or of one that will do, may have started
		// since the reaper looked (it may have waited for this lock), and
		// a job failed for want of a Blender that is back stays failed.
		// The next run routes a task whose Blender will not come back.
		now := time.Now()
		heard, err := tx.BlenderLastBeats(ctx, now.Add(-2*timeout))
		if err != nil {
			return err
		}
		if _, ok := heard[t.BlenderVersion]; ok {
			return nil
		}
		offers, err := tx.LiveBlenderVersions(ctx, now.Add(-timeout))
		if err != nil || len(offers) == 0 {
			return err
		}
		offered = make([]string, len(offers))
		for i, o := range offers {
			offered[i] = o.Version
		}
		if _, failure = blenderInstead(job, t, offered, timeout); failure == nil {
			return nil
		}
		h.log.Warn("a task's Blender left the farm and no other will do; its job fails", "task", t.ID, "job", t.JobID, "kind", t.Kind,
			"blender", t.BlenderVersion, "offered", offered)
		return h.failJobIn(ctx, tx, job, failure)
	})
}

// blenderInstead is the Blender t goes to now that its own left the farm
// ("" for a validation: any node's), or the reason its job fails when
// none of offered will do.
func blenderInstead(job *farm.Job, t store.Task, offered []string, timeout time.Duration) (string, *farm.FailedReason) {
	if t.Kind == store.TaskMerge {
		need := t.BlenderVersion
		if v, ok := farm.ParseBlenderVersion(need); ok {
			need = v.Release().String()
		}
		if rc := job.RequestedConfig; rc != nil && rc.BlenderVersion != nil {
			if pin, ok := farm.ParseBlenderVersion(*rc.BlenderVersion); ok && pin.HasPatch {
				need = pin.String()
			}
		}
		if v, err := farm.PinBlender(need, "", offered); err == nil {
			return v, nil
		}
		return "", farm.BlenderGoneForMerge(job.ID, t.Chunk, t.BlenderVersion, need, timeout, offered)
	}
	if job.SceneFile == nil || job.SceneFile.Version == "" {
		return "", nil
	}
	if v, ok := farm.ChooseBlender(job.SceneFile.Version, offered); ok {
		return v, nil
	}
	return "", farm.BlenderGoneForFile(job.SceneFile.Version, t.BlenderVersion, timeout, offered)
}
