package service

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// assertNothingQueued checks that a job has no tasks, no frames and no
// River work.
func (f *fixture) assertNothingQueued(t *testing.T, jobID string) {
	t.Helper()
	if n := f.Count("tasks", "job_id = ?", jobID); n != 0 {
		t.Errorf("%d tasks, want none", n)
	}
	if n := f.Count("frames", "job_id = ?", jobID); n != 0 {
		t.Errorf("%d frames, want none", n)
	}
	if n := f.Count("river_job", ""); n != 0 {
		t.Errorf("%d River jobs, want none", n)
	}
}

func TestRenderRefusesARequestTheFileCannotHonourAndChangesNothing(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		str := func(s string) *string { return &s }
		num := func(n int) *int { return &n }
		withDefault := func(change func(*farm.RenderConfig)) *farm.RenderConfig {
			cfg := enginetest.RenderConfig(0)
			change(cfg)
			return cfg
		}
		tests := []struct {
			name      string
			cfg       *farm.RenderConfig
			wantCode  string
			wantField string
		}{
			{"no request at all", nil, farm.CodeInvalidConfig, ""},
			{"an empty request", &farm.RenderConfig{}, farm.CodeInvalidConfig, ""},
			{"no color management preset", &farm.RenderConfig{FrameRanges: []string{"1-5"}}, farm.CodeInvalidConfig, "colorManagementPreset"},
			{"a scene the file does not have", withDefault(func(c *farm.RenderConfig) { c.Scene = str("Other") }), farm.CodeInvalidConfig, "scene"},
			{"frames outside the scene", withDefault(func(c *farm.RenderConfig) { c.FrameRanges = []string{"5-11"} }), farm.CodeInvalidConfig, "frameRanges"},
			{"a frame range that does not parse", withDefault(func(c *farm.RenderConfig) { c.FrameRanges = []string{"one-ten"} }), farm.CodeInvalidConfig, "frameRanges"},
			{"a chunk size of zero", withDefault(func(c *farm.RenderConfig) { c.ChunkSize = num(0) }), farm.CodeInvalidConfig, "chunkSize"},
			{"a movie format", withDefault(func(c *farm.RenderConfig) { c.OutputFormat = str("FFMPEG") }), farm.CodeInvalidConfig, "outputFormat"},
			{"a GPU the workers do not have", withDefault(func(c *farm.RenderConfig) { c.ComputeDeviceType = str("CUDA") }), farm.CodeInvalidConfig, "computeDeviceType"},
			{"denoising this Blender cannot do", withDefault(func(c *farm.RenderConfig) { b := true; c.DenoisingEnabled = &b }), farm.CodeInvalidConfig, "denoisingEnabled"},
			{"a split frame with EEVEE", withDefault(func(c *farm.RenderConfig) {
				c.RenderEngine, c.SplitFrame = str("BLENDER_EEVEE"), &farm.SplitFrame{Parts: 4}
			}), farm.CodeInvalidConfig, "renderEngine"},
			{"a frame split into one part", withDefault(func(c *farm.RenderConfig) { c.SplitFrame = &farm.SplitFrame{Parts: 1} }), farm.CodeInvalidConfig, "splitFrame.parts"},
			{"a frame split into 65 parts", withDefault(func(c *farm.RenderConfig) { c.SplitFrame = &farm.SplitFrame{Mode: "tiles", Parts: 65} }), farm.CodeInvalidConfig, "splitFrame.parts"},
			{"a split mode that does not exist", withDefault(func(c *farm.RenderConfig) { c.SplitFrame = &farm.SplitFrame{Mode: "rows", Parts: 4} }), farm.CodeInvalidConfig, "splitFrame.mode"},
			{"fewer samples than parts", withDefault(func(c *farm.RenderConfig) {
				c.RenderEngine, c.SampleCount, c.SplitFrame = str("CYCLES"), num(3), &farm.SplitFrame{Parts: 4}
			}), farm.CodeInvalidConfig, "splitFrame.parts"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.ValidatedJob(f.api, 10)

				_, replay, err := f.api.Render(f.Ctx, f.P, job.ID, tt.cfg)

				var fe *farm.Error
				if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Code != tt.wantCode || fe.Field != tt.wantField {
					t.Fatalf("Render = %v, want a 400 %s about %q", err, tt.wantCode, tt.wantField)
				}
				if replay {
					t.Error("a refused request answered replay")
				}
				after := f.Job(job.ID)
				if after.Status != farm.StatusValidated || after.RequestedConfig != nil || after.FinalConfig != nil {
					t.Errorf("job = %s with requested %v, final %v; want validated with neither", after.Status, after.RequestedConfig, after.FinalConfig)
				}
				f.assertNothingQueued(t, job.ID)
			})
		}
	})
}

func TestRenderOnlyStartsAValidatedJob(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, status := range []farm.Status{farm.StatusCreated, farm.StatusValidating, farm.StatusFailed, farm.StatusCanceled} {
			t.Run(string(status), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.ValidatedJob(f.api, 10)
				job.Status = status
				if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
					t.Fatal(err)
				}

				_, replay, err := f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(2))

				if code := enginetest.ErrorCode(err); code != farm.CodeInvalidState || replay {
					t.Fatalf("Render of a %s job = replay %v, %v; want %s", status, replay, err, farm.CodeInvalidState)
				}
				if st := f.Job(job.ID).Status; st != status {
					t.Errorf("job = %s, want still %s", st, status)
				}
				f.assertNothingQueued(t, job.ID)
			})
		}
	})
}

func TestRenderQueuesOneChunkPerChunkSizeFrames(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			frameRanges []string
			chunkSize   int
			wantChunks  [][]int
		}{
			{[]string{"1-10"}, 3, [][]int{{1, 2, 3}, {4, 5, 6}, {7, 8, 9}, {10}}},
			{[]string{"1-10"}, 5, [][]int{{1, 2, 3, 4, 5}, {6, 7, 8, 9, 10}}},
			{[]string{"1-10"}, 10, [][]int{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}},
			{[]string{"1-10"}, 1000, [][]int{{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}},
			{[]string{"3"}, 1, [][]int{{3}}},
			{[]string{"1-9x2"}, 2, [][]int{{1, 3}, {5, 7}, {9}}},
			{[]string{"8-10", "2", "4-5"}, 2, [][]int{{2, 4}, {5, 8}, {9, 10}}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%v in chunks of %d", tt.frameRanges, tt.chunkSize), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				// A node of the job's Blender with a slot for every chunk.
				f.renderNode(store.Worker{Name: "node-a", BlenderVersions: []string{"4.2.3"}, Slots: 10})
				job := f.ValidatedJob(f.api, 10)

				got, replay, err := f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(tt.chunkSize, tt.frameRanges...))

				if err != nil || replay {
					t.Fatalf("Render = replay %v, %v; want accepted", replay, err)
				}
				after := f.Job(job.ID)
				if got.Status != farm.StatusBooting || after.Status != farm.StatusBooting {
					t.Errorf("job = %s (row %s), want booting", got.Status, after.Status)
				}
				if after.FinalConfig == nil || after.FinalConfig.ChunkSize != tt.chunkSize || after.RequestedConfig == nil {
					t.Fatalf("row has final config %+v, want one with chunk size %d, and the request", after.FinalConfig, tt.chunkSize)
				}

				tasks := f.Tasks(job.ID, store.TaskRender)
				riverJobs := f.RiverJobs("render_chunk")
				if len(tasks) != len(tt.wantChunks) || len(riverJobs) != len(tt.wantChunks) {
					t.Fatalf("%d tasks and %d River jobs, want %d of each", len(tasks), len(riverJobs), len(tt.wantChunks))
				}
				frames := f.Frames(job.ID)
				wantFrames := 0
				for i, task := range tasks {
					want := tt.wantChunks[i]
					wantFrames += len(want)
					// Given to the idle node in the request itself.
					if task.Chunk != i || task.Status != store.TaskQueued || task.Generation != 1 || task.WorkerID != "run-of-node-a" {
						t.Errorf("task %d = chunk %d %s generation %d worker %q; want chunk %d queued at generation 1, on node-a",
							i, task.Chunk, task.Status, task.Generation, task.WorkerID, i)
					}
					rj := f.RiverJobByID(task.RiverJobID)
					args := f.RenderArgsOf(rj)
					if args.TaskRef != f.Ref(task) || !slices.Equal(args.Frames, want) {
						t.Errorf("chunk %d River job args = %+v, want %+v with frames %v", i, args, f.Ref(task), want)
					}
					// The queue of the node it was given to, which only that
					// node works.
					if rj.State != "available" || rj.Queue != engine.RenderQueue("run-of-node-a") || rj.MaxAttempts != enginetest.RenderAttempts || args.BlenderVersion != "4.2.3" {
						t.Errorf("chunk %d River job = %s in %q with %d attempts for Blender %q; want available in %q with %d for 4.2.3",
							i, rj.State, rj.Queue, rj.MaxAttempts, args.BlenderVersion, engine.RenderQueue("run-of-node-a"), enginetest.RenderAttempts)
					}
					if task.BlenderVersion != "4.2.3" {
						t.Errorf("chunk %d's task needs Blender %q, want 4.2.3", i, task.BlenderVersion)
					}
					for _, n := range want {
						fr, ok := frames[n]
						if !ok || fr.TaskID != task.ID || fr.Status != farm.FrameQueued || fr.Attempts != 0 {
							t.Errorf("frame %d = %+v, want queued in chunk %d", n, fr, i)
						}
					}
				}
				if len(frames) != wantFrames {
					t.Errorf("%d frames, want %d", len(frames), wantFrames)
				}
			})
		}
	})
}

func TestRenderWithoutChunkSizeSpreadsFramesOverTheLiveWorkers(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name       string
			workers    func(f *fixture, now time.Time)
			wantChunks int
		}{
			{"no worker: one chunk", func(*fixture, time.Time) {}, 1},
			{"three live workers: three chunks", func(f *fixture, now time.Time) {
				f.RegisterWorker("run-a", "node-a", now)
				f.RegisterWorker("run-b", "node-b", now)
				f.RegisterWorker("run-c", "node-c", now)
			}, 3},
			{"stale, replaced and stopped runs do not count", func(f *fixture, now time.Time) {
				f.RegisterWorker("run-a", "node-a", now)
				f.RegisterWorker("run-b", "node-b", now.Add(-time.Hour))
				f.RegisterWorker("run-c1", "node-c", now)
				f.RegisterWorker("run-c2", "node-c", now) // run-c1 is gone
				f.RegisterWorker("run-d", "node-d", now)
				if err := f.Store.Heartbeat(f.Ctx, "run-d", store.WorkerStopped, ""); err != nil {
					f.T.Fatal(err)
				}
			}, 2},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				tt.workers(f, time.Now())
				job := f.ValidatedJob(f.api, 10)

				if _, _, err := f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(0)); err != nil {
					t.Fatal(err)
				}

				if n := len(f.Tasks(job.ID, store.TaskRender)); n != tt.wantChunks {
					t.Errorf("%d chunks of 10 frames, want %d", n, tt.wantChunks)
				}
			})
		}
	})
}

func TestARepeatedRenderRequestIsAReplayThatAddsNothing(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct {
			name string
			// then moves the job on after the first request.
			then farm.Status
		}{
			{"while booting", farm.StatusBooting},
			{"while rendering", farm.StatusRendering},
			{"while finalizing", farm.StatusFinalizing},
			{"once completed", farm.StatusCompleted},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				job := f.RenderingJob(f.api, 10, 4)
				for _, st := range []farm.Status{farm.StatusRendering, farm.StatusFinalizing, farm.StatusCompleted} {
					if f.Job(job.ID).Status == tt.then {
						break
					}
					f.Move(job.ID, st)
				}
				before := f.Job(job.ID)
				tasks, frames, riverJobs := f.Count("tasks", ""), f.Count("frames", ""), f.Count("river_job", "")

				// Another request, even a different one, answers the job as it is.
				got, replay, err := f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(1, "1-3"))

				if err != nil || !replay {
					t.Fatalf("repeated Render = replay %v, %v; want a replay", replay, err)
				}
				if got.Status != tt.then || got.FinalConfig.ChunkSize != 4 || got.FinalConfig.FrameCount != 10 {
					t.Errorf("replay answered %s with chunk size %d for %d frames; want the job as it is: %s, 4, 10",
						got.Status, got.FinalConfig.ChunkSize, got.FinalConfig.FrameCount, tt.then)
				}
				if after := f.Job(job.ID); after.Status != before.Status || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("replay wrote the job: %s updated %v, was %s updated %v", after.Status, after.UpdatedAt, before.Status, before.UpdatedAt)
				}
				if t2, f2, r2 := f.Count("tasks", ""), f.Count("frames", ""), f.Count("river_job", ""); t2 != tasks || f2 != frames || r2 != riverJobs {
					t.Errorf("replay added rows: tasks %d→%d, frames %d→%d, River jobs %d→%d", tasks, t2, frames, f2, riverJobs, r2)
				}
			})
		}
	})
}

func TestConcurrentRenderRequestsQueueTheChunksOnce(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.renderNode(store.Worker{Name: "node-a", BlenderVersions: []string{"4.2.3"}, Slots: 4})
		job := f.ValidatedJob(f.api, 10)

		const requests = 6
		var wg sync.WaitGroup
		replays := make([]bool, requests)
		errs := make([]error, requests)
		for i := range requests {
			wg.Go(func() {
				_, replays[i], errs[i] = f.api.Render(f.Ctx, f.P, job.ID, enginetest.RenderConfig(5))
			})
		}
		wg.Wait()

		first := 0
		for i := range requests {
			if errs[i] != nil {
				t.Errorf("request %d: %v", i, errs[i])
			}
			if !replays[i] {
				first++
			}
		}
		if first != 1 {
			t.Errorf("%d requests were taken as the first, want exactly 1 (the others replays)", first)
		}
		if n := len(f.Tasks(job.ID, store.TaskRender)); n != 2 {
			t.Errorf("%d chunks, want 2", n)
		}
		if n := len(f.RiverJobs("render_chunk")); n != 2 {
			t.Errorf("%d render_chunk River jobs, want 2", n)
		}
		if n := f.Count("frames", "job_id = ?", job.ID); n != 10 {
			t.Errorf("%d frames, want 10", n)
		}
	})
}
