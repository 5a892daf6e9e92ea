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
		if err := s.ClaimUpload(t.Context(), "slug-1", "job-1"); err != nil {
			t.Fatalf("first claim: %v", err)
		}
		if err := s.ClaimUpload(t.Context(), "slug-1", "job-2"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("second claim: error %v, want ErrConflict", err)
		}
		got, err := s.GetUpload(t.Context(), ws.ID, "slug-1")
		if err != nil || got.JobID != "job-1" {
			t.Errorf("upload's job = %q, %v; want the first claim's, job-1", got.JobID, err)
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
				errs[i] = s.ClaimUpload(t.Context(), "slug-1", "job-"+string(rune('a'+i)))
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
