// Command dispatch measures the dispatcher: how long a render node's
// dispatch after its chunks end holds the dispatcher's lock (the
// workspaces marked served, the farm's rule choosing the next chunk for
// each freed slot, each chunk given to the worker and its River job
// inserted on the worker's queue), with 10, 1,000 and 100,000 chunks
// waiting across 10 workspaces, on SQLite and on PostgreSQL; for a worker
// whose one slot freed, and for one whose slots all freed while an
// earlier dispatch waited for the lock, which one dispatch fills. The
// chunks' ends, each a transaction of its own before the dispatch and
// outside the lock, are not counted.
//
// The chunks are queued as a render request queues them (engine.
// EnqueueChunks, one job per workspace, every job of its own priority),
// so the time to queue them is reported too. River then starts the job
// on the worker's queue at its next fetch; that wait is River's, the
// same whatever waits, and not counted here.
//
//	go run ./bench/dispatch [-waiting 10,1000,100000] [-slots 1,10] [-workspaces 10] [-samples 200]
//
// PostgreSQL is measured when RENDERFARM_TEST_POSTGRES is set (as
// scripts/services.sh sets it).
package main

import (
	"context"
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
	samples := flag.Int("samples", 200, "how many dispatches to time in each case")
	slotCases := flag.String("slots", "1,10", "the worker's slots, all freed before each dispatch, comma-separated cases")
	flag.Parse()
	var slotsOf []int
	for _, s := range strings.Split(*slotCases, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			benchkit.Fatalf("-slots: %q is not a number of slots", s)
		}
		slotsOf = append(slotsOf, n)
	}
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
	fmt.Fprintln(tw, "database\twaiting\tslots freed\tqueue them\tthe lock held by a dispatch: median\tp95\tmax\ta chunk given: median\t")
	databases := []string{"sqlite"}
	if os.Getenv("RENDERFARM_TEST_POSTGRES") != "" {
		databases = append(databases, "postgres")
	}
	for _, db := range databases {
		for _, n := range sizes {
			for _, slots := range slotsOf {
				st := openStore(ctx, db, work)
				r := measure(ctx, st, work, n, *workspaces, *samples, slots)
				st.Close()
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t\n", db, n, slots, r.queue.Round(time.Millisecond),
					ms(r.median), ms(r.p95), ms(r.max), ms(r.median/time.Duration(slots)))
			}
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

// measure queues n chunks over workspaces jobs, starts one worker of
// slots slots on the first of them, then frees its slots samples times:
// each time the chunks it runs end, each in a transaction of its own, and
// one dispatch, the one a node runs after them, gives every slot its next
// chunk; that dispatch is timed.
func measure(ctx context.Context, st *store.Store, work string, n, workspaces, samples, slots int) result {
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
		BlenderVersions: []string{blenderVersion}, Slots: slots}
	if err := st.RegisterWorker(ctx, worker); err != nil {
		benchkit.Fatalf("%v", err)
	}
	if got, err := eng.FillWorker(ctx, worker.ID); err != nil || got != slots {
		benchkit.Fatalf("the worker's first chunks: %d, %v; want %d", got, err, slots)
	}
	var took []time.Duration
	for range min(samples, n/slots-1) {
		running, err := st.QueuedOn(ctx, worker.ID)
		if err != nil || len(running) != slots {
			benchkit.Fatalf("chunks on the worker: %d, %v; want %d", len(running), err, slots)
		}
		served := map[string]time.Time{}
		for _, t := range running {
			if err := st.ClaimTask(ctx, t.ID, t.Generation, worker.ID, 1); err != nil {
				benchkit.Fatalf("claim: %v", err)
			}
			if err := st.InTx(ctx, func(tx *store.Tx) error {
				return tx.FinishTask(ctx, t.ID, t.Generation, store.TaskEnd{Status: store.TaskDone})
			}); err != nil {
				benchkit.Fatalf("end a chunk: %v", err)
			}
			served[t.WorkspaceID] = time.Now()
		}
		start := time.Now()
		err = st.InDispatchTx(ctx, func(tx *store.Tx) error {
			for workspace, at := range served {
				if err := tx.MarkServed(ctx, workspace, at); err != nil {
					return err
				}
			}
			got, err := eng.DispatchTo(ctx, tx, worker.ID)
			if err == nil && got != slots {
				err = fmt.Errorf("the %d freed slots took %d chunks", slots, got)
			}
			return err
		})
		took = append(took, time.Since(start))
		if err != nil {
			benchkit.Fatalf("fill the freed slots: %v", err)
		}
	}
	slices.Sort(took)
	r.median, r.p95, r.max = took[len(took)/2], took[len(took)*95/100], took[len(took)-1]
	return r
}
