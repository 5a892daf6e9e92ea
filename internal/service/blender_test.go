package service

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// liveWorker records a render node, alive now, that runs the given
// Blenders.
func (f *fixture) liveWorker(name string, versions ...string) {
	f.T.Helper()
	f.renderNode(store.Worker{Name: name, BlenderVersions: versions, Slots: 0})
}

// renderNode records a render node, alive and idle now, as w describes
// it (its name, Blenders, slots, tags, GPUs, memory); its run's id is
// "run-of-" and its name.
func (f *fixture) renderNode(w store.Worker) {
	f.T.Helper()
	now := time.Now()
	w.ID, w.StartedAt, w.HeartbeatAt, w.State = "run-of-"+w.Name, now, now, store.WorkerIdle
	err := f.Store.RegisterWorker(f.Ctx, w)
	if err != nil {
		f.T.Fatal(err)
	}
}

func TestBlenderVersionsAreThoseOfTheLiveNodes(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		got, err := f.api.BlenderVersions(f.Ctx, f.P)
		if err != nil || got == nil || got.Versions == nil || len(got.Versions) != 0 {
			t.Errorf("with no node: %+v, %v; want an empty list", got, err)
		}
		f.liveWorker("node-a", "3.4.1")
		f.liveWorker("node-b", "3.4.1", "4.3.2")
		got, err = f.api.BlenderVersions(f.Ctx, f.P)
		want := &farm.BlenderOffers{Versions: []farm.BlenderOffer{{Version: "3.4.1", Workers: 2}, {Version: "4.3.2", Workers: 1}}}
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("BlenderVersions = %+v, %v; want %+v", got, err, want)
		}
	})
}

// TestRenderPinsABlenderTheLiveNodesOffer: a pinned version queues every
// chunk for that Blender; one no live node offers is refused with 400,
// naming the field and what there is, and changes nothing.
func TestRenderPinsABlenderTheLiveNodesOffer(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.renderNode(store.Worker{Name: "node-a", BlenderVersions: []string{"3.4.1", "4.3.2"}, Slots: 2})
		job := f.ValidatedJob(f.api, 4)

		cfg := enginetest.RenderConfig(2)
		pin := "9.9"
		cfg.BlenderVersion = &pin
		_, _, err := f.api.Render(f.Ctx, f.P, job.ID, cfg)
		var fe *farm.Error
		if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Field != "blenderVersion" || !strings.Contains(fe.Message, "the farm offers 3.4.1, 4.3.2") {
			t.Fatalf("pinning 9.9: %v; want a 400 about blenderVersion listing 3.4.1, 4.3.2", err)
		}
		if after := f.Job(job.ID); after.Status != farm.StatusValidated || len(f.Tasks(job.ID, store.TaskRender)) != 0 {
			t.Errorf("after the refusal: %s with %d chunks; want validated with none", after.Status, len(f.Tasks(job.ID, store.TaskRender)))
		}

		pin = "4.3"
		rendering, _, err := f.api.Render(f.Ctx, f.P, job.ID, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rendering.FinalConfig.BlenderVersion != "4.3.2" {
			t.Errorf("finalConfig.blenderVersion = %q, want 4.3.2", rendering.FinalConfig.BlenderVersion)
		}
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if rj := f.RiverJobByID(task.RiverJobID); task.BlenderVersion != "4.3.2" || rj.Queue != engine.RenderQueue("run-of-node-a") {
				t.Errorf("chunk %d for Blender %q in queue %q; want 4.3.2's, on node-a's queue", task.Chunk, task.BlenderVersion, rj.Queue)
			}
		}
	})
}

// TestProgressSaysWhatAJobWaitsFor: chunks queued for a Blender no live
// node runs wait, and progress says for what; the job does not fail, and
// once a node with that Blender is live, progress no longer says it.
func TestProgressSaysWhatAJobWaitsFor(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.liveWorker("node-a", "3.4.1")
		job := f.WaitingJob(f.api, 4, enginetest.RenderConfig(2)) // validated by 4.2.3, which no live node runs

		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(p.WaitingFor, "a render node with Blender 4.2.3") || !strings.Contains(p.WaitingFor, "the farm offers 3.4.1") {
			t.Errorf("waitingFor = %q, want it to name Blender 4.2.3 and what the farm offers", p.WaitingFor)
		}
		running, err := f.api.RunningProgress(f.Ctx, f.P, farm.ProgressQuery{})
		if err != nil || len(running) != 1 || running[0].WaitingFor != p.WaitingFor {
			t.Errorf("RunningProgress = %+v, %v; want the same waitingFor", running, err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusBooting {
			t.Errorf("job = %s, want still booting", st)
		}

		f.liveWorker("node-b", "4.2.3")
		if p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{}); err != nil || p.WaitingFor != "" {
			t.Errorf("with a 4.2.3 node live: waitingFor %q, %v; want none", p.WaitingFor, err)
		}
	})
}
