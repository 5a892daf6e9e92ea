package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

const (
	validatedScene = "BLENDER-v402 the scene that was validated"
	otherScene     = "BLENDER-v402 a scene sent later"
)

// uploadedJob makes a job from an upload of content, as a client would:
// POST /uploads, a PUT to the upload URL, POST /jobs.
func (f *farmFixture) uploadedJob(content string) (job *farm.Job, uploadKey string) {
	f.t.Helper()
	ticket, err := f.engine.CreateUpload(f.ctx, f.p, "scene.blend", farm.FileTypeBlend)
	if err != nil {
		f.t.Fatal(err)
	}
	uploadKey = farm.UploadKey(ticket.Slug, "scene.blend")
	f.putContent(uploadKey, content)
	job, err = f.engine.CreateJob(f.ctx, f.p, ticket.Slug)
	if err != nil {
		f.t.Fatalf("CreateJob: %v", err)
	}
	return job, uploadKey
}

func (f *farmFixture) putContent(key, content string) {
	f.t.Helper()
	if _, err := f.objects.Put(f.ctx, key, strings.NewReader(content), 1<<20); err != nil {
		f.t.Fatalf("Put %s: %v", key, err)
	}
}

func (f *farmFixture) content(key string) string {
	f.t.Helper()
	r, err := f.objects.Get(f.ctx, key)
	if err != nil {
		f.t.Fatalf("Get %s: %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestAJobReadsItsOwnCopyOfTheUpload: making a job copies the upload to
// the job's own key and removes the upload's object; the upload URL then
// takes nothing more, saying why, and a file that reached it anyway (a PUT
// racing the job's creation) is swept away without touching the job's
// input.
func TestAJobReadsItsOwnCopyOfTheUpload(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job, uploadKey := f.uploadedJob(validatedScene)

	up, err := f.store.GetUpload(f.ctx, f.p.WorkspaceID, job.Slug)
	if err != nil {
		t.Fatal(err)
	}
	if want := "jobs/" + job.ID + "/input/scene.blend"; up.InputKey != want || up.JobInputKey() != want {
		t.Fatalf("the job's input key = %q, want %q", up.InputKey, want)
	}
	if got := f.content(up.InputKey); got != validatedScene {
		t.Errorf("the job's input holds %q, want the uploaded file", got)
	}
	if f.exists(uploadKey) {
		t.Errorf("the upload's object %s is still stored after the job was made", uploadKey)
	}
	if job.SceneFile == nil || job.SceneFile.SizeBytes != int64(len(validatedScene)) {
		t.Errorf("sceneFile = %+v, want the size of the uploaded file", job.SceneFile)
	}

	accept := AcceptUploadPut(f.store)
	refusal := func(key string) *objstore.PutRefusal {
		t.Helper()
		err := accept(f.ctx, key)
		r, ok := errors.AsType[*objstore.PutRefusal](err)
		if !ok {
			t.Fatalf("AcceptUploadPut(%s) = %v, want a refusal", key, err)
		}
		return r
	}
	if r := refusal(uploadKey); r.Status != http.StatusConflict || r.Code != "UPLOAD_USED" ||
		!strings.Contains(r.Message, job.ID) || !strings.Contains(r.Message, "POST /uploads") {
		t.Errorf("PUT to the upload of a job = %+v, want 409 UPLOAD_USED naming the job and how to upload anew", r)
	}

	// A PUT that slipped in as the job was made.
	f.putContent(uploadKey, otherScene)
	if n, err := f.engine.sweepStrayUploads(f.ctx); err != nil || n != 1 {
		t.Errorf("sweepStrayUploads = %d, %v; want the late file removed", n, err)
	}
	if f.exists(uploadKey) {
		t.Error("the late file is still stored")
	}
	in, err := f.engine.prepareInput(f.ctx, job)
	if err != nil {
		t.Fatalf("prepareInput: %v", err)
	}
	if in.SceneFile.SHA256 != sha256Hex(validatedScene) {
		t.Errorf("prepared input has SHA-256 %s, want the uploaded file's", in.SceneFile.SHA256)
	}

	// Once the job is deleted, its upload says so.
	if _, err := f.engine.Cancel(f.ctx, f.p, job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.engine.DeleteJob(f.ctx, f.p, job.ID); err != nil {
		t.Fatal(err)
	}
	if r := refusal(uploadKey); r.Status != http.StatusConflict || r.Code != "UPLOAD_DELETED" || !strings.Contains(r.Message, "deleted") {
		t.Errorf("PUT to the upload of a deleted job = %+v, want 409 UPLOAD_DELETED", r)
	}

	// An upload no job was made from takes its file; anything else is
	// refused.
	ticket, err := f.engine.CreateUpload(f.ctx, f.p, "next.blend", farm.FileTypeBlend)
	if err != nil {
		t.Fatal(err)
	}
	if err := accept(f.ctx, farm.UploadKey(ticket.Slug, "next.blend")); err != nil {
		t.Errorf("PUT to an open upload refused: %v", err)
	}
	if r := refusal(farm.UploadKey(uuid.NewString(), "scene.blend")); r.Status != http.StatusNotFound || r.Code != farm.CodeUploadNotFound {
		t.Errorf("PUT to an upload that does not exist = %+v, want 404 %s", r, farm.CodeUploadNotFound)
	}
	if r := refusal(farm.UploadKey(ticket.Slug, "other.blend")); r.Status != http.StatusNotFound {
		t.Errorf("PUT to another name in an open upload's folder = %+v, want 404", r)
	}
	if r := refusal(up.InputKey); r.Status != http.StatusForbidden {
		t.Errorf("PUT to a job's input = %+v, want 403", r)
	}
}

// TestCreateJobRefusesAnUploadOverTheLimit: a file over the limit (which a
// bucket takes through its presigned PUT) makes no job, and is removed.
func TestCreateJobRefusesAnUploadOverTheLimit(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	f.engine.cfg.MaxUploadBytes = int64(len(validatedScene)) - 1
	ticket, err := f.engine.CreateUpload(f.ctx, f.p, "scene.blend", farm.FileTypeBlend)
	if err != nil {
		t.Fatal(err)
	}
	uploadKey := farm.UploadKey(ticket.Slug, "scene.blend")
	f.putContent(uploadKey, validatedScene)
	_, err = f.engine.CreateJob(f.ctx, f.p, ticket.Slug)
	if farm.KindOf(err) != farm.KindTooLarge {
		t.Fatalf("CreateJob from a file over the limit: %v, want too large", err)
	}
	if left, _ := f.objects.List(f.ctx, ""); len(left) != 0 {
		t.Errorf("objects left after the refusal: %+v", left)
	}
	if n := f.count("jobs", ""); n != 0 {
		t.Errorf("%d jobs made", n)
	}
}

// TestPrepareInputChecksTheFileEveryTime: a prepared input is reused only
// while its file is the one that was hashed; a file put in its place is
// hashed again and refused unless it is the file validation checked.
func TestPrepareInputChecksTheFileEveryTime(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	job, _ := f.uploadedJob(validatedScene)
	up, err := f.store.GetUpload(f.ctx, f.p.WorkspaceID, job.Slug)
	if err != nil {
		t.Fatal(err)
	}

	// Validation prepares the input and records its checksum.
	first, err := f.engine.prepareInput(f.ctx, job)
	if err != nil {
		t.Fatalf("prepareInput at validation: %v", err)
	}
	if first.SceneFile.SHA256 != sha256Hex(validatedScene) {
		t.Fatalf("SHA-256 %s, want the uploaded file's", first.SceneFile.SHA256)
	}
	job.SceneFile = &first.SceneFile
	if again, err := f.engine.prepareInput(f.ctx, job); err != nil || again.BlendPath != first.BlendPath {
		t.Fatalf("prepareInput of an unchanged input = %+v, %v; want the same input", again, err)
	}

	// The file changes under the prepared input (nothing of the farm's
	// writes there; this stands for anything that might).
	f.putContent(up.InputKey, otherScene)
	if _, err := f.engine.prepareInput(f.ctx, job); err == nil || !strings.Contains(err.Error(), "no longer matches its validated checksum") {
		t.Fatalf("prepareInput of a changed input: %v, want it refused", err)
	}
	// Put back as it was (another file with the same bytes), it is
	// hashed again and accepted.
	f.putContent(up.InputKey, validatedScene)
	if in, err := f.engine.prepareInput(f.ctx, job); err != nil || in.SceneFile.SHA256 != sha256Hex(validatedScene) {
		t.Fatalf("prepareInput of the validated file put back = %+v, %v", in, err)
	}
}

// TestSweepStrayUploadsKeepsWhatAnUploadHolds: the sweep removes only the
// files no upload may hold: those of uploads made into jobs (which read
// their own copy), of jobs deleted, and of uploads that no longer exist.
// An upload waiting to become a job keeps its file, and so does a job made
// before inputs were copied, which still reads its upload's object.
func TestSweepStrayUploadsKeepsWhatAnUploadHolds(t *testing.T) {
	t.Parallel()
	f := newFarmFixture(t)
	waiting := f.oldUpload(uuid.NewString(), time.Minute)
	olderJob := f.olderJob(false)
	olderDeletedJob := f.olderJob(true)
	job, uploadKey := f.uploadedJob(validatedScene)
	f.putContent(uploadKey, otherScene)
	unknown := farm.UploadKey(uuid.NewString(), "scene.blend")
	f.putContent(unknown, otherScene)

	n, err := f.engine.sweepStrayUploads(f.ctx)

	if err != nil || n != 3 {
		t.Errorf("sweepStrayUploads = %d, %v; want 3 removed", n, err)
	}
	for _, key := range []string{waiting.ObjectKey, olderJob} {
		if !f.exists(key) {
			t.Errorf("%s was removed, want it kept", key)
		}
	}
	for _, key := range []string{olderDeletedJob, uploadKey, unknown} {
		if f.exists(key) {
			t.Errorf("%s is still stored, want it removed", key)
		}
	}
	if got := f.content(farm.JobInputKey(job.ID, "scene.blend")); got != validatedScene {
		t.Errorf("the job's input holds %q, want the uploaded file", got)
	}
}

// olderJob is a job made before inputs were copied: its upload has no
// input key, and it reads the upload's object, whose key it answers.
func (f *farmFixture) olderJob(deleted bool) string {
	f.t.Helper()
	up := f.oldUpload(uuid.NewString(), time.Hour)
	now := time.Now().UTC()
	job := &farm.Job{ID: uuid.NewString(), Status: farm.StatusCompleted, WorkspaceID: f.p.WorkspaceID, UserID: f.p.KeyID,
		CreatedAt: now, UpdatedAt: now, Slug: up.Slug, Output: farm.JobOutput{IsDeletedForClient: deleted}}
	err := f.store.InTx(f.ctx, func(tx *store.Tx) error {
		if err := tx.ClaimUpload(f.ctx, up.Slug, job.ID, ""); err != nil {
			return err
		}
		return tx.InsertJob(f.ctx, job)
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return up.ObjectKey
}
