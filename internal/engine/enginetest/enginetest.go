// Package enginetest gives the tests of the engine and of the parts built
// on it (service, node, housekeeping) a farm to act on: a real database,
// SQLite and PostgreSQL in turn, a real local object store, and an engine
// that is made but never started, so that its River client only inserts
// and cancels jobs and the tests read River's table to see what was
// queued. Tests drive the parts' functions directly, without Blender.
package enginetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// WorkerTimeout is the fixtures' worker timeout: heartbeats older than
// this are stale.
const WorkerTimeout = time.Minute

// RenderAttempts is the fixtures' attempts per chunk, which failure
// messages name.
const RenderAttempts = 3

// Database is one of the databases the farm runs on.
type Database struct {
	Dialect store.Dialect
}

// SQLite is the database of the tests that need one but are not about it.
var SQLite = Database{Dialect: store.DialectSQLite}

// EachDatabase runs test once on SQLite and once on PostgreSQL (skipped
// where no server is configured, except in CI), as parallel subtests: the
// farm's transactions and locks behave differently on the two, and
// concurrent requests can only race for real on PostgreSQL.
func EachDatabase(t *testing.T, test func(t *testing.T, db Database)) {
	t.Helper()
	for _, dialect := range []store.Dialect{store.DialectSQLite, store.DialectPostgres} {
		t.Run(string(dialect), func(t *testing.T) {
			t.Parallel()
			test(t, Database{Dialect: dialect})
		})
	}
}

// Farm is one farm: its database, object store and engine, and a
// workspace to act in.
type Farm struct {
	T       testing.TB
	Ctx     context.Context
	Dir     string // the test's own directory, holding the objects
	Store   *store.Store
	Objects *objstore.Local
	Engine  *engine.Engine
	// P acts in the workspace "studio".
	P farm.Principal
}

// New makes a farm on db whose engine is configured by DefaultConfig,
// with RenderAttempts, for the test's length.
func New(t testing.TB, db Database) *Farm {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	st := openStore(t, db, dir)
	objects, err := objstore.NewLocal(objstore.LocalConfig{
		Dir:     filepath.Join(dir, "objects"),
		BaseURL: "http://127.0.0.1:1",
		Secret:  []byte(strings.Repeat("s", 32)),
	})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { objects.Close() })
	cfg := engine.DefaultConfig()
	cfg.Store, cfg.Objects, cfg.RenderAttempts = st, objects, RenderAttempts
	cfg.Logger = discardLogger
	if db.Dialect == store.DialectPostgres {
		cfg.PostgresDSN = postgresDSNs.get(st)
	}
	e, err := engine.New(ctx, cfg)
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	t.Cleanup(e.Close)
	ws, err := st.EnsureWorkspace(ctx, "studio")
	if err != nil {
		t.Fatalf("EnsureWorkspace: %v", err)
	}
	return &Farm{T: t, Ctx: ctx, Dir: dir, Store: st, Objects: objects, Engine: e, P: farm.Principal{WorkspaceID: ws.ID, KeyID: "key-test"}}
}

// openStore opens a fresh database of the farm's and River's tables: a
// copy of one migrated once per test binary, which is much faster than
// migrating each time (under -race above all).
func openStore(t testing.TB, db Database, dir string) *store.Store {
	t.Helper()
	var st *store.Store
	switch db.Dialect {
	case store.DialectSQLite:
		template, err := sqliteTemplate()
		if err != nil {
			t.Fatalf("migrated SQLite database: %v", err)
		}
		path := filepath.Join(dir, "renderfarm.db")
		if err := os.WriteFile(path, template, 0o600); err != nil {
			t.Fatal(err)
		}
		if st, err = store.OpenSQLite(t.Context(), path); err != nil {
			t.Fatalf("OpenSQLite: %v", err)
		}
	case store.DialectPostgres:
		template, err := postgresTemplate()
		if errors.Is(err, testbackends.ErrNotConfigured) && os.Getenv("CI") == "" {
			t.Skip("no PostgreSQL to test on: " + err.Error())
		}
		if err != nil {
			t.Fatalf("migrated PostgreSQL database: %v", err)
		}
		dsn := testbackends.PostgresDatabase(t, template)
		if st, err = store.OpenPostgres(t.Context(), dsn); err != nil {
			t.Fatalf("OpenPostgres: %v", err)
		}
		postgresDSNs.set(st, dsn)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// postgresDSNs remembers the URL of each PostgreSQL store, which River's
// listener connects to.
var postgresDSNs = dsnTable{m: map[*store.Store]string{}}

type dsnTable struct {
	mu sync.Mutex
	m  map[*store.Store]string
}

func (d *dsnTable) set(st *store.Store, dsn string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[st] = dsn
}

func (d *dsnTable) get(st *store.Store) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.m[st]
}

// Job reads a job's row.
func (f *Farm) Job(id string) *farm.Job {
	f.T.Helper()
	job, err := f.Store.GetJob(f.Ctx, "", id)
	if err != nil {
		f.T.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

// Tasks lists a job's tasks of one kind, in chunk order.
func (f *Farm) Tasks(jobID string, kind store.TaskKind) []store.Task {
	f.T.Helper()
	tasks, err := f.Store.TasksOfJob(f.Ctx, jobID, kind)
	if err != nil {
		f.T.Fatalf("TasksOfJob: %v", err)
	}
	return tasks
}

// Task reads a task's row.
func (f *Farm) Task(id string) store.Task {
	f.T.Helper()
	task, err := f.Store.GetTask(f.Ctx, id)
	if err != nil {
		f.T.Fatalf("GetTask(%s): %v", id, err)
	}
	return task
}

// Ref is what the River job of a task's current generation carries.
func (f *Farm) Ref(task store.Task) engine.TaskRef {
	return engine.TaskRef{JobID: task.JobID, TaskID: task.ID, Generation: task.Generation}
}

// Frames maps a job's frame numbers to their rows.
func (f *Farm) Frames(jobID string) map[int]store.Frame {
	f.T.Helper()
	rows, err := f.Store.FramesOfJob(f.Ctx, jobID)
	if err != nil {
		f.T.Fatalf("FramesOfJob: %v", err)
	}
	out := map[int]store.Frame{}
	for _, r := range rows {
		out[r.Frame] = r
	}
	return out
}

// FrameStatuses maps a job's frame numbers to their statuses.
func (f *Farm) FrameStatuses(jobID string) map[int]farm.FrameStatus {
	f.T.Helper()
	out := map[int]farm.FrameStatus{}
	for n, fr := range f.Frames(jobID) {
		out[n] = fr.Status
	}
	return out
}

// SetFrame rewrites one frame's row, as a worker's earlier writes would
// have left it.
func (f *Farm) SetFrame(jobID string, frame int, change func(*store.Frame)) {
	f.T.Helper()
	fr, ok := f.Frames(jobID)[frame]
	if !ok {
		f.T.Fatalf("job %s has no frame %d", jobID, frame)
	}
	change(&fr)
	if err := f.Store.UpdateFrame(f.Ctx, fr); err != nil {
		f.T.Fatalf("UpdateFrame: %v", err)
	}
}

// RegisterWorker records a worker run whose last heartbeat was at heartbeat.
func (f *Farm) RegisterWorker(id, name string, heartbeat time.Time) {
	f.T.Helper()
	err := f.Store.RegisterWorker(f.Ctx, store.Worker{ID: id, Name: name, StartedAt: heartbeat, HeartbeatAt: heartbeat, State: store.WorkerBusy})
	if err != nil {
		f.T.Fatalf("RegisterWorker(%s): %v", id, err)
	}
}

// ClaimAs makes a worker run hold a task, as its River job would.
func (f *Farm) ClaimAs(workerID string, task store.Task) {
	f.T.Helper()
	if err := f.Store.ClaimTask(f.Ctx, task.ID, task.Generation, workerID, 1); err != nil {
		f.T.Fatalf("ClaimTask(%s) as %s: %v", task.ID, workerID, err)
	}
}

// Move moves a job through MoveJob in a transaction of its own.
func (f *Farm) Move(jobID string, to farm.Status) {
	f.T.Helper()
	err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
		job, err := tx.GetJob(f.Ctx, "", jobID)
		if err != nil {
			return err
		}
		return f.Engine.MoveJob(f.Ctx, tx, job, to)
	})
	if err != nil {
		f.T.Fatalf("move job to %s: %v", to, err)
	}
}

// SetStatus stores a job in the given status, bypassing the rules, as a
// starting point.
func (f *Farm) SetStatus(jobID string, status farm.Status) *farm.Job {
	f.T.Helper()
	job := f.Job(jobID)
	job.Status = status
	if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
		f.T.Fatalf("UpdateJob: %v", err)
	}
	return f.Job(jobID)
}

// CheckTaskInvariant fails the test if the farm breaks its invariant:
// every unfinished task has exactly one live River job, the one of its
// current generation (docs/architecture.md). Held or not, touched by its
// holder or not, a queued or running task whose River job ended, or is
// gone, breaks it.
func (f *Farm) CheckTaskInvariant() {
	f.T.Helper()
	stranded, err := f.Store.StrandedTasks(f.Ctx, time.Now().Add(time.Hour))
	if err != nil {
		f.T.Fatalf("StrandedTasks: %v", err)
	}
	for _, st := range stranded {
		f.T.Errorf("task %s (%s, %s, generation %d, held by %q) has no live River job: River job %d is %q",
			st.ID, st.Kind, st.Status, st.Generation, st.WorkerID, st.RiverJobID, st.RiverState)
	}
}

// EndRiverJob sets a River job in a final state (completed, discarded or
// cancelled) as River would when it ends it, with attemptErr, when not
// nil, as its last attempt's error: what a test needs to set up a task
// whose River job ended without it.
func (f *Farm) EndRiverJob(id int64, state string, attemptErr *rivertype.AttemptError) {
	f.T.Helper()
	now := time.Now().UTC()
	f.Exec(`UPDATE river_job SET state = ?, finalized_at = ? WHERE id = ?`, state, now, id)
	if attemptErr == nil {
		return
	}
	b, err := json.Marshal(attemptErr)
	if err != nil {
		f.T.Fatal(err)
	}
	if f.Store.Dialect() == store.DialectSQLite {
		f.Exec(`UPDATE river_job SET errors = jsonb(json_array(json(?))) WHERE id = ?`, string(b), id)
		return
	}
	f.Exec(`UPDATE river_job SET errors = ARRAY[CAST(? AS jsonb)] WHERE id = ?`, string(b), id)
}

// RiverJob is one row of River's job table.
type RiverJob struct {
	ID          int64
	Kind        string
	State       string
	Queue       string
	MaxAttempts int
	Priority    int
	Args        []byte // JSON
}

// riverJobColumns reads args as JSON text on both databases (SQLite keeps
// it as binary JSON).
func (f *Farm) riverJobColumns() string {
	if f.Store.Dialect() == store.DialectSQLite {
		return `id, kind, state, queue, max_attempts, priority, json(args)`
	}
	return `id, kind, state, queue, max_attempts, priority, args::text`
}

// RiverJobs lists River's jobs of one kind, oldest first.
func (f *Farm) RiverJobs(kind string) []RiverJob {
	f.T.Helper()
	rows, err := f.Store.DB().QueryContext(f.Ctx, f.rebind(`SELECT `+f.riverJobColumns()+` FROM river_job WHERE kind = ? ORDER BY id`), kind)
	if err != nil {
		f.T.Fatalf("list River jobs: %v", err)
	}
	defer rows.Close()
	var out []RiverJob
	for rows.Next() {
		var j RiverJob
		if err := rows.Scan(&j.ID, &j.Kind, &j.State, &j.Queue, &j.MaxAttempts, &j.Priority, &j.Args); err != nil {
			f.T.Fatalf("scan River job: %v", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		f.T.Fatal(err)
	}
	return out
}

// RiverJobByID finds River's job by id.
func (f *Farm) RiverJobByID(id int64) RiverJob {
	f.T.Helper()
	var j RiverJob
	err := f.Store.DB().QueryRowContext(f.Ctx, f.rebind(`SELECT `+f.riverJobColumns()+` FROM river_job WHERE id = ?`), id).
		Scan(&j.ID, &j.Kind, &j.State, &j.Queue, &j.MaxAttempts, &j.Priority, &j.Args)
	if err != nil {
		f.T.Fatalf("River job %d: %v", id, err)
	}
	return j
}

// RenderArgsOf decodes the arguments of a render_chunk job.
func (f *Farm) RenderArgsOf(j RiverJob) engine.RenderArgs {
	f.T.Helper()
	var a engine.RenderArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		f.T.Fatalf("decode args %s: %v", j.Args, err)
	}
	return a
}

// Count counts the rows of a table (the farm's or River's) that match
// where, written with ? placeholders.
func (f *Farm) Count(table, where string, args ...any) int {
	f.T.Helper()
	query := `SELECT COUNT(*) FROM ` + table
	if where != "" {
		query += ` WHERE ` + where
	}
	var n int
	if err := f.Store.DB().QueryRowContext(f.Ctx, f.rebind(query), args...).Scan(&n); err != nil {
		f.T.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Exec runs a statement written with ? placeholders, to set a row up as
// no operation of the farm would.
func (f *Farm) Exec(query string, args ...any) {
	f.T.Helper()
	if _, err := f.Store.DB().ExecContext(f.Ctx, f.rebind(query), args...); err != nil {
		f.T.Fatalf("%s: %v", query, err)
	}
}

// rebind numbers a query's placeholders for PostgreSQL.
func (f *Farm) rebind(query string) string {
	if f.Store.Dialect() == store.DialectSQLite {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// ErrorCode is the code of a *farm.Error, "" for any other error.
func ErrorCode(err error) string {
	var fe *farm.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}

// FrameName is the file name Blender gives a frame.
func FrameName(frame int) string { return fmt.Sprintf("frame_%04d.png", frame) }

// Replica is another process's engine on the farm's database: a store of
// its own, opened on the same database, and an engine made on it (never
// started), as a second `serve` replica or a render node has. Races
// between processes are run with it.
func (f *Farm) Replica() *engine.Engine {
	f.T.Helper()
	var st *store.Store
	var err error
	cfg := engine.DefaultConfig()
	switch f.Store.Dialect() {
	case store.DialectPostgres:
		dsn := postgresDSNs.get(f.Store)
		st, err = store.OpenPostgres(f.Ctx, dsn)
		cfg.PostgresDSN = dsn
	default:
		st, err = store.OpenSQLite(f.Ctx, filepath.Join(f.Dir, "renderfarm.db"))
	}
	if err != nil {
		f.T.Fatalf("open a replica's store: %v", err)
	}
	f.T.Cleanup(func() { st.Close() })
	cfg.Store, cfg.Objects, cfg.RenderAttempts, cfg.Logger = st, f.Objects, RenderAttempts, discardLogger
	e, err := engine.New(f.Ctx, cfg)
	if err != nil {
		f.T.Fatalf("a replica's engine: %v", err)
	}
	f.T.Cleanup(e.Close)
	return e
}
