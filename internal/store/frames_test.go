package store_test

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// jobWithFrames makes a job whose frames are split over two tasks, inserted
// out of order: task-a holds 3, 1 and 2, task-b holds 5 and 4.
func jobWithFrames(t *testing.T, s *store.Store, jobID string) {
	t.Helper()
	add := jobWithTasks(t, s, jobID)
	add(store.Task{ID: jobID + "-task-a", Chunk: 0})
	add(store.Task{ID: jobID + "-task-b", Chunk: 1})
	for _, f := range []struct {
		frame int
		task  string
	}{{3, "-task-a"}, {5, "-task-b"}, {1, "-task-a"}, {4, "-task-b"}, {2, "-task-a"}} {
		err := s.InsertFrame(t.Context(), store.Frame{JobID: jobID, Frame: f.frame, TaskID: jobID + f.task, Status: farm.FrameQueued, UpdatedAt: at(0)})
		if err != nil {
			t.Fatalf("InsertFrame(%d): %v", f.frame, err)
		}
	}
}

func frameNumbers(frames []store.Frame) []int {
	var out []int
	for _, f := range frames {
		out = append(out, f.Frame)
	}
	return out
}

func statusesOf(t *testing.T, s *store.Store, jobID string) map[int]farm.FrameStatus {
	t.Helper()
	frames, err := s.FramesOfJob(t.Context(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]farm.FrameStatus{}
	for _, f := range frames {
		out[f.Frame] = f.Status
	}
	return out
}

func TestFramesComeBackInFrameOrder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")

		all, err := s.FramesOfJob(t.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}
		if got := frameNumbers(all); !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
			t.Errorf("FramesOfJob = %v, want [1 2 3 4 5]", got)
		}
		a, err := s.FramesOfTask(t.Context(), "job-1-task-a")
		if err != nil {
			t.Fatal(err)
		}
		if got := frameNumbers(a); !slices.Equal(got, []int{1, 2, 3}) {
			t.Errorf("FramesOfTask(task-a) = %v, want [1 2 3]", got)
		}
		b, err := s.FramesOfTask(t.Context(), "job-1-task-b")
		if err != nil {
			t.Fatal(err)
		}
		if got := frameNumbers(b); !slices.Equal(got, []int{4, 5}) {
			t.Errorf("FramesOfTask(task-b) = %v, want [4 5]", got)
		}
		if none, err := s.FramesOfTask(t.Context(), "no-such-task"); err != nil || len(none) != 0 {
			t.Errorf("FramesOfTask of an unknown task = %v, %v; want none", none, err)
		}
	})
}

func TestAFrameIsStoredOncePerJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		err := s.InsertFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 3, TaskID: "job-1-task-b", Status: farm.FrameQueued, UpdatedAt: at(0)})
		if err == nil {
			t.Error("frame 3 was stored twice for one job")
		}
	})
}

func TestUpdateFrameWritesItsProgress(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		before := time.Now().UTC().Truncate(time.Microsecond) // what the store keeps
		done := store.Frame{
			JobID: "job-1", Frame: 2, TaskID: "job-1-task-a", Status: farm.FrameCompleted, Worker: "node-a",
			RenderSeconds: 12.5, Attempts: 2, ObjectKey: "jobs/job-1/frames/0002.png", SizeBytes: 123456, Error: "",
		}
		if err := s.UpdateFrame(t.Context(), done); err != nil {
			t.Fatal(err)
		}
		frames, err := s.FramesOfTask(t.Context(), "job-1-task-a")
		if err != nil {
			t.Fatal(err)
		}
		got := frames[1]
		if got.Frame != 2 || got.Status != done.Status || got.Worker != done.Worker || got.RenderSeconds != done.RenderSeconds ||
			got.Attempts != done.Attempts || got.ObjectKey != done.ObjectKey || got.SizeBytes != done.SizeBytes || got.Error != "" ||
			got.TaskID != "job-1-task-a" {
			t.Errorf("after UpdateFrame, frame 2 = %+v, want %+v", got, done)
		}
		if got.UpdatedAt.Before(before) {
			t.Errorf("UpdatedAt = %v, want it stamped at or after %v", got.UpdatedAt, before)
		}
		if others := frames[0]; others.Status != farm.FrameQueued || others.Worker != "" {
			t.Errorf("UpdateFrame changed frame 1 too: %+v", others)
		}
	})
}

func TestMoveFramesOfJobMovesOnlyTheFramesThatMay(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		jobWithFrames(t, s, "job-2")
		for frame, status := range map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameRendering, 4: farm.FrameFailed} {
			if err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: frame, Status: status}); err != nil {
				t.Fatal(err)
			}
		}

		// Canceling a job: what is waiting or rendering stops, what ended stays.
		if err := s.MoveFramesOfJob(t.Context(), "job-1", farm.FrameCanceled); err != nil {
			t.Fatal(err)
		}
		want := map[int]farm.FrameStatus{1: farm.FrameCompleted, 2: farm.FrameCanceled, 3: farm.FrameCanceled, 4: farm.FrameFailed, 5: farm.FrameCanceled}
		if got := statusesOf(t, s, "job-1"); !maps.Equal(got, want) {
			t.Errorf("job-1 frames = %v, want %v", got, want)
		}
		for frame, status := range statusesOf(t, s, "job-2") {
			if status != farm.FrameQueued {
				t.Errorf("job-2 frame %d is %s; another job's frames must not change", frame, status)
			}
		}
		// Nothing leaves a final status.
		if err := s.MoveFramesOfJob(t.Context(), "job-1", farm.FrameQueued); err != nil {
			t.Errorf("MoveFramesOfJob of ended frames: %v", err)
		}
		if got := statusesOf(t, s, "job-1"); !maps.Equal(got, want) {
			t.Errorf("MoveFramesOfJob moved frames that ended: %v", got)
		}
	})
}

// TestFrameWritesRefuseMovesTheTableForbids: UpdateFrame and
// UpdateFrameOwned check farm.CanMoveFrame in the statement, so no write,
// whoever makes it, takes a frame out of a final status.
func TestFrameWritesRefuseMovesTheTableForbids(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		if err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 1, Status: farm.FrameCompleted, ObjectKey: "a.png"}); err != nil {
			t.Fatal(err)
		}
		for _, to := range farm.AllFrameStatuses {
			err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 1, Status: to, ObjectKey: "b.png"})
			if !errors.Is(err, store.ErrConflict) {
				t.Errorf("UpdateFrame of a completed frame to %s = %v; want ErrConflict", to, err)
			}
		}
		if err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 99, Status: farm.FrameQueued}); !errors.Is(err, store.ErrConflict) {
			t.Errorf("UpdateFrame of a frame the job does not have = %v; want ErrConflict", err)
		}
		frames, err := s.FramesOfTask(t.Context(), "job-1-task-a")
		if err != nil {
			t.Fatal(err)
		}
		if got := frames[0]; got.Status != farm.FrameCompleted || got.ObjectKey != "a.png" {
			t.Errorf("refused writes changed frame 1: %+v", got)
		}
	})
}

func TestCountFramesByStatus(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		jobWithFrames(t, s, "job-2")
		for _, frame := range []int{1, 2} {
			if err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: frame, Status: farm.FrameCompleted}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.UpdateFrame(t.Context(), store.Frame{JobID: "job-1", Frame: 3, Status: farm.FrameRendering}); err != nil {
			t.Fatal(err)
		}

		counts, err := s.CountFrames(t.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}
		want := map[farm.FrameStatus]int{farm.FrameCompleted: 2, farm.FrameRendering: 1, farm.FrameQueued: 2}
		if !maps.Equal(counts, want) {
			t.Errorf("CountFrames = %v, want %v", counts, want)
		}
		none, err := s.CountFrames(t.Context(), "no-such-job")
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("CountFrames of a job without frames = %v, %v; want an empty map", none, err)
		}
	})
}

// TestEveryFrameCompletedOnlyOnceTheLastFrameIs: a job's end is its last
// frame completed, whatever the other jobs' frames are.
func TestEveryFrameCompletedOnlyOnceTheLastFrameIs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		jobWithFrames(t, s, "job-2")
		complete := func(job string, frame int, status farm.FrameStatus) {
			t.Helper()
			if err := s.UpdateFrame(t.Context(), store.Frame{JobID: job, Frame: frame, Status: status}); err != nil {
				t.Fatal(err)
			}
		}
		everyFrame := func(job string) bool {
			t.Helper()
			done, err := s.EveryFrameCompleted(t.Context(), job)
			if err != nil {
				t.Fatal(err)
			}
			return done
		}
		for frame := 1; frame <= 4; frame++ {
			complete("job-1", frame, farm.FrameCompleted)
			if everyFrame("job-1") {
				t.Fatalf("with frames 1-%d of 5 completed, every frame is completed", frame)
			}
		}
		complete("job-1", 5, farm.FrameRendering)
		if everyFrame("job-1") {
			t.Fatal("with frame 5 rendering, every frame is completed")
		}
		complete("job-1", 5, farm.FrameCompleted)
		if !everyFrame("job-1") {
			t.Error("with every frame completed, not every frame is")
		}
		if everyFrame("job-2") {
			t.Error("job-2, none of whose frames completed, has every frame completed")
		}
		if !everyFrame("no-such-job") {
			t.Error("a job without frames has a frame not completed")
		}
	})
}

func TestUpdateFrameOwned(t *testing.T) {
	t.Parallel()
	// Frame 2 belongs to job-1-task-a, claimed in generation 1 by w-1
	// unless a case changes that.
	tests := []struct {
		name       string
		before     func(t *testing.T, s *store.Store)
		taskID     string
		generation int
		workerID   string
		wantErr    error
	}{
		{"the holder writes", nil, "job-1-task-a", 1, "w-1", nil},
		{"an older generation is refused", func(t *testing.T, s *store.Store) {
			if _, err := s.RequeueTask(t.Context(), "job-1-task-a", 1); err != nil {
				t.Fatal(err)
			}
			if err := s.ClaimTask(t.Context(), "job-1-task-a", 2, "w-2", 1); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-a", 1, "w-1", store.ErrConflict},
		{"a requeued task not yet claimed again is refused", func(t *testing.T, s *store.Store) {
			if _, err := s.RequeueTask(t.Context(), "job-1-task-a", 1); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-a", 1, "w-1", store.ErrConflict},
		{"another worker is refused", nil, "job-1-task-a", 1, "w-2", store.ErrConflict},
		{"a released task is refused", func(t *testing.T, s *store.Store) {
			if err := s.ReleaseTask(t.Context(), "job-1-task-a", 1); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-a", 1, "w-1", store.ErrConflict},
		{"a finished task is refused", func(t *testing.T, s *store.Store) {
			if err := s.FinishTask(t.Context(), "job-1-task-a", 1, store.TaskEnd{Status: store.TaskDone}); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-a", 1, "w-1", store.ErrConflict},
		{"a canceled task is refused", func(t *testing.T, s *store.Store) {
			if _, _, err := s.CancelTasksOfJob(t.Context(), "job-1"); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-a", 1, "w-1", store.ErrConflict},
		{"a frame of another task is refused, even to that task's holder", func(t *testing.T, s *store.Store) {
			if err := s.ClaimTask(t.Context(), "job-1-task-b", 1, "w-1", 1); err != nil {
				t.Fatal(err)
			}
		}, "job-1-task-b", 1, "w-1", store.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachStore(t, func(t *testing.T, s *store.Store) {
				jobWithFrames(t, s, "job-1")
				if err := s.ClaimTask(t.Context(), "job-1-task-a", 1, "w-1", 1); err != nil {
					t.Fatal(err)
				}
				if tt.before != nil {
					tt.before(t, s)
				}
				done := store.Frame{JobID: "job-1", Frame: 2, TaskID: tt.taskID, Status: farm.FrameCompleted, Worker: "node-a",
					RenderSeconds: 3.5, Attempts: 1, ObjectKey: "jobs/job-1/frames/frame_0002.png", SizeBytes: 4096}
				err := s.UpdateFrameOwned(t.Context(), done, tt.generation, tt.workerID)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("UpdateFrameOwned error = %v, want %v", err, tt.wantErr)
				}
				want := farm.FrameQueued
				if tt.wantErr == nil {
					want = farm.FrameCompleted
				}
				if got := statusesOf(t, s, "job-1")[2]; got != want {
					t.Errorf("frame 2 is %s, want %s", got, want)
				}
			})
		})
	}
}

func TestUpdateFrameOwnedWaitsForARequeueInProgressAndIsRefused(t *testing.T) {
	t.Parallel()
	// The reaper has handed the task out again but not yet committed; the
	// old holder's frame arrives now. It must not land.
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		if err := s.ClaimTask(t.Context(), "job-1-task-a", 1, "w-1", 1); err != nil {
			t.Fatal(err)
		}
		blocked := awaitBlocked(t, s)
		late := make(chan error, 1)
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			if _, err := tx.RequeueTask(t.Context(), "job-1-task-a", 1); err != nil {
				return err
			}
			go func() {
				f := store.Frame{JobID: "job-1", Frame: 2, TaskID: "job-1-task-a", Status: farm.FrameCompleted, Worker: "node-a"}
				late <- s.UpdateFrameOwned(t.Context(), f, 1, "w-1")
			}()
			blocked()
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-late; !errors.Is(err, store.ErrConflict) {
			t.Errorf("the old holder's write: error %v, want ErrConflict", err)
		}
		if got := statusesOf(t, s, "job-1")[2]; got != farm.FrameQueued {
			t.Errorf("frame 2 is %s, want %s: the old holder's write landed", got, farm.FrameQueued)
		}
	})
}

// TestFrameOutputsComeBackByFrameInTheirOrder: a frame's files are
// recorded once, in their order, with a view or none, and listed by frame.
func TestFrameOutputsComeBackByFrameInTheirOrder(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		jobWithFrames(t, s, "job-1")
		left := "left"
		frame2 := []farm.FrameOutput{
			{Kind: farm.OutputFrame, View: &left, FileName: "shot_0002_L.png", RelativePath: "render/shot_0002_L.png", ObjectKey: "jobs/job-1/frames/t.1/frame_0002_L.png", SizeBytes: 10},
			{Kind: farm.OutputCompositeNode, CompositeNodeName: "Depth Out", FileName: "Depth_Out/depth_0002.exr", RelativePath: "Depth_Out/depth_0002.exr", ObjectKey: "jobs/job-1/frames/t.1/nodes/0/0/f_0002.exr", SizeBytes: 1 << 33},
			{Kind: farm.OutputPreview, FileName: "frame_0002.png", RelativePath: "preview/frame_0002.png", ObjectKey: "jobs/job-1/frames/t.1/preview/frame_0002.png", SizeBytes: 3},
		}
		frame1 := []farm.FrameOutput{{Kind: farm.OutputFrame, FileName: "frame_0001.png", RelativePath: "frame_0001.png", ObjectKey: "k1", SizeBytes: 1}}
		for frame, outputs := range map[int][]farm.FrameOutput{2: frame2, 1: frame1} {
			if err := s.InsertFrameOutputs(t.Context(), "job-1", frame, outputs); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.InsertFrameOutputs(t.Context(), "job-1", 1, frame1); err == nil {
			t.Error("frame 1's files were recorded twice")
		}
		got, err := s.FrameOutputsOfJob(t.Context(), "job-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !slices.EqualFunc(got[2], frame2, sameOutput) || !slices.EqualFunc(got[1], frame1, sameOutput) {
			t.Errorf("FrameOutputsOfJob = %+v, want frame 1's and frame 2's as recorded", got)
		}
		if none, err := s.FrameOutputsOfJob(t.Context(), "job-2"); err != nil || len(none) != 0 {
			t.Errorf("another job's outputs = %v, %v; want none", none, err)
		}
	})
}

func sameOutput(a, b farm.FrameOutput) bool {
	if (a.View == nil) != (b.View == nil) || (a.View != nil && *a.View != *b.View) {
		return false
	}
	a.View, b.View = nil, nil
	return a == b
}
