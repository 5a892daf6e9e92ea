package store_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

func ptr[T any](v T) *T { return &v }

// finishedJob has every stored field set, the JSON ones with nested
// pointers, slices and zero values that must come back as they went in.
func finishedJob(workspaceID string) *farm.Job {
	return &farm.Job{
		ID:                "job-full",
		Status:            farm.StatusCompleted,
		WorkspaceID:       workspaceID,
		UserID:            "key-1",
		CreatedAt:         at(0),
		UpdatedAt:         at(42),
		NormalizedSeconds: 123.25,
		FailedReason:      &farm.FailedReason{Name: "Frame 7 failed", Type: farm.FailRender, Message: "out of memory"},
		RequestedConfig: &farm.RenderConfig{
			ColorManagementPreset: ptr("default"),
			FrameRanges:           []string{"1-10", "20"},
			SampleCount:           ptr(0),
			DenoisingEnabled:      ptr(false),
			Resolution:            []int{1280, 720},
			OutputSettings:        &farm.OutputSettings{ColorMode: ptr("RGBA"), Quality: ptr(90)},
			ChunkSize:             ptr(4),
		},
		FinalConfig: &farm.FinalConfig{
			Scene: "Shot", FrameRanges: []string{"1-10", "20"}, FrameCount: 11,
			ColorManagementPreset: "default", RenderEngine: "CYCLES", ComputeDeviceType: "CPU", CompositorDevice: "CPU",
			SampleCount: 64, Resolution: []int{1280, 720}, ResolutionPercentage: 100, OutputFormat: "PNG", FPS: 29.97,
			UseTiling: ptr(false), OutputSettings: farm.FinalOutputSettings{ColorMode: "RGBA", Quality: ptr(90)}, ChunkSize: 4,
		},
		Output:            farm.JobOutput{IsDeletedForClient: true},
		IsAnalysisSkipped: false,
		AnalysisID:        ptr("analysis-1"),
		Analysis: &farm.Analysis{
			Inspection: farm.Inspection{
				FileVersion: "3.4", BlenderVersion: "3.4.1", ViewTransforms: []string{"Standard", "Filmic"},
				ActiveScene: "Shot",
				Scenes: []farm.Scene{{Name: "Shot", FrameStart: 1, FrameEnd: 20, FrameStep: 1, FPS: 29.97,
					ResolutionX: 1920, ResolutionY: 1080, ResolutionPercentage: 100, Engine: "CYCLES", Samples: 64,
					Camera: "Camera", OutputFormat: "PNG", ViewLayers: []string{"ViewLayer"}}},
				ExternalFiles: []farm.ExternalFile{{Type: "image", Name: "sky.hdr", Path: "//sky.hdr", Missing: true}},
			},
			Warnings: []farm.Warning{{Code: farm.WarnMissingFile, Message: "missing", Path: "//sky.hdr"}},
		},
		SceneFile: &farm.SceneFile{FileName: "shot.zip", FileType: "zip", SizeBytes: 1 << 20, SHA256: "ab12",
			BlendPath: "shots/shot.blend", Compression: "zstd", Version: "3.4", ProjectEntries: 12, ProjectBytes: 5 << 20},
		Slug: "slug-full",
		Files: farm.JobFiles{PreviewKey: "jobs/job-full/preview.mp4", FramesZipKey: "jobs/job-full/frames.zip",
			FramesZipSize: 4096, VideoKey: "jobs/job-full/preview.mp4", VideoSize: 2048, VideoFPS: 29.97},
	}
}

func TestJobRoundTripKeepsEveryStoredField(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		want := finishedJob(ws.ID)
		insertJob(t, s, want)
		got, err := s.GetJob(t.Context(), ws.ID, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetJob =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestJobRoundTripKeepsNilPointersNil(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		want := newJob("job-1", ws.ID, at(0))
		insertJob(t, s, want)
		got, err := s.GetJob(t.Context(), ws.ID, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.FailedReason != nil || got.RequestedConfig != nil || got.FinalConfig != nil || got.Analysis != nil ||
			got.AnalysisID != nil || got.SceneFile != nil || got.Files != (farm.JobFiles{}) {
			t.Errorf("a new job came back with fields set: %+v", got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("GetJob =\n%+v\nwant\n%+v", got, want)
		}
	})
}

func TestJobTimesComeBackInUTC(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		tokyo := time.FixedZone("JST", 9*60*60)
		j := newJob("job-1", ws.ID, at(0).In(tokyo))
		insertJob(t, s, j)
		got, err := s.GetJob(t.Context(), ws.ID, "job-1")
		if err != nil {
			t.Fatal(err)
		}
		if got.CreatedAt.Location() != time.UTC || !got.CreatedAt.Equal(at(0)) {
			t.Errorf("CreatedAt = %v, want %v in UTC", got.CreatedAt, at(0))
		}
	})
}

func TestGetJob(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		mine := ensureWorkspace(t, s, "studio")
		theirs := ensureWorkspace(t, s, "other studio")
		insertJob(t, s, newJob("their-job", theirs.ID, at(0)))

		tests := []struct {
			name        string
			workspaceID string
			id          string
			wantErr     error
		}{
			{"the owner finds its job", theirs.ID, "their-job", nil},
			{"another workspace cannot tell the job exists", mine.ID, "their-job", store.ErrNotFound},
			{"an unknown id is not found", theirs.ID, "no-such-job", store.ErrNotFound},
			{"the farm's own workers find any job", "", "their-job", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				j, err := s.GetJob(t.Context(), tt.workspaceID, tt.id)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("GetJob error = %v, want %v", err, tt.wantErr)
				}
				if err == nil && j.ID != tt.id {
					t.Errorf("GetJob = job %s, want %s", j.ID, tt.id)
				}
				if err != nil && j != nil {
					t.Errorf("GetJob returned a job with its error")
				}
			})
		}
	})
}

func TestUpdateJobWritesTheChangesAndStampsUpdatedAt(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		j := newJob("job-1", ws.ID, at(0))
		insertJob(t, s, j)

		before := time.Now().UTC().Truncate(time.Microsecond) // what the store keeps
		j.Status = farm.StatusFailed
		j.FailedReason = &farm.FailedReason{Name: "Validation failed", Type: farm.FailValidation, Message: "not a .blend"}
		j.NormalizedSeconds = 9.5
		if err := s.UpdateJob(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		if j.UpdatedAt.Before(before) {
			t.Errorf("UpdatedAt = %v, want it stamped at or after %v", j.UpdatedAt, before)
		}
		got, err := s.GetJob(t.Context(), ws.ID, "job-1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, j) {
			t.Errorf("after UpdateJob, GetJob =\n%+v\nwant\n%+v", got, j)
		}

		j.FailedReason = nil
		if err := s.UpdateJob(t.Context(), j); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetJob(t.Context(), ws.ID, "job-1"); got.FailedReason != nil {
			t.Errorf("a field set back to nil came back as %+v", got.FailedReason)
		}
	})
}

func TestUpdateJobOfAnUnknownJobIsNotFound(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		if err := s.UpdateJob(t.Context(), newJob("no-such-job", ws.ID, at(0))); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("UpdateJob of an unknown job: error %v, want ErrNotFound", err)
		}
	})
}

func TestListJobs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other studio")
		// job-0 is the oldest; job-2 and job-3 were created at the same moment.
		statuses := []farm.Status{farm.StatusCompleted, farm.StatusRendering, farm.StatusRendering, farm.StatusCreated, farm.StatusRendering}
		minutes := []int{0, 1, 2, 2, 3}
		for i, st := range statuses {
			j := newJob(fmt.Sprintf("job-%d", i), ws.ID, at(minutes[i]))
			j.Status = st
			insertJob(t, s, j)
		}
		theirs := newJob("their-job", other.ID, at(9))
		theirs.Status = farm.StatusRendering
		insertJob(t, s, theirs)

		tests := []struct {
			name          string
			status        farm.Status
			limit, offset int
			wantIDs       []string
			wantTotal     int
		}{
			{"newest first, ties broken by id, only this workspace's", "", 10, 0, []string{"job-4", "job-3", "job-2", "job-1", "job-0"}, 5},
			{"the first page", "", 2, 0, []string{"job-4", "job-3"}, 5},
			{"the second page", "", 2, 2, []string{"job-2", "job-1"}, 5},
			{"the last page is short", "", 2, 4, []string{"job-0"}, 5},
			{"past the last page is empty but still counts", "", 2, 6, []string{}, 5},
			{"a status filter", farm.StatusRendering, 10, 0, []string{"job-4", "job-2", "job-1"}, 3},
			{"a status filter, paged", farm.StatusRendering, 1, 1, []string{"job-2"}, 3},
			{"a status no job has", farm.StatusCanceled, 10, 0, []string{}, 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				jobs, total, err := s.ListJobs(t.Context(), ws.ID, tt.status, tt.limit, tt.offset)
				if err != nil {
					t.Fatal(err)
				}
				if jobs == nil {
					t.Error("ListJobs returned nil; want an empty list, which encodes as []")
				}
				ids := []string{}
				for _, j := range jobs {
					ids = append(ids, j.ID)
				}
				if !slices.Equal(ids, tt.wantIDs) || total != tt.wantTotal {
					t.Errorf("ListJobs = %q, total %d; want %q, total %d", ids, total, tt.wantIDs, tt.wantTotal)
				}
			})
		}
	})
}

func TestListJobsReturnsWholeJobs(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		want := finishedJob(ws.ID)
		insertJob(t, s, want)
		jobs, _, err := s.ListJobs(t.Context(), ws.ID, "", 10, 0)
		if err != nil || len(jobs) != 1 {
			t.Fatalf("ListJobs = %d jobs, %v; want 1", len(jobs), err)
		}
		if !reflect.DeepEqual(&jobs[0], want) {
			t.Errorf("listed job =\n%+v\nwant\n%+v", jobs[0], want)
		}
	})
}

func TestJobsProgressListsTheJobsOfTheStatusesOldestFirst(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		other := ensureWorkspace(t, s, "other studio")
		for i, st := range []farm.Status{farm.StatusRendering, farm.StatusCompleted, farm.StatusBooting, farm.StatusRendering} {
			j := newJob(fmt.Sprintf("job-%d", i), ws.ID, at(i))
			j.Status = st
			insertJob(t, s, j)
		}
		theirs := newJob("their-job", other.ID, at(9))
		theirs.Status = farm.StatusRendering
		insertJob(t, s, theirs)

		jobs, err := s.JobsProgress(t.Context(), ws.ID, true, farm.StatusRendering, farm.StatusBooting)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, j.JobID)
		}
		if want := []string{"job-0", "job-2", "job-3"}; !slices.Equal(ids, want) {
			t.Errorf("JobsProgress = %q, want %q", ids, want)
		}
		if jobs, err := s.JobsProgress(t.Context(), ws.ID, true); err != nil || len(jobs) != 0 {
			t.Errorf("JobsProgress with no statuses = %d jobs, %v; want none", len(jobs), err)
		}
	})
}

func TestListJobsOrdersByTimeWhateverTheFractionOfASecond(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		base := time.Date(2025, 3, 14, 15, 9, 59, 0, time.UTC)
		// Oldest first: a whole second, then fractions written with fewer and
		// more digits, then the next second and the next minute.
		created := []time.Time{
			base,
			base.Add(50 * time.Millisecond),
			base.Add(500 * time.Millisecond),
			base.Add(999999 * time.Microsecond),
			base.Add(time.Second),
			base.Add(time.Second + time.Microsecond),
			base.Add(time.Minute),
		}
		for i, c := range created {
			insertJob(t, s, newJob(fmt.Sprintf("job-%d", i), ws.ID, c))
		}
		jobs, _, err := s.ListJobs(t.Context(), ws.ID, "", 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if want := []string{"job-6", "job-5", "job-4", "job-3", "job-2", "job-1", "job-0"}; !slices.Equal(ids, want) {
			t.Errorf("ListJobs = %q, want newest first %q", ids, want)
		}
	})
}

func TestLockJobMakesTheNextLockerWaitAndSeeTheWrite(t *testing.T) {
	t.Parallel()
	// Two transactions move the same job: the second to lock it must wait
	// for the first to commit and then read what the first wrote, or its
	// write would undo the first one's.
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))

		blocked := awaitBlocked(t, s)
		secondSaw := make(chan farm.Status, 1)
		secondErr := make(chan error, 1)
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			j, err := tx.LockJob(t.Context(), ws.ID, "job-1")
			if err != nil {
				return err
			}
			go func() {
				secondErr <- s.InTx(t.Context(), func(tx *store.Tx) error {
					j, err := tx.LockJob(t.Context(), ws.ID, "job-1")
					if err != nil {
						return err
					}
					secondSaw <- j.Status
					j.Status = farm.StatusCanceled
					return tx.UpdateJob(t.Context(), j)
				})
			}()
			blocked()
			j.Status = farm.StatusValidating
			return tx.UpdateJob(t.Context(), j)
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := <-secondErr; err != nil {
			t.Fatalf("second transaction: %v", err)
		}
		if got := <-secondSaw; got != farm.StatusValidating {
			t.Errorf("the second transaction read the job as %s; want %s, what the first committed", got, farm.StatusValidating)
		}
		if j, err := s.GetJob(t.Context(), ws.ID, "job-1"); err != nil || j.Status != farm.StatusCanceled {
			t.Errorf("the job ended as %v, %v; want %s, the later write", j.Status, err, farm.StatusCanceled)
		}
	})
}

func TestLockJobFindsWhatGetJobFinds(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		mine := ensureWorkspace(t, s, "studio")
		theirs := ensureWorkspace(t, s, "other studio")
		want := finishedJob(mine.ID)
		insertJob(t, s, want)
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			got, err := tx.LockJob(t.Context(), mine.ID, want.ID)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("LockJob =\n%+v\nwant\n%+v", got, want)
			}
			if _, err := tx.LockJob(t.Context(), "", want.ID); err != nil {
				t.Errorf("LockJob for the farm's workers: %v", err)
			}
			if _, err := tx.LockJob(t.Context(), theirs.ID, want.ID); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LockJob of another workspace's job: error %v, want ErrNotFound", err)
			}
			if _, err := tx.LockJob(t.Context(), mine.ID, "no-such-job"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("LockJob of an unknown job: error %v, want ErrNotFound", err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestOneTransactionMovesAJobTheOthersWaitTogether: of three
// transactions that would each move a job on at once, the first is told
// to; the other two wait for it to end, then go on together, neither
// waiting for the other, and neither holds the job's lock: a fourth
// locks it while they are open.
func TestOneTransactionMovesAJobTheOthersWaitTogether(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("job-1", ws.ID, at(0)))
		if s.Dialect() != store.DialectPostgres {
			err := s.InTx(ctx, func(tx *store.Tx) error {
				if first, err := tx.FirstToMoveJob(ctx, "job-1"); err != nil || !first {
					return fmt.Errorf("FirstToMoveJob = %v, %v; want true: SQLite runs one transaction at a time", first, err)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			return
		}

		type told struct {
			first bool
			err   error
		}
		// Each transaction reports what it was told, then stays open until
		// its channel is closed.
		var wg sync.WaitGroup
		open := func(reply chan<- told, hold <-chan struct{}) {
			wg.Go(func() {
				err := s.InTx(ctx, func(tx *store.Tx) error {
					first, err := tx.FirstToMoveJob(ctx, "job-1")
					reply <- told{first, err}
					<-hold
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		firstTold, holdFirst := make(chan told, 1), make(chan struct{})
		open(firstTold, holdFirst)
		if got := <-firstTold; !got.first || got.err != nil {
			t.Fatalf("the first transaction was told %+v; want first", got)
		}
		othersTold, holdOthers := make(chan told, 2), make(chan struct{})
		open(othersTold, holdOthers)
		open(othersTold, holdOthers)
		select {
		case got := <-othersTold:
			t.Fatalf("another transaction was told %+v while the first was open; want it to wait", got)
		case <-time.After(200 * time.Millisecond):
		}
		close(holdFirst)
		for range 2 {
			select {
			case got := <-othersTold:
				if got.first || got.err != nil {
					t.Fatalf("a transaction that waited was told %+v; want not first", got)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the transactions that waited for the first did not go on together")
			}
		}
		err := s.InTx(ctx, func(tx *store.Tx) error {
			_, err := tx.LockJob(ctx, "", "job-1")
			return err
		})
		close(holdOthers)
		wg.Wait()
		if err != nil {
			t.Fatal(err)
		}
	})
}
