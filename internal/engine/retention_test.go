package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// put stores a small object under key.
func (f *farmFixture) put(key string) {
	f.t.Helper()
	if _, err := f.objects.Put(f.ctx, key, strings.NewReader("bytes of "+key), 1<<20); err != nil {
		f.t.Fatalf("Put %s: %v", key, err)
	}
}

// exists reports whether an object is stored.
func (f *farmFixture) exists(key string) bool {
	f.t.Helper()
	_, err := f.objects.Stat(f.ctx, key)
	if err != nil && !errors.Is(err, objstore.ErrNotFound) {
		f.t.Fatalf("Stat %s: %v", key, err)
	}
	return err == nil
}

// oldUpload records an upload created age ago, with its file stored, as
// POST /uploads and the client's PUT would have left it then.
func (f *farmFixture) oldUpload(slug string, age time.Duration) store.Upload {
	f.t.Helper()
	created := time.Now().UTC().Add(-age)
	up := store.Upload{
		Slug: slug, WorkspaceID: f.p.WorkspaceID, FileName: "scene.blend", FileType: farm.FileTypeBlend,
		ObjectKey: "uploads/" + slug + "/scene.blend", CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute),
	}
	if err := f.store.InsertUpload(f.ctx, up); err != nil {
		f.t.Fatalf("InsertUpload: %v", err)
	}
	f.put(up.ObjectKey)
	return up
}

// runRemovals runs every queued delete_objects River job, as a worker of
// the cleanup queue would, and answers how many there were.
func (f *farmFixture) runRemovals() int {
	f.t.Helper()
	jobs := f.riverJobs("delete_objects")
	w := &deleteObjectsWorker{e: f.engine}
	for _, rj := range jobs {
		var args deleteObjectsArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			f.t.Fatalf("decode %s: %v", rj.Args, err)
		}
		if rj.Queue != queueCleanup {
			f.t.Errorf("delete_objects queued in %q, want %q", rj.Queue, queueCleanup)
		}
		if err := w.Work(f.ctx, &river.Job[deleteObjectsArgs]{Args: args}); err != nil {
			f.t.Fatalf("delete_objects %s: %v", rj.Args, err)
		}
	}
	return len(jobs)
}

func TestExpiredUploadIsRemovedAndFreshOrUsedOnesAreKept(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	expired := f.oldUpload("0b5e7a52-0000-4000-8000-000000000001", 25*time.Hour)
	used := f.oldUpload("0b5e7a52-0000-4000-8000-000000000002", 25*time.Hour)
	job, err := f.engine.CreateJob(f.ctx, f.p, used.Slug)
	if err != nil {
		t.Fatalf("CreateJob: %v", err)
	}
	fresh := f.oldUpload("0b5e7a52-0000-4000-8000-000000000003", 23*time.Hour)

	n, err := f.engine.expireUploads(f.ctx, time.Now().Add(-DefaultUploadRetention))

	if err != nil || n != 1 {
		t.Fatalf("expireUploads = %d, %v; want 1 removed", n, err)
	}
	if _, err := f.store.GetUpload(f.ctx, f.p.WorkspaceID, expired.Slug); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the expired upload's row: %v, want it gone", err)
	}
	// The row went in the same transaction that queued the file's removal.
	if !f.exists(expired.ObjectKey) {
		t.Fatal("the expired file went before its removal ran")
	}
	if ran := f.runRemovals(); ran != 1 {
		t.Errorf("%d removals queued, want 1", ran)
	}
	if f.exists(expired.ObjectKey) {
		t.Error("the expired upload's file is still stored")
	}

	for _, kept := range []store.Upload{used, fresh} {
		row, err := f.store.GetUpload(f.ctx, f.p.WorkspaceID, kept.Slug)
		if err != nil {
			t.Errorf("upload %s: %v, want it kept", kept.Slug, err)
		}
		// The job made from the used one reads its own copy.
		if !f.exists(row.JobInputKey()) {
			t.Errorf("file %s was removed, want it kept", row.JobInputKey())
		}
	}
	if got := f.job(job.ID); got.Slug != used.Slug {
		t.Errorf("the job made from the old upload: %+v", got)
	}
	if _, err := f.engine.CreateJob(f.ctx, f.p, expired.Slug); farmErrorCode(err) != farm.CodeUploadNotFound {
		t.Errorf("CreateJob from the expired slug: %v, want %s", err, farm.CodeUploadNotFound)
	}

	// Nothing more to do on the next run.
	if n, err := f.engine.expireUploads(f.ctx, time.Now().Add(-DefaultUploadRetention)); err != nil || n != 0 {
		t.Errorf("second run = %d, %v; want nothing removed", n, err)
	}
}

func TestExpiringMoreUploadsThanOneBatch(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	const count = expireBatch + 3
	for i := range count {
		f.oldUpload(fmt.Sprintf("0b5e7a52-0000-4000-8000-%012d", i), 48*time.Hour)
	}
	n, err := f.engine.expireUploads(f.ctx, time.Now().Add(-DefaultUploadRetention))
	if err != nil || n != count {
		t.Fatalf("expireUploads = %d, %v; want %d", n, err, count)
	}
	if left := f.count("uploads", ""); left != 0 {
		t.Errorf("%d uploads left", left)
	}
}

// finishedJobWithFiles is a job that ended in status with two frames, a
// zip, a preview and a Blender log stored, as finalizing leaves them.
func (f *farmFixture) finishedJobWithFiles(status farm.Status) *farm.Job {
	f.t.Helper()
	job := f.insertJob(status)
	f.insertFrames(job.ID, done(2), done(3))
	for n := 1; n <= 2; n++ {
		f.put(farm.JobFramesPrefix(job.ID) + frameName(n))
	}
	job.Files = farm.JobFiles{
		FramesZipKey: farm.FramesZipKey(job.ID), FramesZipSize: 10,
		VideoKey: farm.PreviewVideoKey(job.ID), VideoSize: 10, VideoFPS: 24,
		PreviewKey: farm.JobFramesPrefix(job.ID) + frameName(1),
	}
	f.put(job.Files.FramesZipKey)
	f.put(job.Files.VideoKey)
	f.put(farm.JobPrefix(job.ID) + "logs/20250601T120000.000-chunk1.log")
	if err := f.store.UpdateJob(f.ctx, job); err != nil {
		f.t.Fatalf("UpdateJob: %v", err)
	}
	return f.job(job.ID)
}

func TestDeleteJobRemovesItsInputAndOutputsAndKeepsItsRow(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.finishedJobWithFiles(farm.StatusCompleted)
	other := f.finishedJobWithFiles(farm.StatusCompleted)
	input, err := f.store.GetUpload(f.ctx, f.p.WorkspaceID, job.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := f.engine.Downloads(f.ctx, f.p, job.ID); err != nil || len(d.FrameOutputs) != 2 || d.Transforms.Video == nil {
		t.Fatalf("downloads before the delete = %+v, %v; want two frames and a video", d, err)
	}

	got, err := f.engine.DeleteJob(f.ctx, f.p, job.ID)

	if err != nil {
		t.Fatalf("DeleteJob: %v", err)
	}
	if !got.Output.IsDeletedForClient || got.Status != farm.StatusCompleted || got.PreviewURL != nil {
		t.Errorf("answer = status %s, output %+v, previewUrl %v; want completed, deleted, no preview", got.Status, got.Output, got.PreviewURL)
	}
	if row := f.job(job.ID); !row.Output.IsDeletedForClient || row.Status != farm.StatusCompleted {
		t.Errorf("job row = %s %+v; want it kept, completed, marked deleted", row.Status, row.Output)
	}
	// The client sees nothing of the files at once, before they go.
	d, err := f.engine.Downloads(f.ctx, f.p, job.ID)
	if err != nil || len(d.Frames)+len(d.FrameOutputs) != 0 || d.Transforms.FramesZip != nil || d.Transforms.Video != nil {
		t.Errorf("downloads after the delete = %+v, %v; want the empty shape", d, err)
	}
	if l, err := f.engine.JobLog(f.ctx, f.p, job.ID); err != nil || len(l.Lines) != 0 {
		t.Errorf("log after the delete = %v, %v; want no lines", l, err)
	}

	if ran := f.runRemovals(); ran != 1 {
		t.Fatalf("%d removals queued, want 1", ran)
	}
	if left, err := f.objects.List(f.ctx, farm.JobPrefix(job.ID)); err != nil || len(left) != 0 {
		t.Errorf("objects left under %s: %v, %v", farm.JobPrefix(job.ID), left, err)
	}
	if f.exists(input.JobInputKey()) || f.exists(input.ObjectKey) {
		t.Errorf("the job's input %s (uploaded to %s) is still stored", input.JobInputKey(), input.ObjectKey)
	}
	// Another job's files are not touched: its input, two frames, the
	// zip, the preview and a log.
	if left, _ := f.objects.List(f.ctx, farm.JobPrefix(other.ID)); len(left) != 6 {
		t.Errorf("the other job has %d objects left, want its 6", len(left))
	}

	// Deleting again answers the job and queues nothing more; running the
	// removal again is harmless.
	again, err := f.engine.DeleteJob(f.ctx, f.p, job.ID)
	if err != nil || !again.Output.IsDeletedForClient {
		t.Errorf("second DeleteJob = %+v, %v; want the deleted job", again, err)
	}
	if n := len(f.riverJobs("delete_objects")); n != 1 {
		t.Errorf("%d removals queued after a second delete, want still 1", n)
	}
	if ran := f.runRemovals(); ran != 1 {
		t.Errorf("%d removals ran again", ran)
	}
}

func TestDeleteJobOnlyOnceItHasEnded(t *testing.T) {
	t.Parallel()
	for _, st := range []farm.Status{farm.StatusFailed, farm.StatusCanceled} {
		f := newFarmFixture(t)
		job := f.finishedJobWithFiles(st)
		if got, err := f.engine.DeleteJob(f.ctx, f.p, job.ID); err != nil || !got.Output.IsDeletedForClient {
			t.Errorf("delete a %s job = %+v, %v; want it deleted", st, got, err)
		}
	}

	f := newFarmFixture(t)
	for _, st := range []farm.Status{farm.StatusCreated, farm.StatusValidating, farm.StatusValidated, farm.StatusBooting, farm.StatusRendering, farm.StatusFinalizing} {
		job := f.finishedJobWithFiles(st)
		_, err := f.engine.DeleteJob(f.ctx, f.p, job.ID)
		var fe *farm.Error
		if !errors.As(err, &fe) || fe.Code != farm.CodeInvalidState || !strings.Contains(fe.Message, "cancel it first") {
			t.Errorf("delete a %s job: %v, want INVALID_STATE saying to cancel it first", st, err)
		}
		if f.job(job.ID).Output.IsDeletedForClient {
			t.Errorf("a %s job was marked deleted", st)
		}
	}
	if n := len(f.riverJobs("delete_objects")); n != 0 {
		t.Errorf("%d removals queued for jobs still in progress", n)
	}
}

func TestDeleteJobOfAnotherWorkspaceIsNotFound(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job := f.finishedJobWithFiles(farm.StatusCompleted)
	ws, err := f.store.EnsureWorkspace(f.ctx, "other studio")
	if err != nil {
		t.Fatal(err)
	}
	stranger := farm.Principal{WorkspaceID: ws.ID, KeyID: "key-other"}

	_, err = f.engine.DeleteJob(f.ctx, stranger, job.ID)

	if farm.KindOf(err) != farm.KindNotFound {
		t.Errorf("DeleteJob of another workspace's job: %v, want not found", err)
	}
	if f.job(job.ID).Output.IsDeletedForClient || len(f.riverJobs("delete_objects")) != 0 {
		t.Error("another workspace's delete changed the job")
	}
}

func TestExpireEvery(t *testing.T) {
	for _, tc := range []struct{ retention, urlTTL, want time.Duration }{
		{24 * time.Hour, 7 * 24 * time.Hour, time.Hour},
		{2 * time.Hour, 7 * 24 * time.Hour, 30 * time.Minute},
		{2 * time.Second, time.Second, time.Second},
		// The defaults: a stray upload file goes within 3.75 minutes.
		{24 * time.Hour, 15 * time.Minute, 225 * time.Second},
	} {
		if got := expireEvery(tc.retention, tc.urlTTL); got != tc.want {
			t.Errorf("expireEvery(%v, %v) = %v, want %v", tc.retention, tc.urlTTL, got, tc.want)
		}
	}
}
