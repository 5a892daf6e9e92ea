package service

import (
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
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
