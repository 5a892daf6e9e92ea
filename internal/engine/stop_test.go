package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
)

// holdArgs is a River job that runs until it is canceled.
type holdArgs struct{}

func (holdArgs) Kind() string { return "test_hold" }

type holdWorker struct {
	river.WorkerDefaults[holdArgs]
	started chan struct{}
}

func (w *holdWorker) Work(ctx context.Context, _ *river.Job[holdArgs]) error {
	close(w.started)
	<-ctx.Done()
	return ctx.Err()
}

// startedEngine is a replica's engine that works the queue "test_hold",
// started.
func (f *fixture) startedEngine(w *holdWorker) *engine.Engine {
	f.T.Helper()
	e := f.Replica()
	e.Register(map[string]int{"test_hold": 1}, func(workers *river.Workers) { river.AddWorker(workers, w) })
	if err := e.Start(f.Ctx); err != nil {
		f.T.Fatal(err)
	}
	return e
}

// TestAStopTellsWhetherItCutRunningWorkShort: a stop whose time is up at
// once (--shutdown-timeout 0) cuts short only what runs. An engine with
// nothing running stops without cutting anything short, though River's
// own stop outlasts that time; one that runs a job cancels it, and says
// so (the process then exits app.ExitStoppedByForce).
func TestAStopTellsWhetherItCutRunningWorkShort(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		over, cancel := context.WithCancel(f.Ctx)
		cancel() // a timeout of 0

		idle := f.startedEngine(&holdWorker{started: make(chan struct{})})
		if err := idle.Stop(over); err != nil {
			t.Fatalf("Stop of an idle engine: %v", err)
		}
		if idle.StopCutWorkShort() {
			t.Error("an idle engine's stop says it cut running work short")
		}

		w := &holdWorker{started: make(chan struct{})}
		busy := f.startedEngine(w)
		if _, err := busy.River().Insert(f.Ctx, holdArgs{}, &river.InsertOpts{Queue: "test_hold"}); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.started:
		case <-time.After(20 * time.Second):
			t.Fatal("the job did not start")
		}
		if err := busy.Stop(over); err != nil {
			t.Fatalf("Stop of a busy engine: %v", err)
		}
		if !busy.StopCutWorkShort() {
			t.Error("a stop that canceled a running job says it cut nothing short")
		}
	})
}
