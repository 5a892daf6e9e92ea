package enginetest

import (
	"context"
	"time"

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
// accepted in chunks of chunkSize: booting, its chunks queued.
func (f *Farm) RenderingJob(api API, frames, chunkSize int) *farm.Job {
	f.T.Helper()
	job := f.ValidatedJob(api, frames)
	job, replay, err := api.Render(f.Ctx, f.P, job.ID, RenderConfig(chunkSize))
	if err != nil || replay {
		f.T.Fatalf("Render = replay %v, %v; want a first request accepted", replay, err)
	}
	return job
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
// leaves them.
func (f *Farm) FinishedJobWithFiles(api API, status farm.Status) *farm.Job {
	f.T.Helper()
	job := f.InsertJob(api, status)
	now := time.Now().UTC()
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
		FramesZipKey: farm.FramesZipKey(job.ID), FramesZipSize: 10,
		VideoKey: farm.PreviewVideoKey(job.ID), VideoSize: 10, VideoFPS: 24,
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
