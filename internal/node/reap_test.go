package node

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestAHolderGivenUpOnCanNoLongerWrite plays a worker that the reaper gave
// up on but that was only slow: whatever it does with its old generation is
// refused and changes nothing, before and after the new generation is
// claimed, even by the same worker run.
func TestAHolderGivenUpOnCanNoLongerWrite(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		old := f.Ref(task)

		// This engine's own run holds generation 1 and renders frame 1, then
		// its heartbeat goes stale.
		f.RegisterWorker(f.node.workerID, "node-test", time.Now().Add(-time.Hour))
		f.claim(old)
		f.startChunk(old)
		if err := f.node.frameStarted(f.Ctx, old, 1); err != nil {
			t.Fatalf("frameStarted by the holder: %v", err)
		}
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		f.DispatchAll(job)
		current := f.Ref(f.Task(task.ID))
		if current.Generation != 2 {
			t.Fatalf("generation after reaping = %d, want 2", current.Generation)
		}

		staleWrites := []struct {
			name string
			do   func(t *testing.T)
		}{
			{"updateFrame marking a frame completed", func(t *testing.T) {
				err := f.node.updateFrame(f.Ctx, old, 1, func(fr *store.Frame) { fr.Status = farm.FrameCompleted })
				if !errors.Is(err, errNotOurs) {
					t.Errorf("updateFrame = %v, want errNotOurs", err)
				}
			}},
			{"frameStarted announcing a frame", func(t *testing.T) {
				if err := f.node.frameStarted(f.Ctx, old, 2); !errors.Is(err, errNotOurs) {
					t.Errorf("frameStarted = %v, want errNotOurs", err)
				}
			}},
			{"frameSaved recording an image", func(t *testing.T) {
				if err := f.saveFrame(old, 3, 1); !errors.Is(err, errNotOurs) {
					t.Errorf("frameSaved = %v, want errNotOurs", err)
				}
			}},
			{"frameFailed recording an error", func(t *testing.T) {
				f.node.frameFailed(f.Ctx, old, 1, "Error: late")
			}},
			{"claim taking the task again", func(t *testing.T) {
				ok, err := f.node.claim(f.Ctx, old)
				if ok || err != nil {
					t.Errorf("claim = %v, %v; want false, nil (a stale holder ends quietly)", ok, err)
				}
			}},
			{"finish ending the task", func(t *testing.T) {
				err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
					ok, err := f.node.finish(f.Ctx, tx, old, store.TaskEnd{Status: store.TaskDone})
					if ok || err != nil {
						t.Errorf("finish = %v, %v; want false, nil", ok, err)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
				}
			}},
			{"endChunk closing the chunk", func(t *testing.T) {
				if err := f.node.endChunk(f.Ctx, old, nil); err != nil {
					t.Errorf("endChunk = %v, want nil", err)
				}
			}},
		}

		check := func(t *testing.T, wantTask store.Task, wantFrames map[int]store.Frame) {
			t.Helper()
			for _, w := range staleWrites {
				w.do(t)
				got := f.Task(task.ID)
				if got.Status != wantTask.Status || got.Generation != wantTask.Generation || got.WorkerID != wantTask.WorkerID {
					t.Errorf("after a stale %s, task = %s gen %d worker %q; want %s gen %d worker %q",
						w.name, got.Status, got.Generation, got.WorkerID, wantTask.Status, wantTask.Generation, wantTask.WorkerID)
				}
				if frames := f.Frames(job.ID); !sameFrames(frames, wantFrames) {
					t.Errorf("after a stale %s, frames = %+v; want unchanged %+v", w.name, frames, wantFrames)
				}
			}
			if st := f.Job(job.ID).Status; st != farm.StatusRendering {
				t.Errorf("job = %s, want still rendering", st)
			}
			if n := len(f.Tasks(job.ID, store.TaskFinalize)); n != 0 {
				t.Errorf("%d finalize tasks, want none", n)
			}
		}

		t.Run("while generation 2 waits in the queue", func(t *testing.T) {
			check(t, f.Task(task.ID), f.Frames(job.ID))
		})
		t.Run("once the same run claimed generation 2", func(t *testing.T) {
			f.claim(current)
			check(t, f.Task(task.ID), f.Frames(job.ID))
			// The new generation writes as usual.
			if err := f.node.frameStarted(f.Ctx, current, 1); err != nil {
				t.Errorf("frameStarted by generation 2: %v", err)
			}
			if fr := f.Frames(job.ID)[1]; fr.Status != farm.FrameRendering || fr.Attempts != 2 {
				t.Errorf("frame 1 = %s after %d attempts, want rendering on its second attempt", fr.Status, fr.Attempts)
			}
		})
	})
}

// sameFrames compares frames by what a worker writes, ignoring when.
func sameFrames(a, b map[int]store.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for n, fa := range a {
		fb, ok := b[n]
		if !ok {
			return false
		}
		fa.UpdatedAt, fb.UpdatedAt = time.Time{}, time.Time{}
		if fa != fb {
			return false
		}
	}
	return true
}

func TestAHolderGivenUpOnCannotReplaceTheImageOfAFrame(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 1, 1)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		old := f.Ref(task)
		f.RegisterWorker(f.node.workerID, "node-test", time.Now().Add(-time.Hour))
		f.claim(old)
		f.startChunk(old)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		f.DispatchAll(job)
		current := f.Ref(f.Task(task.ID))
		f.claim(current)
		if err := f.saveFrameImage(current, 1, 2, "image of generation 2"); err != nil {
			t.Fatal(err)
		}

		if err := f.saveFrameImage(old, 1, 2, "late image of generation 1, of another size"); !errors.Is(err, errNotOurs) {
			t.Fatalf("stale frameSaved = %v, want errNotOurs", err)
		}

		fr := f.Frames(job.ID)[1]
		r, err := f.Objects.Get(f.Ctx, fr.ObjectKey)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		stored, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if string(stored) != "image of generation 2" || int64(len(stored)) != fr.SizeBytes {
			t.Errorf("stored image = %q (%d bytes, row says %d); want generation 2's, as recorded", stored, len(stored), fr.SizeBytes)
		}
	})
}

// TestAFrameWhoseRecordCommittedAsItsReplyWasLostKeepsItsFiles: the
// transaction that records a stored frame commits, but the database's
// answer is lost (the connection drops as it answers). By the time the
// node tries the record again, the reaper has handed its task to
// another holder (the database came back to the reaper first). The try
// is refused, as every write of a holder given up on is; but the frame is
// recorded, by this holder, under its files: they stay, or the frame
// would name files that are gone, and its job's zip fail.
func TestAFrameWhoseRecordCommittedAsItsReplyWasLostKeepsItsFiles(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		task := f.Tasks(job.ID, store.TaskRender)[0]
		ref := f.startedChunk(task)
		// What the first try wrote: the files, and the record, which
		// committed before its reply was lost.
		if err := f.saveFrame(ref, 1, 2); err != nil {
			t.Fatal(err)
		}
		recorded := f.Frames(job.ID)[1]
		if err := f.Engine.Requeue(f.Ctx, f.Task(task.ID), "test: the holder is taken for gone"); err != nil {
			t.Fatal(err)
		}

		if err := f.saveFrame(ref, 1, 2); !errors.Is(err, errNotOurs) {
			t.Errorf("the record tried again = %v, want errNotOurs", err)
		}

		frame := f.Frames(job.ID)[1]
		if frame.Status != farm.FrameCompleted || frame.ObjectKey != recorded.ObjectKey {
			t.Fatalf("frame 1 = %s at %q, want completed at %q", frame.Status, frame.ObjectKey, recorded.ObjectKey)
		}
		if !f.Exists(frame.ObjectKey) {
			t.Errorf("frame 1 is recorded at %s, whose file was removed", frame.ObjectKey)
		}
	})
}
