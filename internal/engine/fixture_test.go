package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// The tests of this package drive the engine's scheduling functions
// directly, on a real SQLite database and a real local object store,
// without Blender: the engine is built but never started, so its River
// client only inserts and cancels jobs, and the tests read River's table to
// see what was queued.

// fixtureWorkerTimeout is the fixtures' WorkerTimeout: heartbeats older than
// this are stale.
const fixtureWorkerTimeout = time.Minute

// fixtureRenderAttempts is the fixtures' RenderAttempts, which failure
// messages name.
const fixtureRenderAttempts = 3

// farmFixture is one farm: its database, object store and engine, and a
// workspace to act in.
type farmFixture struct {
	t       *testing.T
	ctx     context.Context
	store   *store.Store
	objects *objstore.Local
	engine  *Engine
	p       farm.Principal
}

func newFarmFixture(t *testing.T) *farmFixture {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "renderfarm.db")
	template, err := migratedDatabase()
	if err != nil {
		t.Fatalf("migrated database: %v", err)
	}
	if err := os.WriteFile(dbPath, template, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenSQLite(ctx, dbPath)
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	objects, err := objstore.NewLocal(objstore.LocalConfig{
		Dir:     filepath.Join(dir, "objects"),
		BaseURL: "http://127.0.0.1:1",
		Secret:  []byte(strings.Repeat("s", 32)),
	})
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	t.Cleanup(func() { objects.Close() })
	e, err := New(ctx, Config{
		Store:               st,
		Objects:             objects,
		Logger:              slog.New(slog.DiscardHandler),
		RenderWorkers:       0,
		WorkerName:          "node-test",
		WorkDir:             filepath.Join(dir, "work"),
		WorkerTimeout:       fixtureWorkerTimeout,
		RenderAttempts:      fixtureRenderAttempts,
		WebhookAllowPrivate: true,
	})
	if err != nil {
		t.Fatalf("engine.New: %v", err)
	}
	ws, err := st.EnsureWorkspace(ctx, "studio")
	if err != nil {
		t.Fatalf("EnsureWorkspace: %v", err)
	}
	return &farmFixture{t: t, ctx: ctx, store: st, objects: objects, engine: e, p: farm.Principal{WorkspaceID: ws.ID, KeyID: "key-test"}}
}

// migratedDatabase is the bytes of a SQLite database with the farm's and
// River's tables, made once: every fixture starts from a copy, which is much
// faster than migrating each time (under -race above all).
var migratedDatabase = sync.OnceValues(func() ([]byte, error) {
	dir, err := os.MkdirTemp("", "engine-test-db-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	path := filepath.Join(dir, "template.db")
	st, err := store.OpenSQLite(ctx, path)
	if err != nil {
		return nil, err
	}
	migrator, err := rivermigrate.New(riversqlite.New(st.DB()), nil)
	if err == nil {
		_, err = migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	}
	if err == nil {
		// Fold the write-ahead log into the file, so the file is whole.
		_, err = st.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`)
	}
	if closeErr := st.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	return os.ReadFile(path)
})

// testAnalysis is what validation would report for a file with one scene,
// "Scene", of frames 1 to lastFrame.
func testAnalysis(lastFrame int) *farm.Analysis {
	return &farm.Analysis{Inspection: farm.Inspection{
		FileVersion: "4.2", BlenderVersion: "4.2.3", ActiveScene: "Scene",
		Scenes: []farm.Scene{{
			Name: "Scene", FrameStart: 1, FrameEnd: lastFrame, FrameStep: 1, FPS: 24,
			ResolutionX: 640, ResolutionY: 360, ResolutionPercentage: 100,
			Engine: "CYCLES", Samples: 16, Camera: "Camera", OutputFormat: "PNG",
			ColorMode: "RGBA", ColorDepth: "8", ViewLayers: []string{"ViewLayer"}, ViewTransform: "Filmic",
		}},
	}}
}

// createdJob uploads a .blend and makes a job of it, through the API.
func (f *farmFixture) createdJob() *farm.Job {
	f.t.Helper()
	ticket, err := f.engine.CreateUpload(f.ctx, f.p, "scene.blend", farm.FileTypeBlend)
	if err != nil {
		f.t.Fatalf("CreateUpload: %v", err)
	}
	key := "uploads/" + ticket.Slug + "/scene.blend"
	if _, err := f.objects.Put(f.ctx, key, strings.NewReader("BLENDER-v402 not really a scene"), 1<<20); err != nil {
		f.t.Fatalf("Put %s: %v", key, err)
	}
	job, err := f.engine.CreateJob(f.ctx, f.p, ticket.Slug)
	if err != nil {
		f.t.Fatalf("CreateJob: %v", err)
	}
	return job
}

// validatedJob is a job whose validation found one scene of frames 1 to
// lastFrame.
func (f *farmFixture) validatedJob(lastFrame int) *farm.Job {
	f.t.Helper()
	job := f.job(f.createdJob().ID)
	id := "analysis-" + job.ID
	job.Status, job.Analysis, job.AnalysisID = farm.StatusValidated, testAnalysis(lastFrame), &id
	if err := f.store.UpdateJob(f.ctx, job); err != nil {
		f.t.Fatalf("UpdateJob: %v", err)
	}
	return job
}

// renderConfig is a render request for frameRanges in chunks of chunkSize
// (0 leaves chunkSize out).
func renderConfig(chunkSize int, frameRanges ...string) *farm.RenderConfig {
	preset := "default"
	cfg := &farm.RenderConfig{ColorManagementPreset: &preset, FrameRanges: frameRanges}
	if chunkSize > 0 {
		cfg.ChunkSize = &chunkSize
	}
	return cfg
}

// renderingJob is a job of frames 1 to frames whose render request was
// accepted in chunks of chunkSize: booting, its chunks queued.
func (f *farmFixture) renderingJob(frames, chunkSize int) *farm.Job {
	f.t.Helper()
	job := f.validatedJob(frames)
	job, replay, err := f.engine.Render(f.ctx, f.p, job.ID, renderConfig(chunkSize))
	if err != nil || replay {
		f.t.Fatalf("Render = replay %v, %v; want a first request accepted", replay, err)
	}
	return job
}

// job reads a job's row.
func (f *farmFixture) job(id string) *farm.Job {
	f.t.Helper()
	job, err := f.store.GetJob(f.ctx, "", id)
	if err != nil {
		f.t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

// insertJob stores a job row in the given status, bypassing the rules, as a
// starting point.
func (f *farmFixture) insertJob(status farm.Status) *farm.Job {
	f.t.Helper()
	job := f.createdJob()
	job.Status = status
	if err := f.store.UpdateJob(f.ctx, job); err != nil {
		f.t.Fatalf("UpdateJob: %v", err)
	}
	return f.job(job.ID)
}

// move moves a job through moveJob in a transaction of its own.
func (f *farmFixture) move(jobID string, to farm.Status) {
	f.t.Helper()
	err := f.store.InTx(f.ctx, func(tx *store.Tx) error {
		job, err := tx.GetJob(f.ctx, "", jobID)
		if err != nil {
			return err
		}
		return f.engine.moveJob(f.ctx, tx, job, to)
	})
	if err != nil {
		f.t.Fatalf("move job to %s: %v", to, err)
	}
}

// tasks lists a job's tasks of one kind, in chunk order.
func (f *farmFixture) tasks(jobID string, kind store.TaskKind) []store.Task {
	f.t.Helper()
	tasks, err := f.store.TasksOfJob(f.ctx, jobID, kind)
	if err != nil {
		f.t.Fatalf("TasksOfJob: %v", err)
	}
	return tasks
}

func (f *farmFixture) task(id string) store.Task {
	f.t.Helper()
	task, err := f.store.GetTask(f.ctx, id)
	if err != nil {
		f.t.Fatalf("GetTask(%s): %v", id, err)
	}
	return task
}

// ref is what the River job of a task's current generation carries.
func (f *farmFixture) ref(task store.Task) taskRef {
	return taskRef{JobID: task.JobID, TaskID: task.ID, Generation: task.Generation}
}

// frames maps a job's frame numbers to their rows.
func (f *farmFixture) frames(jobID string) map[int]store.Frame {
	f.t.Helper()
	rows, err := f.store.FramesOfJob(f.ctx, jobID)
	if err != nil {
		f.t.Fatalf("FramesOfJob: %v", err)
	}
	out := map[int]store.Frame{}
	for _, r := range rows {
		out[r.Frame] = r
	}
	return out
}

// frameStatuses maps a job's frame numbers to their statuses.
func (f *farmFixture) frameStatuses(jobID string) map[int]farm.FrameStatus {
	f.t.Helper()
	out := map[int]farm.FrameStatus{}
	for n, fr := range f.frames(jobID) {
		out[n] = fr.Status
	}
	return out
}

// setFrame rewrites one frame's row, as a worker's earlier writes would
// have left it.
func (f *farmFixture) setFrame(jobID string, frame int, change func(*store.Frame)) {
	f.t.Helper()
	fr, ok := f.frames(jobID)[frame]
	if !ok {
		f.t.Fatalf("job %s has no frame %d", jobID, frame)
	}
	change(&fr)
	if err := f.store.UpdateFrame(f.ctx, fr); err != nil {
		f.t.Fatalf("UpdateFrame: %v", err)
	}
}

// registerWorker records a worker run whose last heartbeat was at heartbeat.
func (f *farmFixture) registerWorker(id, name string, heartbeat time.Time) {
	f.t.Helper()
	err := f.store.RegisterWorker(f.ctx, store.Worker{ID: id, Name: name, StartedAt: heartbeat, HeartbeatAt: heartbeat, State: store.WorkerBusy})
	if err != nil {
		f.t.Fatalf("RegisterWorker(%s): %v", id, err)
	}
}

// claimAs makes a worker run hold a task, as its River job would.
func (f *farmFixture) claimAs(workerID string, task store.Task) {
	f.t.Helper()
	if err := f.store.ClaimTask(f.ctx, task.ID, task.Generation, workerID); err != nil {
		f.t.Fatalf("ClaimTask(%s) as %s: %v", task.ID, workerID, err)
	}
}

// claim makes this engine hold a task for ref's generation, as its render
// worker does first.
func (f *farmFixture) claim(ref taskRef) {
	f.t.Helper()
	ok, err := f.engine.claim(f.ctx, ref)
	if !ok || err != nil {
		f.t.Fatalf("claim(%+v) = %v, %v; want the task", ref, ok, err)
	}
}

// startChunk runs the start of a chunk: the job moves to rendering.
func (f *farmFixture) startChunk(ref taskRef) []int {
	f.t.Helper()
	job, todo, err := f.engine.startChunk(f.ctx, ref)
	if err != nil || job == nil {
		f.t.Fatalf("startChunk(%+v) = %v, %v; want the job", ref, job, err)
	}
	return todo
}

// saveFrame plays a frame Blender has written and the runner has checked:
// a small image is handed to storeFrame, which stores and records it.
func (f *farmFixture) saveFrame(ref taskRef, frame int, seconds float64) error {
	f.t.Helper()
	return f.saveFrameImage(ref, frame, seconds, "\x89PNG frame")
}

// saveFrameImage is saveFrame with the image's bytes.
func (f *farmFixture) saveFrameImage(ref taskRef, frame int, seconds float64, image string) error {
	f.t.Helper()
	return f.engine.storeFrame(f.ctx, ref, frame, frameName(frame), strings.NewReader(image), seconds, nil)
}

// frameName is the file name Blender gives a frame.
func frameName(frame int) string { return fmt.Sprintf("frame_%04d.png", frame) }

// renderChunk plays a chunk that rendered every one of its frames: claimed,
// started, each frame saved.
func (f *farmFixture) renderChunk(task store.Task) taskRef {
	f.t.Helper()
	ref := f.ref(task)
	f.claim(ref)
	for _, n := range f.startChunk(ref) {
		if err := f.saveFrame(ref, n, 2); err != nil {
			f.t.Fatalf("frame %d saved: %v", n, err)
		}
	}
	return ref
}

// riverJob is one row of River's job table.
type riverJob struct {
	ID          int64
	Kind        string
	State       string
	Queue       string
	MaxAttempts int
	Args        []byte // JSON (River keeps it as SQLite's binary JSON)
}

// riverJobs lists River's jobs of one kind, oldest first.
func (f *farmFixture) riverJobs(kind string) []riverJob {
	f.t.Helper()
	rows, err := f.store.DB().QueryContext(f.ctx, `SELECT id, kind, state, queue, max_attempts, json(args) FROM river_job WHERE kind = ? ORDER BY id`, kind)
	if err != nil {
		f.t.Fatalf("list River jobs: %v", err)
	}
	defer rows.Close()
	var out []riverJob
	for rows.Next() {
		var j riverJob
		if err := rows.Scan(&j.ID, &j.Kind, &j.State, &j.Queue, &j.MaxAttempts, &j.Args); err != nil {
			f.t.Fatalf("scan River job: %v", err)
		}
		out = append(out, j)
	}
	if err := rows.Err(); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// riverJob finds River's job by id.
func (f *farmFixture) riverJob(id int64) riverJob {
	f.t.Helper()
	var j riverJob
	err := f.store.DB().QueryRowContext(f.ctx, `SELECT id, kind, state, queue, max_attempts, json(args) FROM river_job WHERE id = ?`, id).
		Scan(&j.ID, &j.Kind, &j.State, &j.Queue, &j.MaxAttempts, &j.Args)
	if err != nil {
		f.t.Fatalf("River job %d: %v", id, err)
	}
	return j
}

// renderArgsOf decodes the arguments of a render_chunk job.
func (f *farmFixture) renderArgsOf(j riverJob) renderArgs {
	f.t.Helper()
	var a renderArgs
	if err := json.Unmarshal(j.Args, &a); err != nil {
		f.t.Fatalf("decode args %s: %v", j.Args, err)
	}
	return a
}

// count counts the rows of a table (farm's or River's) that match where.
func (f *farmFixture) count(table, where string, args ...any) int {
	f.t.Helper()
	query := `SELECT COUNT(*) FROM ` + table
	if where != "" {
		query += ` WHERE ` + where
	}
	var n int
	if err := f.store.DB().QueryRowContext(f.ctx, query, args...).Scan(&n); err != nil {
		f.t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// farmErrorCode is the code of a *farm.Error, "" for any other error.
func farmErrorCode(err error) string {
	var fe *farm.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return ""
}
