package store_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestWorkspaceStorageSumsTheRecordedSizes: a workspace's storage is its
// uploads' files (a job's input replacing its upload's) and its frames'
// files, every one of them, or a frame's one image for a frame completed
// before frames had several, and what its jobs' finalizing made (zips, a
// preview video) and the Blender logs kept for them; another workspace's
// and a deleted job's count for nothing, and the upload being checked can
// be left out.
func TestWorkspaceStorageSumsTheRecordedSizes(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other")
		for slug, wsID := range map[string]string{"pending": ws.ID, "made": ws.ID, "theirs": other.ID, "gone": ws.ID} {
			if err := s.InsertUpload(ctx, newUpload(slug, wsID)); err != nil {
				t.Fatal(err)
			}
		}
		mustRecord := func(slug string, size int64) {
			t.Helper()
			if err := s.RecordUploadSize(ctx, slug, size); err != nil {
				t.Fatal(err)
			}
		}
		mustRecord("pending", 1000)
		mustRecord("made", 200)
		mustRecord("theirs", 5000)
		mustRecord("gone", 7000)

		job := newJob("job-1", ws.ID, at(0))
		insertJob(t, s, job)
		if err := s.ClaimUpload(ctx, "made", "job-1", "jobs/job-1/input/scene.blend"); err != nil {
			t.Fatal(err)
		}
		for frame, size := range map[int]int64{1: 30, 2: 40} {
			if err := s.InsertFrame(ctx, store.Frame{JobID: "job-1", Frame: frame, TaskID: "t", Status: farm.FrameCompleted, SizeBytes: size, UpdatedAt: at(1)}); err != nil {
				t.Fatal(err)
			}
		}
		// Frame 2 records its files: 40 (its image, also in frames) + 5 + 6.
		err := s.InsertFrameOutputs(ctx, "job-1", 2, []farm.FrameOutput{
			{Kind: farm.OutputFrame, FileName: "a.png", RelativePath: "a.png", ObjectKey: "k/a", SizeBytes: 40},
			{Kind: farm.OutputCompositeNode, FileName: "n/b.exr", RelativePath: "n/b.exr", ObjectKey: "k/b", SizeBytes: 5},
			{Kind: farm.OutputPreview, FileName: "c.png", RelativePath: "preview/c.png", ObjectKey: "k/c", SizeBytes: 6},
		})
		if err != nil {
			t.Fatal(err)
		}
		// Its finalizing stores the zips and the preview video; two Blender
		// logs were kept.
		job.Files = farm.JobFiles{FramesZipKey: "z", FramesZipSize: 300, CompositeNodesZipKey: "n", CompositeNodesZipSize: 20, VideoKey: "v", VideoSize: 100}
		if err := s.UpdateJob(ctx, job); err != nil {
			t.Fatal(err)
		}
		for i, size := range []int64{4, 5} {
			task := store.Task{ID: fmt.Sprintf("job-1-chunk-%d", i), JobID: "job-1", Kind: store.TaskRender, Status: store.TaskDone, WorkspaceID: ws.ID, CreatedAt: at(0), UpdatedAt: at(1)}
			if err := s.InsertTask(ctx, task); err != nil {
				t.Fatal(err)
			}
			if err := s.AddTaskLogBytes(ctx, task.ID, size); err != nil {
				t.Fatal(err)
			}
		}
		deleted := newJob("job-2", ws.ID, at(0))
		deleted.Output.IsDeletedForClient = true
		deleted.Files = farm.JobFiles{FramesZipKey: "z", FramesZipSize: 90000}
		insertJob(t, s, deleted)
		if err := s.InsertTask(ctx, store.Task{ID: "job-2-chunk", JobID: "job-2", Kind: store.TaskRender, Status: store.TaskDone, WorkspaceID: ws.ID, CreatedAt: at(0), UpdatedAt: at(1)}); err != nil {
			t.Fatal(err)
		}
		if err := s.AddTaskLogBytes(ctx, "job-2-chunk", 80000); err != nil {
			t.Fatal(err)
		}
		if err := s.ClaimUpload(ctx, "gone", "job-2", "jobs/job-2/input/scene.blend"); err != nil {
			t.Fatal(err)
		}

		want := int64(1000 + 200 + 30 + 40 + 5 + 6 + 300 + 20 + 100 + 4 + 5)
		got, err := s.GetWorkspaceStorage(ctx, ws.ID, "")
		if err != nil || got.UsedBytes != want || got.MaxBytes != 0 || got.Left() <= 0 {
			t.Errorf("GetWorkspaceStorage = %+v, %v; want %d used, no limit", got, err, want)
		}
		got, err = s.GetWorkspaceStorage(ctx, ws.ID, "pending")
		if err != nil || got.UsedBytes != want-1000 {
			t.Errorf("GetWorkspaceStorage leaving out the pending upload = %+v, %v; want %d used", got, err, want-1000)
		}
		if err := s.SetWorkspaceMaxStorage(ctx, "studio", 1500); err != nil {
			t.Fatal(err)
		}
		got, err = s.GetWorkspaceStorage(ctx, ws.ID, "")
		if err != nil || got.MaxBytes != 1500 || got.Left() != 1500-want {
			t.Errorf("after a quota of 1500: %+v, %v; want %d left", got, err, 1500-want)
		}
		list, err := s.ListWorkspaceUsage(ctx, at(0))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range list {
			switch u.Name {
			case "studio":
				if u.StorageBytes != want || u.MaxStorageBytes != 1500 || u.Jobs != 1 {
					t.Errorf("studio listed as %+v; want %d bytes of 1500, 1 job", u, want)
				}
			case "other":
				if u.StorageBytes != 5000 || u.MaxStorageBytes != 0 || u.Jobs != 0 {
					t.Errorf("other listed as %+v; want 5000 bytes, no limit, no job", u)
				}
			}
		}
		if err := s.SetWorkspaceMaxStorage(ctx, "nobody", 1); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a quota for an unknown workspace: %v, want ErrNotFound", err)
		}
		if err := s.SetWorkspaceMaxStorage(ctx, "studio", -1); err == nil {
			t.Error("a negative quota was taken")
		}
	})
}

// TestCreateAndRenameWorkspace: a new name makes a workspace, a taken one
// is a conflict; a rename keeps the workspace (its id, so its keys and
// jobs) and refuses a taken or empty name.
func TestCreateAndRenameWorkspace(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws, err := s.CreateWorkspace(ctx, "studio")
		if err != nil || ws.Name != "studio" || ws.ID == "" {
			t.Fatalf("CreateWorkspace = %+v, %v", ws, err)
		}
		if _, err := s.CreateWorkspace(ctx, "studio"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("a second workspace named studio: %v, want ErrConflict", err)
		}
		for _, bad := range []string{"", "  ", " padded", "tab\there", string(make([]byte, store.MaxWorkspaceNameBytes+1))} {
			if _, err := s.CreateWorkspace(ctx, bad); err == nil {
				t.Errorf("CreateWorkspace(%q) was taken", bad)
			}
		}
		ensureWorkspace(t, s, "other")
		if err := s.RenameWorkspace(ctx, "studio", "other"); !errors.Is(err, store.ErrConflict) {
			t.Errorf("rename to a taken name: %v, want ErrConflict", err)
		}
		if err := s.RenameWorkspace(ctx, "nobody", "new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rename of an unknown workspace: %v, want ErrNotFound", err)
		}
		if err := s.RenameWorkspace(ctx, "studio", "Studio B"); err != nil {
			t.Fatal(err)
		}
		renamed := ensureWorkspace(t, s, "Studio B")
		if renamed.ID != ws.ID {
			t.Errorf("renamed workspace has id %s, want %s", renamed.ID, ws.ID)
		}
	})
}
