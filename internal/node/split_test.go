package node

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// splitJob is a job of one frame, split into parts parts in samples
// mode, its part tasks given to a worker run of their own.
func (f *fixture) splitJob(parts int) *farm.Job {
	f.T.Helper()
	cfg := enginetest.RenderConfig(0, "1")
	cfg.SplitFrame = &farm.SplitFrame{Parts: parts}
	job := f.WaitingJob(f.api, 1, cfg)
	f.DispatchAll(job)
	return f.Job(job.ID)
}

// splitJobRendered is splitJob with every part rendered and stored,
// its frame's merge queued.
func (f *fixture) splitJobRendered(parts int) *farm.Job {
	f.T.Helper()
	job := f.splitJob(parts)
	for _, task := range f.Tasks(job.ID, store.TaskRender) {
		f.blender.willRender(fakeRender{saves: []int{1}})
		if err := f.renderWork(f.Ctx, f.Ref(task), 1, enginetest.RenderAttempts); err != nil {
			f.T.Fatal(err)
		}
	}
	return job
}

// partOf answers the part a task renders.
func (f *fixture) partOf(task store.Task) store.FramePart {
	f.T.Helper()
	p, ok, err := f.Store.PartOfTask(f.Ctx, task.ID)
	if err != nil || !ok {
		f.T.Fatalf("PartOfTask(%s) = %v, %v; want its part", task.ID, ok, err)
	}
	return p
}

// mergeWork runs the merge worker on a job's merge task, on attempt of
// max.
func (f *fixture) mergeWork(ctx context.Context, task store.Task, attempt, max int) error {
	f.T.Helper()
	args := engine.MergeArgs{TaskRef: f.Ref(task), Frame: task.Chunk, BlenderVersion: task.BlenderVersion}
	return f.node.mergeWorker().Work(ctx, attemptOf(args, attempt, max))
}

// partsProgress is frame 1's parts in the job's progress.
func (f *fixture) partsProgress(jobID string) farm.PartsProgress {
	f.T.Helper()
	pr, err := f.api.Progress(f.Ctx, f.P, jobID, farm.ProgressQuery{})
	if err != nil || len(pr.Frames) != 1 || pr.Frames[0].Parts == nil {
		f.T.Fatalf("Progress = %+v, %v; want one frame with its parts", pr, err)
	}
	return *pr.Frames[0].Parts
}

// TestASplitFrameIsRenderedInPartsThenMergedOnce: each part is a task of
// its own, rendered with its part's settings; the last part stored queues
// one merge, which stores the frame, and the job moves to finalizing.
func TestASplitFrameIsRenderedInPartsThenMergedOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJob(3)
		if got := job.FinalConfig.SplitFrame; got == nil || got.Mode != farm.SplitBySamples || got.Parts != 3 {
			t.Fatalf("finalConfig.splitFrame = %+v, want samples mode, 3 parts", got)
		}
		tasks := f.Tasks(job.ID, store.TaskRender)
		if len(tasks) != 3 {
			t.Fatalf("%d render tasks, want one per part (3)", len(tasks))
		}
		for i, task := range tasks {
			f.blender.willRender(fakeRender{saves: []int{1}})
			if err := f.renderWork(f.Ctx, f.Ref(task), 1, enginetest.RenderAttempts); err != nil {
				t.Fatalf("part task %d: %v", i, err)
			}
			if got := f.partsProgress(job.ID); got.Completed != i+1 || got.Total != 3 {
				t.Errorf("after %d parts, progress parts = %+v, want %d of 3", i+1, got, i+1)
			}
			if i == 0 {
				// The fake Blender renders a part in 1.5 s: 2 parts left.
				pr, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
				if err != nil || pr.EtaSeconds == nil || *pr.EtaSeconds != 3 {
					t.Errorf("after the first part, progress = %+v, %v; want an ETA of 3 s from the parts", pr, err)
				}
			}
			merges := f.Tasks(job.ID, store.TaskMerge)
			if wantMerges := map[bool]int{true: 1, false: 0}[i == 2]; len(merges) != wantMerges {
				t.Fatalf("after %d parts, %d merge tasks, want %d", i+1, len(merges), wantMerges)
			}
		}
		seen := map[int]bool{}
		for _, r := range f.blender.rendered {
			p := r.Settings.Part
			if p == nil || p.Count != 3 || p.Mode != blender.SplitSamples || len(r.Frames) != 1 || r.Frames[0] != 1 {
				t.Fatalf("a part rendered %v with part %+v, want frame 1, one of 3 parts in samples mode", r.Frames, p)
			}
			seen[p.Index] = true
		}
		if len(seen) != 3 {
			t.Errorf("parts rendered %v, want 0, 1 and 2 once each", seen)
		}
		if st := f.Frames(job.ID)[1].Status; st != farm.FrameRendering {
			t.Errorf("frame 1 = %s before its merge, want rendering", st)
		}

		merge := f.Tasks(job.ID, store.TaskMerge)[0]
		queue, _ := engine.BlenderQueue(engine.QueueControl, job.FinalConfig.BlenderVersion)
		if jobs := f.RiverJobs("merge_parts"); len(jobs) != 1 || jobs[0].Queue != queue {
			t.Fatalf("merge_parts River jobs = %+v, want one on %s", jobs, queue)
		}
		if err := f.mergeWork(f.Ctx, merge, 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}

		if len(f.blender.merged) != 1 || f.blender.merged[0].Parts != 3 || f.blender.merged[0].Frame != 1 || f.blender.merged[0].Settings.Part != nil {
			t.Fatalf("merges = %+v, want one of frame 1's 3 parts, with the frame's settings", f.blender.merged)
		}
		frame := f.Frames(job.ID)[1]
		if frame.Status != farm.FrameCompleted || !strings.HasPrefix(frame.ObjectKey, farm.JobFramesPrefix(job.ID)+merge.ID+".") || !f.Exists(frame.ObjectKey) {
			t.Errorf("frame 1 = %s at %q, want completed, stored by the merge task", frame.Status, frame.ObjectKey)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 1 {
			t.Errorf("%d finalize tasks, want 1", n)
		}
		if n := len(f.RiverJobs("delete_objects")); n != 1 {
			t.Errorf("%d delete_objects River jobs, want 1, for the merged frame's parts", n)
		}
		if got := f.partsProgress(job.ID); got.Completed != 3 {
			t.Errorf("parts of the merged frame = %+v, want 3 of 3", got)
		}
		f.CheckTaskInvariant()
	})
}

// TestAPartRenderedTwiceIsUsedOnce: a part's first holder stored it, then
// was given up on; its successor renders the part again, and the part
// that counts is the first, the second copy removed.
func TestAPartRenderedTwiceIsUsedOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJob(2)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		part := f.partOf(task)
		first := f.Ref(task)
		f.claim(first)
		var saveErr error
		err := saveFakeFrame(t.TempDir(), 1, false, func(ev blender.Event) {
			if ev.Kind == blender.FrameSaved {
				saveErr = f.node.partSaved(f.Ctx, nil, first, part, ev)
			}
		})
		if err != nil || saveErr != nil {
			t.Fatalf("first holder's part: %v, %v", err, saveErr)
		}
		// The first holder is given up on before it finishes the task.
		if err := f.Engine.Requeue(f.Ctx, f.Task(task.ID), "test: the holder is gone"); err != nil {
			t.Fatal(err)
		}
		f.DispatchAll(job)
		second := f.Ref(f.Task(task.ID))
		if second.Generation == first.Generation {
			t.Fatalf("the task kept generation %d, want a new one", first.Generation)
		}

		f.blender.willRender(fakeRender{saves: []int{1}})
		if err := f.renderWork(f.Ctx, second, 1, enginetest.RenderAttempts); err != nil {
			t.Fatalf("second holder: %v", err)
		}

		stored := f.partOf(task)
		firstKey := farm.PartKey(job.ID, 1, task.ID, first.Generation, blender.PartFileName(part.Part))
		secondKey := farm.PartKey(job.ID, 1, task.ID, second.Generation, blender.PartFileName(part.Part))
		if stored.ObjectKey != firstKey {
			t.Errorf("part %d is %q, want the first holder's %q", part.Part, stored.ObjectKey, firstKey)
		}
		if !f.Exists(firstKey) || f.Exists(secondKey) {
			t.Errorf("first copy stored %v, second %v; want the first kept, the second removed", f.Exists(firstKey), f.Exists(secondKey))
		}
		if st := f.Task(task.ID).Status; st != store.TaskDone {
			t.Errorf("part task = %s, want done", st)
		}
		if n := len(f.Tasks(job.ID, store.TaskMerge)); n != 0 {
			t.Errorf("%d merge tasks with one part of two stored, want none", n)
		}
	})
}

// TestAFailedPartIsRetriedThenFailsTheJobNamingIt: a part's failed
// attempt is retried as a chunk's is; its last failed attempt fails the
// job, naming the frame and the part, and nothing is merged.
func TestAFailedPartIsRetriedThenFailsTheJobNamingIt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJob(2)
		task := f.Tasks(job.ID, store.TaskRender)[1]
		ref := f.Ref(task)
		for attempt := 1; attempt <= enginetest.RenderAttempts; attempt++ {
			f.blender.willRender(fakeRender{err: &blender.RenderError{Frame: 1, Line: "Error: out of memory"}})
			err := f.renderWork(f.Ctx, ref, attempt, enginetest.RenderAttempts)
			if attempt < enginetest.RenderAttempts {
				if err == nil {
					t.Fatalf("attempt %d answered no error; River would record none", attempt)
				}
				if got := f.Task(task.ID); got.Status != store.TaskWaiting || got.Generation != ref.Generation+1 {
					t.Fatalf("after attempt %d the task is %s at generation %d, want waiting for its retry at %d", attempt, got.Status, got.Generation, ref.Generation+1)
				}
				f.RetryNow(job)
				ref = f.Ref(f.Task(task.ID))
			}
		}
		got := f.Job(job.ID)
		if got.Status != farm.StatusFailed || got.FailedReason == nil || got.FailedReason.Name != "FRAME_FAILED" ||
			!strings.Contains(got.FailedReason.Message, "frame 1") || !strings.Contains(got.FailedReason.Message, "part 2 of 2") {
			t.Fatalf("job = %s, %+v; want failed FRAME_FAILED naming frame 1's part 2 of 2", got.Status, got.FailedReason)
		}
		if st := f.Frames(job.ID)[1].Status; st != farm.FrameFailed {
			t.Errorf("frame 1 = %s, want failed", st)
		}
		if n := len(f.Tasks(job.ID, store.TaskMerge)); n != 0 {
			t.Errorf("%d merge tasks, want none", n)
		}
	})
}

// TestSuspendAndResumeKeepTheStoredParts: a job suspended with one part
// of two stored renders only the other once resumed, then merges; a
// resume that finds every part stored queues the merge at once.
func TestSuspendAndResumeKeepTheStoredParts(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJob(2)
		first := f.Tasks(job.ID, store.TaskRender)[0]
		stored := f.partOf(first)
		f.blender.willRender(fakeRender{saves: []int{1}})
		if err := f.renderWork(f.Ctx, f.Ref(first), 1, enginetest.RenderAttempts); err != nil {
			t.Fatal(err)
		}
		if _, _, err := f.api.Suspend(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("suspend: %v", err)
		}
		if _, _, err := f.api.Resume(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("resume: %v", err)
		}

		var waiting []store.Task
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status == store.TaskWaiting {
				waiting = append(waiting, task)
			}
		}
		if len(waiting) != 1 || f.partOf(waiting[0]).Part == stored.Part {
			t.Fatalf("%d part tasks waiting after the resume, want one, for the part not stored", len(waiting))
		}
		if got := f.partsProgress(job.ID); got.Completed != 1 {
			t.Errorf("parts after the resume = %+v, want the stored one kept", got)
		}
		f.DispatchAll(f.Job(job.ID))
		f.blender.willRender(fakeRender{saves: []int{1}})
		if err := f.renderWork(f.Ctx, f.Ref(f.Task(waiting[0].ID)), 1, enginetest.RenderAttempts); err != nil {
			t.Fatal(err)
		}
		if len(f.blender.rendered) != 2 {
			t.Errorf("%d parts rendered, want 2: the stored one is not rendered again", len(f.blender.rendered))
		}
		merges := f.Tasks(job.ID, store.TaskMerge)
		if len(merges) != 1 || merges[0].Status != store.TaskQueued {
			t.Fatalf("merge tasks = %+v, want one queued", merges)
		}

		// Suspended again before the merge: the resume merges at once.
		if _, _, err := f.api.Suspend(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("suspend: %v", err)
		}
		if _, _, err := f.api.Resume(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("resume: %v", err)
		}
		var queued []store.Task
		for _, m := range f.Tasks(job.ID, store.TaskMerge) {
			if m.Status == store.TaskQueued {
				queued = append(queued, m)
			}
		}
		if len(queued) != 1 || len(f.Tasks(job.ID, store.TaskRender)) != 3 {
			t.Fatalf("after the second resume: %d merges queued and %d part tasks, want one merge and no new part", len(queued), len(f.Tasks(job.ID, store.TaskRender)))
		}
		if err := f.mergeWork(f.Ctx, queued[0], 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		f.CheckTaskInvariant()
	})
}

// TestAMergeWhoseNodeIsLostIsMergedOnceByAnother: the node merging a
// frame goes silent (killed); the reaper hands the merge out again under
// a new generation, the lost holder can no longer store the frame, and
// the new holder's merge stores it once.
func TestAMergeWhoseNodeIsLostIsMergedOnceByAnother(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJobRendered(2)
		merge := f.Tasks(job.ID, store.TaskMerge)[0]
		lost := f.Ref(merge)
		f.RegisterWorker(f.node.workerID, "node-test", time.Now().Add(-time.Hour))
		f.claim(lost)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		again := f.Task(merge.ID)
		if again.Status != store.TaskQueued || again.Generation != lost.Generation+1 {
			t.Fatalf("merge after reaping = %s at generation %d, want queued at %d", again.Status, again.Generation, lost.Generation+1)
		}
		if err := f.saveFrame(lost, 1, 1); !errors.Is(err, errNotOurs) {
			t.Errorf("the lost holder storing the frame = %v, want errNotOurs", err)
		}

		// The merge's new River job, taken by a node (this one's code, as
		// another run would run it).
		if err := f.mergeWork(f.Ctx, again, 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}
		frame := f.Frames(job.ID)[1]
		if frame.Status != farm.FrameCompleted || !strings.HasPrefix(frame.ObjectKey, farm.JobFramesPrefix(job.ID)+merge.ID+"."+strconv.Itoa(again.Generation)+"/") {
			t.Errorf("frame 1 = %s at %q, want completed by the merge's generation %d", frame.Status, frame.ObjectKey, again.Generation)
		}
		if n := f.Count("frame_outputs", "job_id = ? AND frame = 1", job.ID); n != 1 {
			t.Errorf("frame 1 has %d files recorded, want 1", n)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
	})
}

// TestAMergeThatFailsIsRetriedThenFailsTheJobAndARetryMergesAgain: a
// merge's failed attempts are retried; the last fails the job naming the
// frame; a retry of the failed frame merges the parts still stored, with
// no part rendered again.
func TestAMergeThatFailsIsRetriedThenFailsTheJobAndARetryMergesAgain(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJobRendered(2)
		merge := f.Tasks(job.ID, store.TaskMerge)[0]
		f.blender.mergeErr = errors.New("blender: part_001.exr is not an OpenEXR file")
		for attempt := 1; attempt <= 3; attempt++ {
			err := f.mergeWork(f.Ctx, merge, attempt, 3)
			if attempt < 3 && (err == nil || f.Task(merge.ID).Status != store.TaskQueued) {
				t.Fatalf("attempt %d = %v with the merge %s; want an error and the merge queued for River's retry", attempt, err, f.Task(merge.ID).Status)
			}
		}
		failed := f.Job(job.ID)
		if failed.Status != farm.StatusFailed || failed.FailedReason == nil || failed.FailedReason.Name != "FRAME_FAILED" ||
			!strings.Contains(failed.FailedReason.Message, "frame 1") || !strings.Contains(failed.FailedReason.Message, "part_001.exr") {
			t.Fatalf("job = %s, %+v; want failed FRAME_FAILED naming frame 1 and the merge's error", failed.Status, failed.FailedReason)
		}

		f.blender.mergeErr = nil
		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{Frames: "failed"}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		var queued []store.Task
		for _, m := range f.Tasks(job.ID, store.TaskMerge) {
			if m.Status == store.TaskQueued {
				queued = append(queued, m)
			}
		}
		if len(queued) != 1 || len(f.Tasks(job.ID, store.TaskRender)) != 2 {
			t.Fatalf("after the retry: %d merges queued, %d part tasks; want one merge and no part again", len(queued), len(f.Tasks(job.ID, store.TaskRender)))
		}
		if err := f.mergeWork(f.Ctx, queued[0], 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s after the retried merge, want finalizing", st)
		}
		if st := f.Frames(job.ID)[1].Status; st != farm.FrameCompleted {
			t.Errorf("frame 1 = %s, want completed", st)
		}
	})
}

// A merge writes its parts in the job's output root, where every Blender
// session of the job on the node may write: a link such a session plants
// while the parts are fetched, at a part's name or at the parts folder's,
// is never written through to a file of the node's.
func TestAMergeWritesNoPartThroughALinkASessionPlanted(t *testing.T) {
	t.Parallel()
	for _, planted := range []string{"part", "folder"} {
		t.Run(planted, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, enginetest.SQLite)
			job := f.splitJobRendered(2)
			// A file of the node's, outside every sandbox, and a folder.
			outside := filepath.Join(f.Dir, "outside")
			victim := filepath.Join(outside, blender.PartFileName(0))
			if err := os.MkdirAll(outside, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(victim, []byte("the node's own file"), 0o600); err != nil {
				t.Fatal(err)
			}
			f.node.objects = &plantingStore{Store: f.node.objects, plant: func() {
				parts, err := filepath.Glob(filepath.Join(f.node.outputRoot(job.ID), "merge-*", "parts"))
				if err != nil || len(parts) != 1 {
					t.Fatalf("the merge's parts folders: %v, %v; want one", parts, err)
				}
				switch planted {
				case "part":
					err = os.Symlink(victim, filepath.Join(parts[0], blender.PartFileName(0)))
				case "folder":
					if err = os.Remove(parts[0]); err == nil {
						err = os.Symlink(outside, parts[0])
					}
				}
				if err != nil {
					t.Fatal(err)
				}
			}}

			err := f.mergeWork(f.Ctx, f.Tasks(job.ID, store.TaskMerge)[0], 1, 3)
			if err == nil {
				t.Error("the merge succeeded with a link planted in its parts; want it refused")
			}
			if got, err := os.ReadFile(victim); err != nil || string(got) != "the node's own file" {
				t.Errorf("the node's file holds %q (%v) after the merge; want it untouched", got, err)
			}
			if left, _ := os.ReadDir(outside); len(left) != 1 {
				t.Errorf("the outside folder holds %d files after the merge; want only the node's own", len(left))
			}
		})
	}
}

// plantingStore is a store that runs plant once, as the first part is
// fetched from it.
type plantingStore struct {
	objstore.Store
	plant func()
	once  sync.Once
}

func (s *plantingStore) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if strings.Contains(key, "/parts/") {
		s.once.Do(s.plant)
	}
	return s.Store.Get(ctx, key)
}

// A merge removes its frame's parts by the tasks that stored them, not
// the frame's whole folder of parts: run late (River retries it through a
// bucket's outage), the removal leaves the parts a retry of the frame has
// stored since, under tasks of its own.
func TestAMergesLateRemovalLeavesTheFramesNewParts(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJobRendered(2)
		old := f.storedKeys(farm.JobPartsPrefix(job.ID))
		if len(old) != 2 {
			t.Fatalf("parts stored: %q, want 2", old)
		}
		if err := f.mergeWork(f.Ctx, f.Tasks(job.ID, store.TaskMerge)[0], 1, 3); err != nil {
			t.Fatal(err)
		}
		// A retry's part of the same frame, stored before the removal runs.
		retried := farm.PartKey(job.ID, 1, "a-task-of-the-retry", 1, blender.PartFileName(0))
		f.Put(retried)

		f.runRemovals()
		if left := f.storedKeys(farm.JobPartsPrefix(job.ID)); !slices.Equal(left, []string{retried}) {
			t.Errorf("parts left after the merge's removal: %q; want only the retry's %q", left, retried)
		}
	})
}

// TestAMergeKilledOnceItStoredTheFrameHasItsPartsRemovedByTheNext: the
// node merging a frame stores the merged frame and is killed before its
// task's end, which removes and forgets the parts, is written. The
// reaper hands the merge out again; the next attempt finds the frame
// merged and does not merge it again, but still removes the parts and
// forgets them: nothing else would, and a retry of the frame would take
// them for parts still to merge.
func TestAMergeKilledOnceItStoredTheFrameHasItsPartsRemovedByTheNext(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.splitJobRendered(2)
		merge := f.Tasks(job.ID, store.TaskMerge)[0]
		killed := f.Ref(merge)
		f.RegisterWorker(f.node.workerID, "node-test", time.Now().Add(-time.Hour))
		f.claim(killed)
		if err := f.saveFrame(killed, 1, 1); err != nil {
			t.Fatalf("the merged frame stored: %v", err)
		}
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}

		if err := f.mergeWork(f.Ctx, f.Task(merge.ID), 1, 3); err != nil {
			t.Fatalf("merge: %v", err)
		}

		if n := len(f.blender.merged); n != 0 {
			t.Errorf("the frame was merged %d times again, want none: it was stored", n)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s, want finalizing", st)
		}
		for _, p := range f.partsOf(job.ID, 1) {
			if p.Stored() {
				t.Errorf("part %d still recorded at %s after its frame was merged", p.Part, p.ObjectKey)
			}
		}
		f.runRemovals()
		if left := f.storedKeys(farm.JobPartsPrefix(job.ID)); len(left) != 0 {
			t.Errorf("parts left in the bucket after their frame was merged: %q", left)
		}
	})
}

// partsOf answers the parts of a frame of a job as recorded.
func (f *fixture) partsOf(jobID string, frame int) []store.FramePart {
	f.T.Helper()
	parts, err := f.Store.PartsOfFrame(f.Ctx, jobID, frame)
	if err != nil {
		f.T.Fatal(err)
	}
	return parts
}

// TestAPartWhoseRecordCommittedAsItsReplyWasLostIsKept: the transaction
// that records a stored part commits, but the database's answer is lost
// (the connection drops as it answers), and the node tries the record
// again, as it does through any outage of the database. The try finds
// the part recorded under this holder's own key, or the task handed to
// another holder meanwhile (the reaper ran as the database came back),
// who takes the part as stored: either way the part's file is kept, not
// taken for a copy that lost.
func TestAPartWhoseRecordCommittedAsItsReplyWasLostIsKept(t *testing.T) {
	t.Parallel()
	for _, handedOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "still held", true: "handed on meanwhile"}[handedOn], func(t *testing.T) {
			t.Parallel()
			eachFixture(t, func(t *testing.T, f *fixture) {
				job := f.splitJob(2)
				task := f.Tasks(job.ID, store.TaskRender)[0]
				part := f.partOf(task)
				ref := f.Ref(task)
				f.claim(ref)
				key := farm.PartKey(job.ID, part.Frame, ref.TaskID, ref.Generation, blender.PartFileName(part.Part))
				// What the first try's transaction wrote before its reply
				// was lost.
				recorded := part
				recorded.ObjectKey, recorded.RenderSeconds = key, 1.5
				if err := f.Store.StorePart(f.Ctx, recorded); err != nil {
					t.Fatal(err)
				}
				if handedOn {
					if err := f.Engine.Requeue(f.Ctx, f.Task(task.ID), "test: the holder is taken for gone"); err != nil {
						t.Fatal(err)
					}
				}

				var saveErr error
				err := saveFakeFrame(t.TempDir(), part.Frame, false, func(ev blender.Event) {
					if ev.Kind == blender.FrameSaved {
						saveErr = f.node.partSaved(f.Ctx, nil, ref, part, ev)
					}
				})
				if err != nil || (saveErr != nil) != handedOn {
					t.Fatalf("the part stored and recorded again: %v, %v", err, saveErr)
				}

				if got := f.partOf(task).ObjectKey; got != key {
					t.Errorf("part %d recorded at %q, want %q", part.Part, got, key)
				}
				if !f.Exists(key) {
					t.Errorf("part %d recorded at %s, whose file was removed: its frame can never be merged", part.Part, key)
				}
			})
		})
	}
}
