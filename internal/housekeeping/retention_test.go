package housekeeping

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// oldUpload records an upload created age ago, with its file stored, as
// POST /uploads and the client's PUT would have left it then.
func (f *fixture) oldUpload(slug string, age time.Duration) store.Upload {
	f.T.Helper()
	created := time.Now().UTC().Add(-age)
	up := store.Upload{
		Slug: slug, WorkspaceID: f.P.WorkspaceID, FileName: "scene.blend", FileType: farm.FileTypeBlend,
		ObjectKey: "uploads/" + slug + "/scene.blend", CreatedAt: created, ExpiresAt: created.Add(15 * time.Minute),
	}
	if err := f.Store.InsertUpload(f.Ctx, up); err != nil {
		f.T.Fatalf("InsertUpload: %v", err)
	}
	f.Put(up.ObjectKey)
	return up
}

// runRemovals runs every queued delete_objects River job, as a worker of
// the cleanup queue would, and answers how many there were.
func (f *fixture) runRemovals() int {
	f.T.Helper()
	jobs := f.RiverJobs("delete_objects")
	w := &deleteObjectsWorker{h: f.hk}
	for _, rj := range jobs {
		var args engine.DeleteObjectsArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			f.T.Fatalf("decode %s: %v", rj.Args, err)
		}
		if rj.Queue != engine.QueueCleanup {
			f.T.Errorf("delete_objects queued in %q, want %q", rj.Queue, engine.QueueCleanup)
		}
		if err := w.Work(f.Ctx, &river.Job[engine.DeleteObjectsArgs]{Args: args}); err != nil {
			f.T.Fatalf("delete_objects %s: %v", rj.Args, err)
		}
	}
	return len(jobs)
}

func TestExpiredUploadIsRemovedAndFreshOrUsedOnesAreKept(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		expired := f.oldUpload("0b5e7a52-0000-4000-8000-000000000001", 25*time.Hour)
		used := f.oldUpload("0b5e7a52-0000-4000-8000-000000000002", 25*time.Hour)
		job, err := f.api.CreateJob(f.Ctx, f.P, used.Slug)
		if err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		fresh := f.oldUpload("0b5e7a52-0000-4000-8000-000000000003", 23*time.Hour)

		n, err := f.hk.expireUploads(f.Ctx, time.Now().Add(-DefaultUploadRetention))

		if err != nil || n != 1 {
			t.Fatalf("expireUploads = %d, %v; want 1 removed", n, err)
		}
		if _, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, expired.Slug); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the expired upload's row: %v, want it gone", err)
		}
		// The row went in the same transaction that queued the file's removal.
		if !f.Exists(expired.ObjectKey) {
			t.Fatal("the expired file went before its removal ran")
		}
		if ran := f.runRemovals(); ran != 1 {
			t.Errorf("%d removals queued, want 1", ran)
		}
		if f.Exists(expired.ObjectKey) {
			t.Error("the expired upload's file is still stored")
		}

		for _, kept := range []store.Upload{used, fresh} {
			row, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, kept.Slug)
			if err != nil {
				t.Errorf("upload %s: %v, want it kept", kept.Slug, err)
			}
			// The job made from the used one reads its own copy.
			if !f.Exists(row.JobInputKey()) {
				t.Errorf("file %s was removed, want it kept", row.JobInputKey())
			}
		}
		if got := f.Job(job.ID); got.Slug != used.Slug {
			t.Errorf("the job made from the old upload: %+v", got)
		}
		if _, err := f.api.CreateJob(f.Ctx, f.P, expired.Slug); enginetest.ErrorCode(err) != farm.CodeUploadNotFound {
			t.Errorf("CreateJob from the expired slug: %v, want %s", err, farm.CodeUploadNotFound)
		}

		// Nothing more to do on the next run.
		if n, err := f.hk.expireUploads(f.Ctx, time.Now().Add(-DefaultUploadRetention)); err != nil || n != 0 {
			t.Errorf("second run = %d, %v; want nothing removed", n, err)
		}
	})
}

func TestExpiringMoreUploadsThanOneBatch(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		const count = expireBatch + 3
		for i := range count {
			f.oldUpload(fmt.Sprintf("0b5e7a52-0000-4000-8000-%012d", i), 48*time.Hour)
		}
		n, err := f.hk.expireUploads(f.Ctx, time.Now().Add(-DefaultUploadRetention))
		if err != nil || n != count {
			t.Fatalf("expireUploads = %d, %v; want %d", n, err, count)
		}
		if left := f.Count("uploads", ""); left != 0 {
			t.Errorf("%d uploads left", left)
		}
	})
}

func TestDeleteJobRemovesItsInputAndOutputsAndKeepsItsRow(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		other := f.FinishedJobWithFiles(f.api, farm.StatusCompleted)
		input, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, job.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{}); err != nil || len(d.FrameOutputs) != 2 || d.Transforms.Video == nil {
			t.Fatalf("downloads before the delete = %+v, %v; want two frames and a video", d, err)
		}

		got, err := f.api.DeleteJob(f.Ctx, f.P, job.ID)

		if err != nil {
			t.Fatalf("DeleteJob: %v", err)
		}
		if !got.Output.IsDeletedForClient || got.Status != farm.StatusCompleted || got.PreviewURL != nil {
			t.Errorf("answer = status %s, output %+v, previewUrl %v; want completed, deleted, no preview", got.Status, got.Output, got.PreviewURL)
		}
		if row := f.Job(job.ID); !row.Output.IsDeletedForClient || row.Status != farm.StatusCompleted {
			t.Errorf("job row = %s %+v; want it kept, completed, marked deleted", row.Status, row.Output)
		}
		// The client sees nothing of the files at once, before they go.
		d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{})
		if err != nil || len(d.Frames)+len(d.FrameOutputs) != 0 || d.Transforms.FramesZip != nil || d.Transforms.Video != nil {
			t.Errorf("downloads after the delete = %+v, %v; want the empty shape", d, err)
		}
		if l, err := f.api.JobLog(f.Ctx, f.P, job.ID); err != nil || len(l.Lines) != 0 {
			t.Errorf("log after the delete = %v, %v; want no lines", l, err)
		}

		// One removal to run now, and the same one an hour later.
		if ran := f.runRemovals(); ran != 2 {
			t.Fatalf("%d removals queued, want 2", ran)
		}
		if left, err := f.Objects.List(f.Ctx, farm.JobPrefix(job.ID)); err != nil || len(left) != 0 {
			t.Errorf("objects left under %s: %v, %v", farm.JobPrefix(job.ID), left, err)
		}
		if f.Exists(input.JobInputKey()) || f.Exists(input.ObjectKey) {
			t.Errorf("the job's input %s (uploaded to %s) is still stored", input.JobInputKey(), input.ObjectKey)
		}
		// Another job's files are not touched: its input, two frames, the
		// zip, the preview and a log.
		if left, _ := f.Objects.List(f.Ctx, farm.JobPrefix(other.ID)); len(left) != 6 {
			t.Errorf("the other job has %d objects left, want its 6", len(left))
		}

		// Deleting again answers the job and queues nothing more; running the
		// removal again is harmless.
		again, err := f.api.DeleteJob(f.Ctx, f.P, job.ID)
		if err != nil || !again.Output.IsDeletedForClient {
			t.Errorf("second DeleteJob = %+v, %v; want the deleted job", again, err)
		}
		if n := len(f.RiverJobs("delete_objects")); n != 2 {
			t.Errorf("%d removals queued after a second delete, want still 2", n)
		}
		if ran := f.runRemovals(); ran != 2 {
			t.Errorf("%d removals ran again", ran)
		}
	})
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

// staleUploadsBucket is the farm's store as a bucket whose unfinished
// multipart uploads can be aborted, recording what it is asked.
type staleUploadsBucket struct {
	objstore.Store
	prefix        string
	startedBefore time.Time
}

func (b *staleUploadsBucket) AbortStaleUploads(_ context.Context, prefix string, startedBefore time.Time) (int, error) {
	b.prefix, b.startedBefore = prefix, startedBefore
	return 1, nil
}

// TestExpiringUploadsAbortsTheBucketsUploadsKilledProcessesLeft: a
// process killed while it stored an object in parts leaves them in the
// bucket, unlisted. The periodic expiry of uploads has the bucket abort
// the farm's unfinished uploads begun a day ago or more, which no live
// process is still sending.
func TestExpiringUploadsAbortsTheBucketsUploadsKilledProcessesLeft(t *testing.T) {
	t.Parallel()
	f := newFixture(t, enginetest.SQLite)
	bucket := &staleUploadsBucket{Store: f.hk.objects}
	f.hk.objects = bucket

	if err := f.hk.ExpireUploads(f.Ctx); err != nil {
		t.Fatal(err)
	}

	if bucket.prefix != farm.JobsPrefix {
		t.Errorf("aborted the unfinished uploads under %q, want %q, the farm's", bucket.prefix, farm.JobsPrefix)
	}
	if age := time.Since(bucket.startedBefore); age < staleUploadAge || age > staleUploadAge+time.Minute {
		t.Errorf("aborted the unfinished uploads begun %s ago or more, want %s", age, staleUploadAge)
	}
}

// TestExpiringUploadsRemovesTheTempFileOfAnUploadCutShortByAKill: a serve
// killed in the middle of an upload's body leaves the part it received
// in the local store's temp folder. The periodic expiry of uploads
// removes it once it has gone an hour unwritten.
func TestExpiringUploadsRemovesTheTempFileOfAnUploadCutShortByAKill(t *testing.T) {
	t.Parallel()
	f := newFixture(t, enginetest.SQLite)
	partial := filepath.Join(f.Dir, "objects", ".tmp", "put-cut-short")
	if err := os.WriteFile(partial, []byte("the first bytes of a .blend"), 0o600); err != nil {
		t.Fatal(err)
	}
	killed := time.Now().Add(-abandonedWriteAge - time.Minute)
	if err := os.Chtimes(partial, killed, killed); err != nil {
		t.Fatal(err)
	}

	if err := f.hk.ExpireUploads(f.Ctx); err != nil {
		t.Fatal(err)
	}

	if _, err := os.Stat(partial); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the killed upload's temp file is still there: %v", err)
	}
}
