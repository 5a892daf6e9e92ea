package store_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
)

func newUpload(slug, workspaceID string) store.Upload {
	return store.Upload{
		Slug: slug, WorkspaceID: workspaceID, FileName: "scene.blend", FileType: "blend",
		ObjectKey: "uploads/" + slug + "/scene.blend", CreatedAt: at(0), ExpiresAt: at(15),
	}
}

func TestUploadRoundTrip(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		up := newUpload("slug-1", ws.ID)
		if err := s.InsertUpload(t.Context(), up); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetUpload(t.Context(), ws.ID, "slug-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Slug != up.Slug || got.WorkspaceID != up.WorkspaceID || got.FileName != up.FileName || got.FileType != up.FileType ||
			got.ObjectKey != up.ObjectKey || !got.CreatedAt.Equal(up.CreatedAt) || !got.ExpiresAt.Equal(up.ExpiresAt) || got.JobID != "" {
			t.Errorf("GetUpload = %+v, want %+v", got, up)
		}
	})
}

func TestGetUploadOfAnotherWorkspaceIsNotFound(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		mine := ensureWorkspace(t, s, "studio")
		theirs := ensureWorkspace(t, s, "other studio")
		if err := s.InsertUpload(t.Context(), newUpload("slug-1", theirs.ID)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetUpload(t.Context(), mine.ID, "slug-1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUpload of another workspace's slug: error %v, want ErrNotFound", err)
		}
		if _, err := s.GetUpload(t.Context(), mine.ID, "no-such-slug"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetUpload of an unknown slug: error %v, want ErrNotFound", err)
		}
	})
}

func TestASlugIsUsedOnce(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		if err := s.InsertUpload(t.Context(), newUpload("slug-1", ws.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.InsertUpload(t.Context(), newUpload("slug-1", ws.ID)); err == nil {
			t.Error("a second upload with the same slug was stored")
		}
	})
}

func TestClaimUploadTwiceIsAConflict(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		if err := s.InsertUpload(t.Context(), newUpload("slug-1", ws.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.ClaimUpload(t.Context(), "slug-1", "job-1", "jobs/job-1/input/scene.blend"); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		if err := s.ClaimUpload(t.Context(), "slug-1", "job-2", "jobs/job-2/input/scene.blend"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second claim: error %v, want ErrConflict", err)
		}
		got, err := s.GetUpload(t.Context(), ws.ID, "slug-1")
		if err != nil || got.JobID != "job-1" || got.InputKey != "jobs/job-1/input/scene.blend" {
			t.Errorf("upload's job = %q with input %q, %v; want the first claim's, job-1 and its input", got.JobID, got.InputKey, err)
		}
		if key := got.JobInputKey(); key != "jobs/job-1/input/scene.blend" {
			t.Errorf("JobInputKey = %q, want the job's own copy", key)
		}
	})
}

func TestClaimUploadAtTheSameTimeHasOneWinner(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		if err := s.InsertUpload(t.Context(), newUpload("slug-1", ws.ID)); err != nil {
			t.Fatal(err)
		}
		const callers = 16
		errs := make([]error, callers)
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				job := "job-" + string(rune('a'+i))
				errs[i] = s.ClaimUpload(t.Context(), "slug-1", job, "jobs/"+job+"/input/scene.blend")
			})
		}
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrConflict):
				t.Errorf("caller %d: %v, want nil or ErrConflict", i, err)
			}
		}
		if wins != 1 {
			t.Errorf("%d callers claimed the slug, want exactly 1", wins)
		}
	})
}

// TestUploadState: the farm's own view of an upload, by slug alone: open,
// claimed by a job, claimed by a job whose files were deleted, or unknown.
func TestUploadState(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		for _, slug := range []string{"open", "claimed", "deleted"} {
			if err := s.InsertUpload(ctx, newUpload(slug, ws.ID)); err != nil {
				t.Fatal(err)
			}
		}
		for _, id := range []string{"job-claimed", "job-deleted"} {
			j := newJob(id, ws.ID, at(1))
			j.Output.IsDeletedForClient = id == "job-deleted"
			insertJob(t, s, j)
		}
		for slug, job := range map[string]string{"claimed": "job-claimed", "deleted": "job-deleted"} {
			if err := s.ClaimUpload(ctx, slug, job, "jobs/"+job+"/input/scene.blend"); err != nil {
				t.Fatal(err)
			}
		}

		open, err := s.GetUploadState(ctx, "open")
		if err != nil || open.JobID != "" || open.InputKey != "" || open.JobDeleted || open.WorkspaceID != ws.ID || open.ObjectKey != "uploads/open/scene.blend" {
			t.Errorf("open upload = %+v, %v", open, err)
		}
		claimed, err := s.GetUploadState(ctx, "claimed")
		if err != nil || claimed.JobID != "job-claimed" || claimed.InputKey != "jobs/job-claimed/input/scene.blend" || claimed.JobDeleted {
			t.Errorf("claimed upload = %+v, %v", claimed, err)
		}
		deleted, err := s.GetUploadState(ctx, "deleted")
		if err != nil || deleted.JobID != "job-deleted" || !deleted.JobDeleted {
			t.Errorf("upload of a deleted job = %+v, %v; want JobDeleted", deleted, err)
		}
		if _, err := s.GetUploadState(ctx, "unknown"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("unknown slug: %v, want ErrNotFound", err)
		}
	})
}

// TestJobInputKeyOfAnOlderJob: a job made before inputs were copied has no
// input key, and reads its upload's object.
func TestJobInputKeyOfAnOlderJob(t *testing.T) {
	up := newUpload("slug-1", "ws")
	up.JobID = "job-1"
	if key := up.JobInputKey(); key != up.ObjectKey {
		t.Errorf("JobInputKey of an upload claimed without an input key = %q, want the upload's object %q", key, up.ObjectKey)
	}
}
