// Command dispatch measures the dispatcher: the time from a worker's slot
// freeing to its next chunk being started, that is the transaction a
// render node runs as a chunk ends (the chunk marked done, the workspace
// marked served, the farm's rule choosing the next chunk for the slot,
// that chunk given to the worker and its River job inserted on the
// worker's queue), with 10, 1,000 and 100,000 chunks waiting across 10
// workspaces, on SQLite and on PostgreSQL.
//
// The chunks are queued as a render request queues them (engine.
// EnqueueChunks, one job per workspace, every job of its own priority),
// so the time to queue them is reported too. River then starts the job
// on the worker's queue at its next fetch; that wait is River's, the
// same whatever waits, and not counted here.
//
//	go run ./bench/dispatch [-waiting 10,1000,100000] [-workspaces 10] [-samples 200]
//
// PostgreSQL is measured when RENDERFARM_TEST_POSTGRES is set (as
// scripts/services.sh sets it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/bench/internal/benchkit"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// blenderVersion is the Blender of every job, and the worker's.
const blenderVersion = "4.2.3"

func main() {
	waiting := flag.String("waiting", "10,1000,100000", "how many chunks wait, comma-separated cases")
	workspaces := flag.Int("workspaces", 10, "how many workspaces the waiting chunks are spread over")
	samples := flag.Int("samples", 200, "how many freed slots to time in each case")
	flag.Parse()
	var sizes []int
	for _, s := range strings.Split(*waiting, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < *workspaces {
			benchkit.Fatalf("-waiting: %q is not a number of chunks of at least -workspaces", s)
		}
		sizes = append(sizes, n)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	defer benchkit.RunExits()

	work, err := os.MkdirTemp("", "renderfarm-bench-dispatch-")
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	benchkit.AtExit(func() { os.RemoveAll(work) })

	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "database\twaiting\tqueue them\tfreed slot to next chunk: median\tp95\tmax\t")
	databases := []string{"sqlite"}
	if os.Getenv("RENDERFARM_TEST_POSTGRES") != "" {
		databases = append(databases, "postgres")
	}
	for _, db := range databases {
		for _, n := range sizes {
			st := openStore(ctx, db, work)
			r := measure(ctx, st, work, n, *workspaces, *samples)
			st.Close()
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t\n", db, n, r.queue.Round(time.Millisecond),
				ms(r.median), ms(r.p95), ms(r.max))
		}
	}
	tw.Flush()
	fmt.Println()
	fmt.Println(benchkit.CPUModel() + ", " + benchkit.LoadAverage())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// openStore opens a fresh, migrated database of the farm's.
func openStore(ctx context.Context, db, work string) *store.Store {
	switch db {
	case "sqlite":
		dir, err := os.MkdirTemp(work, "sqlite-")
		if err != nil {
			benchkit.Fatalf("%v", err)
		}
		st, err := store.OpenSQLite(ctx, filepath.Join(dir, "renderfarm.db"))
		if err != nil {
			benchkit.Fatalf("open SQLite: %v", err)
		}
		return st
	default:
		pg, err := testbackends.OpenPostgres()
		if err != nil {
			benchkit.Fatalf("%v", err)
		}
		benchkit.AtExit(func() { pg.Close() })
		dsn, drop, err := pg.CreateDatabase(ctx, "")
		if err != nil {
			benchkit.Fatalf("%v", err)
		}
		benchkit.AtExit(func() { _ = drop() })
		st, err := store.OpenPostgres(ctx, dsn)
		if err != nil {
			benchkit.Fatalf("open PostgreSQL: %v", err)
		}
		pgDSN[st] = dsn
		return st
	}
}

// pgDSN is the URL of each PostgreSQL store, which River's driver needs.
var pgDSN = map[*store.Store]string{}

type result struct {
	queue            time.Duration
	median, p95, max time.Duration
}

// measure queues n chunks over workspaces jobs, starts one worker of one
// slot on the first of them, then frees its slot samples times: each time
// the chunk it runs ends, in the transaction a node runs, which gives the
// slot its next chunk.
func measure(ctx context.Context, st *store.Store, work string, n, workspaces, samples int) result {
	objects, err := objstore.NewLocal(objstore.LocalConfig{Dir: filepath.Join(work, "objects"), BaseURL: "http://127.0.0.1:1", Secret: []byte(strings.Repeat("s", 32))})
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	defer objects.Close()
	cfg := engine.DefaultConfig()
	cfg.Store, cfg.Objects, cfg.PostgresDSN = st, objects, pgDSN[st]
	eng, err := engine.New(ctx, cfg)
	if err != nil {
		benchkit.Fatalf("%v", err)
	}
	defer eng.Close()

	// One job per workspace, each of a priority of its own, its chunks of
	// one frame.
	var r result
	for i := range workspaces {
		ws, err := st.EnsureWorkspace(ctx, fmt.Sprintf("workspace-%02d", i))
		if err != nil {
			benchkit.Fatalf("%v", err)
		}
		chunks := n / workspaces
		if i < n%workspaces {
			chunks++
		}
		now := time.Now().UTC()
		job := &farm.Job{ID: uuid.NewString(), Status: farm.StatusBooting, WorkspaceID: ws.ID, UserID: "bench", CreatedAt: now, UpdatedAt: now,
			Slug: uuid.NewString(), Priority: 10 + i, FinalConfig: &farm.FinalConfig{BlenderVersion: blenderVersion, ChunkSize: 1}}
		frames := make([][]int, chunks)
		for c := range frames {
			frames[c] = []int{c + 1}
		}
		start := time.Now()
		err = st.InTx(ctx, func(tx *store.Tx) error {
			if err := tx.InsertJob(ctx, job); err != nil {
				return err
			}
			return eng.EnqueueChunks(ctx, tx, job, frames)
		})
		if err != nil {
			benchkit.Fatalf("queue %d chunks: %v", chunks, err)
		}
		r.queue += time.Since(start)
	}

	now := time.Now()
	worker := store.Worker{ID: uuid.NewString(), Name: "bench-node", StartedAt: now, HeartbeatAt: now, State: store.WorkerIdle,
		BlenderVersions: []string{blenderVersion}, Slots: 1}
	if err := st.RegisterWorker(ctx, worker); err != nil {
		benchkit.Fatalf("%v", err)
	}
	if got, err := eng.FillWorker(ctx, worker.ID); err != nil || got != 1 {
		benchkit.Fatalf("the worker's first chunk: %d, %v", got, err)
	}
	var took []time.Duration
	for range min(samples, n-1) {
		running, err := st.QueuedOn(ctx, worker.ID)
		if err != nil || len(running) != 1 {
			benchkit.Fatalf("chunks on the worker: %d, %v; want 1", len(running), err)
		}
		t := running[0]
		if err := st.ClaimTask(ctx, t.ID, t.Generation, worker.ID); err != nil {
			benchkit.Fatalf("claim: %v", err)
		}
		start := time.Now()
		err = st.InDispatchTx(ctx, func(tx *store.Tx) error {
			if err := tx.FinishTask(ctx, t.ID, t.Generation, store.TaskDone); err != nil {
				return err
			}
			if err := tx.MarkServed(ctx, t.WorkspaceID, time.Now()); err != nil {
				return err
			}
			got, err := eng.DispatchTo(ctx, tx, worker.ID)
			if err == nil && got != 1 {
				err = errors.New("the freed slot took no chunk")
			}
			return err
		})
		took = append(took, time.Since(start))
		if err != nil {
			benchkit.Fatalf("free the slot: %v", err)
		}
	}
	slices.Sort(took)
	r.median, r.p95, r.max = took[len(took)/2], took[len(took)*95/100], took[len(took)-1]
	return r
}
