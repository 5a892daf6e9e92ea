package node

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
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

// killedProcess starts a process on this machine and kills it with
// SIGKILL, as a crashed node dies, and answers where it ran: a process
// that is gone for certain.
func killedProcess(t *testing.T) store.WorkerProcess {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := thisProcess()
	p.PID = cmd.Process.Pid
	start, _, err := processStat(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	p.PIDStart = start
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return p
}

// liveProcess starts a process on this machine that lives until the test
// ends, and answers where it runs.
func liveProcess(t *testing.T) store.WorkerProcess {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	p := thisProcess()
	p.PID = cmd.Process.Pid
	start, _, err := processStat(p.PID)
	if err != nil {
		t.Fatal(err)
	}
	p.PIDStart = start
	return p
}

// TestANodeRestartedAfterACrashTakesItsNameAtOnce: the run of the name
// was heard from a moment ago, but its process, on this machine, is dead
// (killed), or its id now belongs to another process: the node starts at
// once, not after watching two heartbeats, and hands the dead run's chunk
// out again under a new generation. A run whose process lives, or that
// ran on another machine, is still watched.
func TestANodeRestartedAfterACrashTakesItsNameAtOnce(t *testing.T) {
	if thisProcess().Machine == "" {
		t.Skip("this system does not say which machine and process a run is")
	}
	reused := liveProcess(t)
	reused.PIDStart++ // the id is another process's now
	for _, tt := range []struct {
		name    string
		process store.WorkerProcess
		atOnce  bool
	}{
		{"killed on this machine", killedProcess(t), true},
		{"its id reused by another process", reused, true},
		{"alive on this machine", liveProcess(t), false},
		{"killed on another machine", func() store.WorkerProcess {
			p := killedProcess(t)
			p.Machine = "another boot " + p.Machine
			return p
		}(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
				// The watch of a run that may live lasts two heartbeats and a
				// second: 3 s at this timeout.
				f := newFixtureWith(t, db, func(c *Config) { c.WorkerTimeout = 4 * time.Second })
				job := f.RenderingJob(f.api, 3, 3)
				f.DispatchAll(job)
				task := f.Tasks(job.ID, store.TaskRender)[0]
				now := time.Now()
				earlier := store.Worker{ID: "earlier-run", Name: "node-test", StartedAt: now, HeartbeatAt: now, State: store.WorkerBusy, Slots: 1, Process: tt.process}
				if err := f.Store.RegisterWorker(f.Ctx, earlier); err != nil {
					t.Fatal(err)
				}
				if err := f.Store.ClaimTask(f.Ctx, task.ID, task.Generation, earlier.ID, 1); err != nil {
					t.Fatal(err)
				}

				began := time.Now()
				if err := f.node.Start(f.Ctx); err != nil {
					t.Fatalf("Start: %v", err)
				}
				took := time.Since(began)
				t.Cleanup(f.node.Stop)
				if tt.atOnce && took > time.Second {
					t.Errorf("Start took %v; want it at once, the earlier run's process being dead", took)
				}
				if !tt.atOnce && took < 2*time.Second {
					t.Errorf("Start took %v; want the earlier run watched for two heartbeats (3 s), its death unproven", took)
				}
				if w, err := f.Store.GetWorker(f.Ctx, earlier.ID); err != nil || w.State != store.WorkerGone {
					t.Errorf("the earlier run is %+v (%v), want gone", w, err)
				}
				now2 := f.Task(task.ID)
				if now2.Generation != task.Generation+1 || now2.WorkerID == earlier.ID {
					t.Errorf("the earlier run's chunk is at generation %d, held by %q; want it handed out again under generation %d",
						now2.Generation, now2.WorkerID, task.Generation+1)
				}
			})
		})
	}
}

// TestProcessStatReadsAnOddCommandName: a command's name may hold
// spaces and parentheses; the start time is read all the same.
func TestProcessStatReadsAnOddCommandName(t *testing.T) {
	if thisProcess().Machine == "" {
		t.Skip("no /proc here")
	}
	dir := t.TempDir()
	odd := filepath.Join(dir, "a) b (c")
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip(err)
	}
	if err := os.Symlink(sleep, odd); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(odd, "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	start, state, err := processStat(cmd.Process.Pid)
	mine, _, _ := processStat(os.Getpid())
	if err != nil || start < mine || state == "" {
		t.Errorf("processStat of %q = %d, %q, %v; want its start time (after this process's, %d) and its state", odd, start, state, err, mine)
	}
}
