package enginetest

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// API is what the fixtures need of the API's use cases (package service)
// to make jobs as a client would.
type API interface {
	CreateUpload(ctx context.Context, p farm.Principal, fileName, fileType string) (*farm.UploadTicket, error)
	CreateJob(ctx context.Context, p farm.Principal, slug string) (*farm.Job, error)
	Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (*farm.Job, bool, error)
	CreateWebhook(ctx context.Context, p farm.Principal, url string, events []string) (*farm.Webhook, error)
}

// CreatedJob uploads a .blend and makes a job of it, through api.
func (f *Farm) CreatedJob(api API) *farm.Job {
	f.T.Helper()
	job, _ := f.UploadedJob(api, "BLENDER-v402 not really a scene")
	return job
}

// UploadedJob makes a job from an upload of content, as a client would:
// POST /uploads, a PUT to the upload URL, POST /jobs. It answers the job
// and the upload's key.
func (f *Farm) UploadedJob(api API, content string) (job *farm.Job, uploadKey string) {
	f.T.Helper()
	ticket, err := api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
	if err != nil {
		f.T.Fatalf("CreateUpload: %v", err)
	}
	uploadKey = farm.UploadKey(ticket.Slug, "scene.blend")
	f.PutContent(uploadKey, content)
	job, err = api.CreateJob(f.Ctx, f.P, ticket.Slug)
	if err != nil {
		f.T.Fatalf("CreateJob: %v", err)
	}
	return job, uploadKey
}

// InsertJob is a job made through api and then stored in the given status,
// bypassing the rules, as a starting point.
func (f *Farm) InsertJob(api API, status farm.Status) *farm.Job {
	f.T.Helper()
	return f.SetStatus(f.CreatedJob(api).ID, status)
}

// ValidatedJob is a job whose validation found one scene of frames 1 to
// lastFrame.
func (f *Farm) ValidatedJob(api API, lastFrame int) *farm.Job {
	f.T.Helper()
	job := f.Job(f.CreatedJob(api).ID)
	id := "analysis-" + job.ID
	job.Status, job.Analysis, job.AnalysisID = farm.StatusValidated, Analysis(lastFrame), &id
	if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
		f.T.Fatalf("UpdateJob: %v", err)
	}
	return job
}

// RenderingJob is a job of frames 1 to frames whose render request was
// accepted in chunks of chunkSize: booting, its chunks queued, each given
// to a worker run of the job's own (DispatchAll), with its River job.
func (f *Farm) RenderingJob(api API, frames, chunkSize int) *farm.Job {
	f.T.Helper()
	job := f.WaitingJob(api, frames, RenderConfig(chunkSize))
	f.DispatchAll(job)
	return job
}

// WaitingJob is a job of frames 1 to frames whose render request cfg was
// accepted: booting, its chunks waiting for workers.
func (f *Farm) WaitingJob(api API, frames int, cfg *farm.RenderConfig) *farm.Job {
	f.T.Helper()
	job := f.ValidatedJob(api, frames)
	job, replay, err := api.Render(f.Ctx, f.P, job.ID, cfg)
	if err != nil || replay {
		f.T.Fatalf("Render = replay %v, %v; want a first request accepted", replay, err)
	}
	return job
}

// DispatchAll gives every waiting chunk of job to a worker run made for
// it ("dispatch-…", a name of its own), live, offering what the job's
// chunks need, with a slot for each, as the dispatcher gives chunks to
// render nodes: the chunks are queued, each with its River job on that
// run's queue, as they are before a node takes them. The run then takes
// no more (it is stopping), so that another job's chunks go to a run of
// their own. A node that claims one holds it as its own. It answers the
// run's id.
func (f *Farm) DispatchAll(job *farm.Job) string {
	f.T.Helper()
	need := farm.RequirementsOf(job.FinalConfig)
	id := "dispatch-" + uuid.NewString()
	now := time.Now()
	w := store.Worker{ID: id, Name: id, StartedAt: now, HeartbeatAt: now, State: store.WorkerBusy, Slots: 1_000_000,
		Tags: need.Tags, MemoryBytes: int64(need.MinimumRAMGiB) << 30}
	if need.BlenderVersion != "" {
		w.BlenderVersions = []string{need.BlenderVersion}
	}
	if need.GPUType != "" {
		w.GPUs = []farm.GPU{{Type: need.GPUType, Count: need.GPUCount}}
	}
	if err := f.Store.RegisterWorker(f.Ctx, w); err != nil {
		f.T.Fatalf("RegisterWorker(%s): %v", id, err)
	}
	err := f.Store.InDispatchTx(f.Ctx, func(tx *store.Tx) error {
		_, err := f.Engine.DispatchTo(f.Ctx, tx, id)
		return err
	})
	if err != nil {
		f.T.Fatalf("dispatch the chunks of job %s: %v", job.ID, err)
	}
	if err := f.Store.Heartbeat(f.Ctx, id, store.WorkerStopping, ""); err != nil {
		f.T.Fatalf("close worker run %s: %v", id, err)
	}
	for _, t := range f.Tasks(job.ID, store.TaskRender) {
		if t.Status == store.TaskWaiting {
			f.T.Fatalf("chunk %d of job %s is %s on %q after DispatchAll; want queued on %s", t.Chunk, job.ID, t.Status, t.WorkerID, id)
		}
	}
	return id
}

// RetryNow ends now the wait of job's chunks that failed an attempt and
// wait for their retry (store.RetryLater), as if its time had passed, and
// gives them to a worker run of their own (DispatchAll): what the
// dispatcher does once the wait is over.
func (f *Farm) RetryNow(job *farm.Job) {
	f.T.Helper()
	if _, err := f.Store.DB().ExecContext(f.Ctx, f.rebind(`UPDATE tasks SET retry_at = NULL WHERE job_id = ? AND status = 'waiting'`), job.ID); err != nil {
		f.T.Fatalf("end the retry wait of job %s's chunks: %v", job.ID, err)
	}
	f.DispatchAll(job)
}

// Analysis is what validation would report for a file with one scene,
// "Scene", of frames 1 to lastFrame.
func Analysis(lastFrame int) *farm.Analysis {
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

// RenderConfig is a render request for frameRanges in chunks of chunkSize
// (0 leaves chunkSize out).
func RenderConfig(chunkSize int, frameRanges ...string) *farm.RenderConfig {
	preset := "default"
	cfg := &farm.RenderConfig{ColorManagementPreset: &preset, FrameRanges: frameRanges}
	if chunkSize > 0 {
		cfg.ChunkSize = &chunkSize
	}
	return cfg
}

// FinishedJobWithFiles is a job made through api that ended in status with
// two frames, a zip, a preview and a Blender log stored, as finalizing
// leaves them: the zip and preview in the folder of its finalize task,
// which is done.
func (f *Farm) FinishedJobWithFiles(api API, status farm.Status) *farm.Job {
	f.T.Helper()
	job := f.InsertJob(api, status)
	now := time.Now().UTC()
	finalize := store.Task{ID: "finalize-" + job.ID, JobID: job.ID, Kind: store.TaskFinalize, Status: store.TaskDone,
		Generation: 1, WorkspaceID: job.WorkspaceID, CreatedAt: now, UpdatedAt: now}
	if err := f.Store.InsertTask(f.Ctx, finalize); err != nil {
		f.T.Fatal(err)
	}
	for n := 1; n <= 2; n++ {
		key := farm.JobFramesPrefix(job.ID) + FrameName(n)
		fr := store.Frame{JobID: job.ID, Frame: n, TaskID: "task-" + job.ID, Status: farm.FrameCompleted,
			Worker: "node-a", Attempts: 1, RenderSeconds: float64(n + 1), ObjectKey: key, UpdatedAt: now}
		if err := f.Store.InsertFrame(f.Ctx, fr); err != nil {
			f.T.Fatal(err)
		}
		f.Put(key)
	}
	job.Files = farm.JobFiles{
		FramesZipKey: farm.FramesZipKey(job.ID, finalize.ID, 1), FramesZipSize: 10,
		VideoKey: farm.PreviewVideoKey(job.ID, finalize.ID, 1), VideoSize: 10, VideoFPS: 24,
		PreviewKey: farm.JobFramesPrefix(job.ID) + FrameName(1),
	}
	f.Put(job.Files.FramesZipKey)
	f.Put(job.Files.VideoKey)
	f.Put(farm.JobLogKey(job.ID, now, "chunk1"))
	if err := f.Store.UpdateJob(f.Ctx, job); err != nil {
		f.T.Fatalf("UpdateJob: %v", err)
	}
	return f.Job(job.ID)
}
