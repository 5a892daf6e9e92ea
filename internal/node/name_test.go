package node

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestANodeRefusesTheNameOfALiveWorker: a node does not start under the
// name of a run whose heartbeat goes on (another process holds it); the
// error names the run and when it was last heard from. Once that run is
// silent (killed), the node starts and replaces it.
func TestANodeRefusesTheNameOfALiveWorker(t *testing.T) {
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixtureWith(t, db, func(c *Config) { c.WorkerTimeout = 2 * time.Second })
		now := time.Now()
		other := store.Worker{ID: "other-run", Name: "node-test", StartedAt: now, HeartbeatAt: now, State: store.WorkerIdle}
		if err := f.Store.RegisterWorker(f.Ctx, other); err != nil {
			t.Fatal(err)
		}
		beating, stop := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(beating)
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if err := f.Store.Heartbeat(f.Ctx, other.ID, store.WorkerBusy, ""); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
		err := f.node.Start(f.Ctx)
		close(stop)
		<-beating
		if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), `"node-test"`) || !strings.Contains(err.Error(), "other-run") ||
			!strings.Contains(err.Error(), "last heard from") || !strings.Contains(err.Error(), "--worker-name") {
			t.Fatalf("Start under a live worker's name: %v; want ErrNameTaken naming the run, when it was heard from and what to do", err)
		}
		if w, err := f.Store.GetWorker(f.Ctx, other.ID); err != nil || w.State == store.WorkerGone {
			t.Errorf("the live run became %+v (%v); a refused start must leave it be", w, err)
		}

		// Silent now, as a killed process is: the node takes the name.
		if err := f.node.Start(f.Ctx); err != nil {
			t.Fatalf("Start once the other run is silent: %v", err)
		}
		t.Cleanup(f.node.Stop)
		if w, err := f.Store.GetWorker(f.Ctx, other.ID); err != nil || w.State != store.WorkerGone {
			t.Errorf("the silent run is %+v (%v), want gone", w, err)
		}
	})
}
