package node

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/service"
)

// TestAJobReadsItsOwnCopyOfTheUpload: making a job copies the upload to
// the job's own key and removes the upload's object; the upload URL then
// takes nothing more, saying why, and a file that reached it anyway (a PUT
// racing the job's creation) is swept away without touching the job's
// input.
func TestAJobReadsItsOwnCopyOfTheUpload(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, uploadKey := f.UploadedJob(f.api, enginetest.ValidatedScene)

		up, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, job.Slug)
		if err != nil {
			t.Fatal(err)
		}
		if want := "jobs/" + job.ID + "/input/scene.blend"; up.InputKey != want || up.JobInputKey() != want {
			t.Fatalf("the job's input key = %q, want %q", up.InputKey, want)
		}
		if got := f.Content(up.InputKey); got != enginetest.ValidatedScene {
			t.Errorf("the job's input holds %q, want the uploaded file", got)
		}
		if f.Exists(uploadKey) {
			t.Errorf("the upload's object %s is still stored after the job was made", uploadKey)
		}
		if job.SceneFile == nil || job.SceneFile.SizeBytes != int64(len(enginetest.ValidatedScene)) {
			t.Errorf("sceneFile = %+v, want the size of the uploaded file", job.SceneFile)
		}

		accept := service.AcceptUploadPut(f.Store)
		refusal := func(key string) *objstore.PutRefusal {
			t.Helper()
			err := accept(f.Ctx, key, -1, nil)
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
		f.PutContent(uploadKey, enginetest.OtherScene)
		if err := f.hk.ExpireUploads(f.Ctx); err != nil {
			t.Errorf("ExpireUploads: %v", err)
		}
		if f.Exists(uploadKey) {
			t.Error("the late file is still stored")
		}
		in, err := f.node.prepareInput(f.Ctx, job)
		if err != nil {
			t.Fatalf("prepareInput: %v", err)
		}
		if in.SceneFile.SHA256 != enginetest.SHA256Hex(enginetest.ValidatedScene) {
			t.Errorf("prepared input has SHA-256 %s, want the uploaded file's", in.SceneFile.SHA256)
		}

		// Once the job is deleted, its upload says so.
		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := f.api.DeleteJob(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		if r := refusal(uploadKey); r.Status != http.StatusConflict || r.Code != "UPLOAD_DELETED" || !strings.Contains(r.Message, "deleted") {
			t.Errorf("PUT to the upload of a deleted job = %+v, want 409 UPLOAD_DELETED", r)
		}

		// An upload no job was made from takes its file; anything else is
		// refused.
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "next.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		if err := accept(f.Ctx, farm.UploadKey(ticket.Slug, "next.blend"), -1, nil); err != nil {
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
	})
}

// TestPrepareInputChecksTheFileEveryTime: a prepared input is reused only
// while its file is the one that was hashed; a file put in its place is
// hashed again and refused unless it is the file validation checked.
func TestPrepareInputChecksTheFileEveryTime(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, _ := f.UploadedJob(f.api, enginetest.ValidatedScene)
		up, err := f.Store.GetUpload(f.Ctx, f.P.WorkspaceID, job.Slug)
		if err != nil {
			t.Fatal(err)
		}

		// Validation prepares the input and records its checksum.
		first, err := f.node.prepareInput(f.Ctx, job)
		if err != nil {
			t.Fatalf("prepareInput at validation: %v", err)
		}
		if first.SceneFile.SHA256 != enginetest.SHA256Hex(enginetest.ValidatedScene) {
			t.Fatalf("SHA-256 %s, want the uploaded file's", first.SceneFile.SHA256)
		}
		job.SceneFile = &first.SceneFile
		if again, err := f.node.prepareInput(f.Ctx, job); err != nil || again.BlendPath != first.BlendPath {
			t.Fatalf("prepareInput of an unchanged input = %+v, %v; want the same input", again, err)
		}

		// The file changes under the prepared input (nothing of the farm's
		// writes there; this stands for anything that might).
		f.PutContent(up.InputKey, enginetest.OtherScene)
		if _, err := f.node.prepareInput(f.Ctx, job); err == nil || !strings.Contains(err.Error(), "no longer matches its validated checksum") {
			t.Fatalf("prepareInput of a changed input: %v, want it refused", err)
		}
		// Put back as it was (another file with the same bytes), it is
		// hashed again and accepted.
		f.PutContent(up.InputKey, enginetest.ValidatedScene)
		if in, err := f.node.prepareInput(f.Ctx, job); err != nil || in.SceneFile.SHA256 != enginetest.SHA256Hex(enginetest.ValidatedScene) {
			t.Fatalf("prepareInput of the validated file put back = %+v, %v", in, err)
		}
	})
}
