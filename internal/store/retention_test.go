package store_test

import (
	"errors"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
)

func TestUnclaimedUploadsBeforeListsOnlyOldUploadsWithoutAJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other studio")
		uploads := []store.Upload{
			newUpload("old-unclaimed", ws.ID),
			newUpload("old-claimed", ws.ID),
			newUpload("older-elsewhere", other.ID),
			newUpload("fresh", ws.ID),
		}
		uploads[0].CreatedAt = at(10)
		uploads[1].CreatedAt = at(10)
		uploads[2].CreatedAt = at(5)
		uploads[3].CreatedAt = at(40)
		for _, u := range uploads {
			if err := s.InsertUpload(t.Context(), u); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ClaimUpload(t.Context(), "old-claimed", "job-1", "jobs/job-1/input/scene.blend"); err != nil {
			t.Fatal(err)
		}

		got, err := s.UnclaimedUploadsBefore(t.Context(), at(30), 10)
		if err != nil {
			t.Fatal(err)
		}
		var slugs []string
		for _, u := range got {
			slugs = append(slugs, u.Slug)
		}
		// Every workspace's, oldest first; never one a job was made from.
		if len(got) != 2 || slugs[0] != "older-elsewhere" || slugs[1] != "old-unclaimed" {
			t.Fatalf("expired uploads = %v, want [older-elsewhere old-unclaimed]", slugs)
		}
		if u := got[1]; u.ObjectKey != uploads[0].ObjectKey || u.WorkspaceID != ws.ID || !u.CreatedAt.Equal(at(10)) {
			t.Errorf("expired upload = %+v, want the stored row", u)
		}

		if page, err := s.UnclaimedUploadsBefore(t.Context(), at(30), 1); err != nil || len(page) != 1 || page[0].Slug != "older-elsewhere" {
			t.Errorf("with a limit of 1: %v, %v; want the oldest alone", page, err)
		}
	})
}

func TestDeleteUnclaimedUploadLeavesAJobsInputAlone(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		for _, slug := range []string{"unclaimed", "claimed"} {
			if err := s.InsertUpload(t.Context(), newUpload(slug, ws.ID)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.ClaimUpload(t.Context(), "claimed", "job-1", "jobs/job-1/input/scene.blend"); err != nil {
			t.Fatal(err)
		}

		if err := s.DeleteUnclaimedUpload(t.Context(), "unclaimed"); err != nil {
			t.Fatalf("delete an unclaimed upload: %v", err)
		}
		if _, err := s.GetUpload(t.Context(), ws.ID, "unclaimed"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the deleted upload is still found: %v", err)
		}
		if err := s.DeleteUnclaimedUpload(t.Context(), "unclaimed"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("delete it again: %v, want ErrConflict", err)
		}
		if err := s.DeleteUnclaimedUpload(t.Context(), "claimed"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("delete an upload a job was made from: %v, want ErrConflict", err)
		}
		if u, err := s.GetUpload(t.Context(), ws.ID, "claimed"); err != nil || u.JobID != "job-1" {
			t.Errorf("the job's upload after a refused delete: %+v, %v", u, err)
		}
	})
}
