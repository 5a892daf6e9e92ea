package node

import (
	"encoding/json"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// validatingJobOf is a job, whose validation was requested, of a file
// whose header says it was saved by Blender version ("4.5" writes
// BLENDER-v405).
func (f *fixture) validatingJobOf(header string) *farm.Job {
	f.T.Helper()
	job, _ := f.UploadedJob(f.api, header+" a scene")
	if _, err := f.api.Validate(f.Ctx, f.P, job.ID); err != nil {
		f.T.Fatal(err)
	}
	return job
}

// liveWorker records another render node of the farm, alive, that runs
// the given Blenders.
func (f *fixture) liveWorker(name string, versions ...string) {
	f.T.Helper()
	now := time.Now()
	err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: "run-of-" + name, Name: name, StartedAt: now, HeartbeatAt: now,
		State: store.WorkerIdle, BlenderVersions: versions})
	if err != nil {
		f.T.Fatal(err)
	}
}

// TestAFileNewerThanEveryBlenderFailsWithoutStartingOne: the header says
// 4.5, the farm's newest is 4.2.3: the job fails BLENDER_TOO_OLD, naming
// both, and the fake Blender, which fails the test when asked anything
// unscripted, is never asked.
func TestAFileNewerThanEveryBlenderFailsWithoutStartingOne(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.validatingJobOf("BLENDER-v405")
		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("Work = %v, want the failure recorded", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusFailed || after.FailedReason == nil || after.FailedReason.Name != "BLENDER_TOO_OLD" {
			t.Fatalf("job = %s, %+v; want failed BLENDER_TOO_OLD", after.Status, after.FailedReason)
		}
		for _, want := range []string{"saved with Blender 4.5", "Blender 4.2.3 at newest", "--blender"} {
			if !strings.Contains(after.FailedReason.Message, want) {
				t.Errorf("failedReason %q does not say %q", after.FailedReason.Message, want)
			}
		}
		if after.SceneFile == nil || after.SceneFile.Version != "4.5" {
			t.Errorf("sceneFile = %+v, want the header's version 4.5", after.SceneFile)
		}
	})
}

// TestAFileGoesToTheBlenderOfItsOwnVersion: of a node's Blenders, the one
// of the file's major.minor validates it, and the analysis says which,
// and which the farm offers.
func TestAFileGoesToTheBlenderOfItsOwnVersion(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureOf(t, db, "4.5.0", "3.4.1")
		f.liveWorker("elsewhere", "3.6.2")
		for header, version := range map[string]string{"BLENDER-v405": "4.5.0", "BLENDER-v304": "3.4.1"} {
			job := f.validatingJobOf(header)
			ins := enginetest.Analysis(10).Inspection
			ins.BlenderVersion = version
			f.blenders[version].willInspect(fakeInspect{inspection: &ins})
			if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
				t.Fatalf("%s: Work = %v", header, err)
			}
			after := f.Job(job.ID)
			if after.Status != farm.StatusValidated {
				t.Fatalf("%s: job = %s, %+v; want validated", header, after.Status, after.FailedReason)
			}
			a := after.Analysis
			if a.RenderBlenderVersion != version || !slices.Equal(a.FarmBlenderVersions, []string{"3.4.1", "3.6.2", "4.5.0"}) {
				t.Errorf("%s: analysis says Blender %q of %q; want %s of 3.4.1, 3.6.2, 4.5.0", header, a.RenderBlenderVersion, a.FarmBlenderVersions, version)
			}
		}
		// A 3.5 file opens in 3.6.2, the oldest Blender newer than the file,
		// another node's: this node hands it on rather than open it in its
		// 4.5.0.
		job := f.validatingJobOf("BLENDER-v305")
		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("3.5 file: Work = %v", err)
		}
		if task := f.Tasks(job.ID, store.TaskValidate)[0]; task.BlenderVersion != "3.6.2" || task.Status != store.TaskQueued {
			t.Errorf("3.5 file's validation = %+v, want queued for Blender 3.6.2", task)
		}
	})
}

// TestAValidationNeedingABlenderThisNodeLacksIsRouted: the file needs 4.5,
// which another live node runs and this one does not: the task goes,
// under a new generation, to the 4.5 nodes' queue; the job stays
// validating, and nothing of it stays on this node.
func TestAValidationNeedingABlenderThisNodeLacksIsRouted(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.liveWorker("node-45", "3.4.1", "4.5.0")
		job := f.validatingJobOf("BLENDER-v405")
		if err := f.validateWork(f.Ctx, job.ID, 1, 3); err != nil {
			t.Fatalf("Work = %v, want the task handed on quietly", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusValidating {
			t.Errorf("job = %s, want still validating", st)
		}
		task := f.Tasks(job.ID, store.TaskValidate)[0]
		if task.Status != store.TaskQueued || task.Generation != 2 || task.BlenderVersion != "4.5.0" || task.WorkerID != "" {
			t.Errorf("task = %+v; want queued again, generation 2, for Blender 4.5.0", task)
		}
		rj := f.RiverJobByID(task.RiverJobID)
		var args engine.ValidateArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			t.Fatal(err)
		}
		if rj.Queue != "control_4_5_0" || rj.State != "available" || args.BlenderVersion != "4.5.0" || args.Generation != 2 {
			t.Errorf("River job = %s in %q, args %+v; want available in control_4_5_0 for 4.5.0, generation 2", rj.State, rj.Queue, args)
		}
		if dir := f.node.jobDir(job.ID); dirExists(dir) {
			t.Errorf("the routed job's files are still in %s", dir)
		}
	})
}

// TestAChunkGoesOnlyToANodeOfItsBlender: a chunk whose job renders with
// a Blender this node does not run is never given to it; the dispatcher
// gives it to the node that runs that Blender, on that node's own queue.
func TestAChunkGoesOnlyToANodeOfItsBlender(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		if err := f.node.Start(f.Ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(f.node.Stop)
		now := time.Now()
		if err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: "run-of-node-45", Name: "node-45", StartedAt: now, HeartbeatAt: now,
			State: store.WorkerIdle, BlenderVersions: []string{"4.5.0"}, Slots: 1}); err != nil {
			t.Fatal(err)
		}
		job := f.ValidatedJob(f.api, 2)
		cfg := enginetest.RenderConfig(2)
		pin := "4.5"
		cfg.BlenderVersion = &pin
		if _, _, err := f.api.Render(f.Ctx, f.P, job.ID, cfg); err != nil {
			t.Fatal(err)
		}
		task := f.Tasks(job.ID, store.TaskRender)[0]
		if task.BlenderVersion != "4.5.0" {
			t.Fatalf("chunk's Blender = %q, want the pinned 4.5's 4.5.0", task.BlenderVersion)
		}
		if task.Status != store.TaskQueued || task.WorkerID != "run-of-node-45" {
			t.Fatalf("chunk is %s on %q; want queued on the 4.5 node", task.Status, task.WorkerID)
		}
		if rj := f.RiverJobByID(task.RiverJobID); rj.Queue != engine.RenderQueue("run-of-node-45") || !slices.Equal(f.RenderArgsOf(rj).Frames, []int{1, 2}) {
			t.Errorf("River job in %q with frames %v; want the 4.5 node's queue with 1, 2", rj.Queue, f.RenderArgsOf(rj).Frames)
		}
		if n, err := f.Engine.FillWorker(f.Ctx, f.node.WorkerID()); n != 0 || err != nil {
			t.Errorf("FillWorker(this node) = %d, %v; want nothing for a node without Blender 4.5", n, err)
		}
	})
}

// TestAChunksLogSaysWhichBlenderRenderedIt: a rendered chunk keeps its
// log, headed by the node and the Blender that rendered it.
func TestAChunksLogSaysWhichBlenderRenderedIt(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 3, 3)
		ref := f.Ref(f.Tasks(job.ID, store.TaskRender)[0])
		f.blender.willRender(fakeRender{saves: []int{1, 2, 3}})
		if err := f.renderWork(f.Ctx, ref, 1, enginetest.RenderAttempts); err != nil {
			t.Fatal(err)
		}
		log, err := f.api.JobLog(f.Ctx, f.P, job.ID)
		if err != nil || len(log.Lines) != 2 {
			t.Fatalf("log = %+v, %v; want the farm's line and Blender's", log, err)
		}
		if want := "renderfarm: frames 1-3 on render node node-test with Blender 4.2.3"; log.Lines[0] != want {
			t.Errorf("log's first line = %q, want %q", log.Lines[0], want)
		}
		if !strings.HasPrefix(log.Lines[1], "Fra:1 the fake Blender's last line, in <job>") {
			t.Errorf("log's Blender line = %q, want it without the farm's paths", log.Lines[1])
		}
	})
}

// TestEachBlendersQueuesAreWorked: a node works the queue of the chunks
// given to it, and the control queues of every Blender it runs beside
// the shared one.
func TestEachBlendersQueuesAreWorked(t *testing.T) {
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureOf(t, db, "3.4.1", "4.3.2")
		if got := f.node.BlenderVersions(); !slices.Equal(got, []string{"3.4.1", "4.3.2"}) {
			t.Errorf("BlenderVersions = %v", got)
		}
		// River's client refuses to add a queue it already works.
		queues := f.Engine.River().Queues()
		for _, name := range []string{engine.RenderQueue(f.node.WorkerID()), "control", "control_3_4_1", "control_4_3_2"} {
			if err := queues.Add(name, river.QueueConfig{MaxWorkers: 1}); !errors.Is(err, &river.QueueAlreadyAddedError{}) {
				t.Errorf("the node does not work queue %q (adding it: %v)", name, err)
			}
		}
	})
}

func dirExists(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
