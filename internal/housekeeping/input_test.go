package housekeeping

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestSweepStrayUploadsKeepsWhatAnUploadHolds(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		waiting := f.oldUpload(uuid.NewString(), time.Minute)
		olderJob := f.olderJob(false)
		olderDeletedJob := f.olderJob(true)
		job, uploadKey := f.UploadedJob(f.api, enginetest.ValidatedScene)
		f.PutContent(uploadKey, enginetest.OtherScene)
		unknown := farm.UploadKey(uuid.NewString(), "scene.blend")
		f.PutContent(unknown, enginetest.OtherScene)

		n, err := f.hk.sweepStrayUploads(f.Ctx)

		if err != nil || n != 3 {
			t.Errorf("sweepStrayUploads = %d, %v; want 3 removed", n, err)
		}
		for _, key := range []string{waiting.ObjectKey, olderJob} {
			if !f.Exists(key) {
				t.Errorf("%s was removed, want it kept", key)
			}
		}
		for _, key := range []string{olderDeletedJob, uploadKey, unknown} {
			if f.Exists(key) {
				t.Errorf("%s is still stored, want it removed", key)
			}
		}
		if got := f.Content(farm.JobInputKey(job.ID, "scene.blend")); got != enginetest.ValidatedScene {
			t.Errorf("the job's input holds %q, want the uploaded file", got)
		}
	})
}

// olderJob is a job made before inputs were copied: its upload has no
// input key, and it reads the upload's object, whose key it answers.
func (f *fixture) olderJob(deleted bool) string {
	f.T.Helper()
	up := f.oldUpload(uuid.NewString(), time.Hour)
	now := time.Now().UTC()
	job := &farm.Job{ID: uuid.NewString(), Status: farm.StatusCompleted, WorkspaceID: f.P.WorkspaceID, UserID: f.P.KeyID,
		CreatedAt: now, UpdatedAt: now, Slug: up.Slug, Output: farm.JobOutput{IsDeletedForClient: deleted}}
	err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
		if err := tx.ClaimUpload(f.Ctx, up.Slug, job.ID, ""); err != nil {
			return err
		}
		return tx.InsertJob(f.Ctx, job)
	})
	if err != nil {
		f.T.Fatal(err)
	}
	return up.ObjectKey
}
