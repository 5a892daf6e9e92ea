package engine

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// finalize runs the job's finalize_outputs as a worker of the control
// queue would.
func (f *farmFixture) finalize(jobID string) error {
	f.t.Helper()
	tasks := f.tasks(jobID, store.TaskFinalize)
	if len(tasks) != 1 {
		f.t.Fatalf("%d finalize tasks, want 1", len(tasks))
	}
	w := &finalizeWorker{e: f.engine}
	return w.Work(f.ctx, &river.Job[finalizeArgs]{Args: finalizeArgs{f.ref(tasks[0])}})
}

// storedKeys lists the keys of the objects under prefix.
func (f *farmFixture) storedKeys(prefix string) []string {
	f.t.Helper()
	objects, err := f.objects.List(f.ctx, prefix)
	if err != nil {
		f.t.Fatalf("List %s: %v", prefix, err)
	}
	var keys []string
	for _, o := range objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// frameKey is where the holder of a task's generation stores a frame.
func frameKey(jobID, taskID string, generation, frame int) string {
	return fmt.Sprintf("%s%s.%d/%s", jobFramesPrefix(jobID), taskID, generation, frameName(frame))
}

func TestFinalizeRemovesFrameImagesNoFrameRefersTo(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	// No preview video: the images are not real PNGs, and a preview that
	// cannot be made is only a warning.
	f.engine.cfg.FFmpeg = filepath.Join(t.TempDir(), "no-ffmpeg")
	job := f.renderingJob(3, 2)
	tasks := f.tasks(job.ID, store.TaskRender)
	first, second := tasks[0], tasks[1]

	// This worker took the first chunk, stored and recorded frame 1, stored
	// frame 2's image and was killed before recording it; its heartbeat
	// went stale and the chunk was handed out again.
	f.registerWorker(f.engine.workerID, "node-test", time.Now().Add(-time.Hour))
	old := f.ref(first)
	f.claim(old)
	f.startChunk(old)
	if err := f.saveFrame(old, 1, 2); err != nil {
		t.Fatal(err)
	}
	orphan := frameKey(job.ID, first.ID, old.Generation, 2)
	f.put(orphan)
	if err := f.engine.reapOrphans(f.ctx); err != nil {
		t.Fatal(err)
	}
	// The new holder renders only frame 2, under its own generation's key.
	current := f.renderChunk(f.task(first.ID))
	if current.Generation == old.Generation {
		t.Fatalf("the chunk was not handed out again: generation %d", current.Generation)
	}
	// A holder of the second chunk that never recorded anything left an
	// image too; the chunk was then rendered by its current holder.
	stray := frameKey(job.ID, second.ID, second.Generation+5, 3)
	f.put(stray)
	last := f.renderChunk(second)
	for _, ref := range []taskRef{current, last} {
		if err := f.engine.endChunk(f.ctx, ref, nil); err != nil {
			t.Fatal(err)
		}
	}
	if st := f.job(job.ID).Status; st != farm.StatusFinalizing {
		t.Fatalf("job = %s, want finalizing", st)
	}
	// Another job's frames are not this job's to clean.
	other := f.renderingJob(1, 1)
	otherKey := frameKey(other.ID, "t", 1, 1)
	f.put(otherKey)

	if err := f.finalize(job.ID); err != nil {
		t.Fatalf("finalize: %v", err)
	}

	done := f.job(job.ID)
	if done.Status != farm.StatusCompleted {
		t.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
	}
	var referenced []string
	for n, fr := range f.frames(job.ID) {
		if fr.Status != farm.FrameCompleted || fr.ObjectKey == "" {
			t.Errorf("frame %d = %+v, want completed with its image", n, fr)
		}
		referenced = append(referenced, fr.ObjectKey)
	}
	slices.Sort(referenced)
	want := []string{
		frameKey(job.ID, first.ID, old.Generation, 1),
		frameKey(job.ID, first.ID, current.Generation, 2),
		frameKey(job.ID, second.ID, last.Generation, 3),
	}
	slices.Sort(want)
	if !slices.Equal(referenced, want) {
		t.Errorf("frame rows refer to %v, want %v", referenced, want)
	}
	if got := f.storedKeys(jobFramesPrefix(job.ID)); !slices.Equal(got, want) {
		t.Errorf("stored frame images = %v, want exactly those the frames refer to %v", got, want)
	}
	if f.exists(orphan) || f.exists(stray) {
		t.Errorf("orphan images left: %s %v, %s %v", orphan, f.exists(orphan), stray, f.exists(stray))
	}
	if !f.exists(done.Files.FramesZipKey) {
		t.Errorf("frames zip %q not stored", done.Files.FramesZipKey)
	}
	if !f.exists(otherKey) {
		t.Errorf("another job's image %s was removed", otherKey)
	}
	d, err := f.engine.Downloads(f.ctx, f.p, job.ID)
	if err != nil || len(d.FrameOutputs) != 3 {
		t.Errorf("downloads = %d frames, %v; want 3", len(d.FrameOutputs), err)
	}
}

func TestFinalizeWithNothingToRemoveKeepsEveryFrame(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.renderingJob(1, 1)
	ref := f.renderChunk(f.tasks(job.ID, store.TaskRender)[0])
	if err := f.engine.endChunk(f.ctx, ref, nil); err != nil {
		t.Fatal(err)
	}

	if err := f.finalize(job.ID); err != nil {
		t.Fatalf("finalize: %v", err)
	}

	if st := f.job(job.ID).Status; st != farm.StatusCompleted {
		t.Fatalf("job = %s, want completed", st)
	}
	want := []string{f.frames(job.ID)[1].ObjectKey}
	if got := f.storedKeys(jobFramesPrefix(job.ID)); !slices.Equal(got, want) {
		t.Errorf("stored frame images = %v, want %v", got, want)
	}
}
