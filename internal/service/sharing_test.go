package service

import (
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestCancelGivesTheFreedSlotsToWaitingChunks: a node's two slots hold
// chunks of one job, given but not started, while another job waits; the
// first job canceled, its slots take the other job's chunks at once.
func TestCancelGivesTheFreedSlotsToWaitingChunks(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.renderNode(store.Worker{Name: "node-a", BlenderVersions: []string{"4.2.3"}, Slots: 2})
		first := f.WaitingJob(f.api, 4, enginetest.RenderConfig(1))
		second := f.WaitingJob(f.api, 2, enginetest.RenderConfig(1))
		onNode := func(jobID string) int {
			n := 0
			for _, t := range f.Tasks(jobID, store.TaskRender) {
				if t.Status == store.TaskQueued && t.WorkerID == "run-of-node-a" {
					n++
				}
			}
			return n
		}
		if a, b := onNode(first.ID), onNode(second.ID); a != 2 || b != 0 {
			t.Fatalf("on node-a: %d chunks of the first job, %d of the second; want 2 and 0", a, b)
		}
		if _, err := f.api.Cancel(f.Ctx, f.P, first.ID); err != nil {
			t.Fatal(err)
		}
		if a, b := onNode(first.ID), onNode(second.ID); a != 0 || b != 2 {
			t.Errorf("after the cancel, on node-a: %d chunks of the first job, %d of the second; want 0 and 2", a, b)
		}
		f.CheckTaskInvariant()
	})
}

// TestProgressSaysATaggedJobWaitsForItsOfflineNode: the only node with
// the tag the job requires is registered but silent: the render is
// accepted and waits, and progress says for what; once the node beats
// again, it no longer says so.
func TestProgressSaysATaggedJobWaitsForItsOfflineNode(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.renderNode(store.Worker{Name: "node-plain", BlenderVersions: []string{"4.2.3"}, Slots: 2})
		f.renderNode(store.Worker{Name: "node-gpu", BlenderVersions: []string{"4.2.3"}, Tags: []string{"gpu"}})
		f.Exec(`UPDATE workers SET heartbeat_at = ? WHERE id = 'run-of-node-gpu'`, time.Now().Add(-time.Hour).UTC())

		cfg := enginetest.RenderConfig(1)
		cfg.RequiredTags = []string{"gpu"}
		job := f.WaitingJob(f.api, 2, cfg)
		p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if want := "a render node with the tag gpu (and Blender 4.2.3): no live render node has them"; !strings.Contains(p.WaitingFor, want) {
			t.Errorf("waitingFor = %q, want it to say %q", p.WaitingFor, want)
		}
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status != store.TaskWaiting {
				t.Errorf("chunk %d = %s on %q, want waiting: the live node is untagged", task.Chunk, task.Status, task.WorkerID)
			}
		}

		if err := f.Store.Heartbeat(f.Ctx, "run-of-node-gpu", store.WorkerIdle, ""); err != nil {
			t.Fatal(err)
		}
		if p, err := f.api.Progress(f.Ctx, f.P, job.ID, farm.ProgressQuery{}); err != nil || p.WaitingFor != "" {
			t.Errorf("with the tagged node live: waitingFor %q, %v; want none", p.WaitingFor, err)
		}
	})
}
