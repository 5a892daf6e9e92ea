package service

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/outage"
	"github.com/renderfarm/renderfarm/internal/store"
)

func TestCreateJobRefusesAnUploadOverTheLimit(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxUploadBytes = int64(len(enginetest.ValidatedScene)) - 1
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		uploadKey := farm.UploadKey(ticket.Slug, "scene.blend")
		f.PutContent(uploadKey, enginetest.ValidatedScene)
		_, err = f.api.CreateJob(f.Ctx, f.P, ticket.Slug)
		if farm.KindOf(err) != farm.KindTooLarge {
			t.Fatalf("CreateJob from a file over the limit: %v, want too large", err)
		}
		if left, _ := f.Objects.List(f.Ctx, ""); len(left) != 0 {
			t.Errorf("objects left after the refusal: %+v", left)
		}
		if n := f.Count("jobs", ""); n != 0 {
			t.Errorf("%d jobs made", n)
		}
	})
}

// TestCreateJobRefusesASlugThatIsNoUploadsSlug: a slug is the UUID that
// POST /uploads answered, in its canonical lower-case form. Anything else
// (a NUL, which PostgreSQL cannot store in text, another spelling of a
// real slug's UUID, text of any length) is UPLOAD_NOT_FOUND naming the
// field, as an unknown slug is, and the real slug still makes its job.
func TestCreateJobRefusesASlugThatIsNoUploadsSlug(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		f.PutContent(farm.UploadKey(ticket.Slug, "scene.blend"), enginetest.ValidatedScene)
		for _, slug := range []string{
			"abc\x00def",
			ticket.Slug[:8] + "\x00" + ticket.Slug[9:],
			strings.ToUpper(ticket.Slug),
			"{" + ticket.Slug + "}",
			"urn:uuid:" + ticket.Slug,
			strings.ReplaceAll(ticket.Slug, "-", ""),
			ticket.Slug + "0",
			"not-a-slug",
			strings.Repeat("a", 10_000),
		} {
			_, err := f.api.CreateJob(f.Ctx, f.P, slug)
			if fe, ok := errors.AsType[*farm.Error](err); !ok || fe.Code != farm.CodeUploadNotFound || fe.Field != "slug" {
				t.Errorf("CreateJob(%.50q) = %v, want %s naming slug", slug, err, farm.CodeUploadNotFound)
			}
		}
		if _, err := f.api.CreateJob(f.Ctx, f.P, ticket.Slug); err != nil {
			t.Errorf("CreateJob(%s), the upload's own slug: %v", ticket.Slug, err)
		}
	})
}

// TestRequestsRacingForOneSlugAreToldItWasUsed: several POST /jobs for
// one slug arrive at the same moment. One makes the job; each other is
// told the slug was used (SLUG_ALREADY_USED), even when it looked for the
// file after the winner had moved it into its job and removed the upload:
// the file did arrive, so UPLOAD_NOT_RECEIVED would be wrong.
func TestRequestsRacingForOneSlugAreToldItWasUsed(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		for round := range 5 {
			slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
			slugs := make([]string, 8)
			for i := range slugs {
				slugs[i] = slug
			}
			_, errs := f.createJobsAtOnce(slugs)
			made := 0
			for i, err := range errs {
				switch {
				case err == nil:
					made++
				case enginetest.ErrorCode(err) != farm.CodeSlugUsed:
					t.Errorf("round %d, request %d: %v, want %s", round, i, err, farm.CodeSlugUsed)
				}
			}
			if made != 1 {
				t.Errorf("round %d: %d jobs made from one slug, want 1", round, made)
			}
		}
	})
}

// copyReplyLost is an object store whose copies land but answer an
// error, as a bucket's does when the connection drops after the copy was
// made (or the copy's size cannot be read after it).
type copyReplyLost struct {
	objstore.Store
}

func (c copyReplyLost) Copy(ctx context.Context, src, dst string, maxBytes int64) (objstore.Info, error) {
	if _, err := c.Store.Copy(ctx, src, dst, maxBytes); err != nil {
		return objstore.Info{}, err
	}
	return objstore.Info{}, errors.New("read the copy's size: connection reset by peer")
}

// TestACopyWhoseReplyWasLostLeavesNoInput: POST /jobs copies the upload
// into the job's input, and the bucket makes the copy but its answer is
// lost. No job is made, so no job's prefix may keep the copy: nothing
// would ever list or remove it. The client's second try makes the job.
func TestACopyWhoseReplyWasLostLeavesNoInput(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
		bucket := f.api.objects
		f.api.objects = copyReplyLost{Store: bucket}

		if _, err := f.api.CreateJob(f.Ctx, f.P, slug); err == nil {
			t.Fatal("CreateJob made a job though its input's copy failed")
		}
		if left, _ := f.Objects.List(f.Ctx, "jobs/"); len(left) != 0 {
			t.Errorf("objects left under jobs/ by a job that was not made: %+v", left)
		}

		f.api.objects = bucket
		job, err := f.api.CreateJob(f.Ctx, f.P, slug)
		if err != nil {
			t.Fatalf("CreateJob tried again: %v", err)
		}
		left, _ := f.Objects.List(f.Ctx, "jobs/")
		if len(left) != 1 || !strings.HasPrefix(left[0].Key, farm.JobPrefix(job.ID)) {
			t.Errorf("objects under jobs/: %+v, want the input of job %s alone", left, job.ID)
		}
	})
}

// diesAfterCopy is an object store whose copy lands, and then the
// goroutine that asked for it ends on the spot, as the whole process
// would if it were killed right then.
type diesAfterCopy struct {
	objstore.Store
}

func (d diesAfterCopy) Copy(ctx context.Context, src, dst string, maxBytes int64) (objstore.Info, error) {
	if _, err := d.Store.Copy(ctx, src, dst, maxBytes); err != nil {
		return objstore.Info{}, err
	}
	runtime.Goexit()
	panic("unreachable")
}

// TestAnInputCopiedByAProcessKilledBeforeItsJobWasMadeIsRemoved: POST
// /jobs copies the upload into the job's input, and the process is
// killed before the transaction that makes the job. No row names the
// copy; the removal queued before the copy, once it runs, takes it.
func TestAnInputCopiedByAProcessKilledBeforeItsJobWasMadeIsRemoved(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		hk := housekeeping.New(f.Engine, housekeeping.DefaultConfig())
		slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
		f.api.objects = diesAfterCopy{Store: f.api.objects}
		killed := make(chan struct{})
		go func() {
			defer close(killed)
			_, _ = f.api.CreateJob(f.Ctx, f.P, slug)
			t.Error("CreateJob went on after the copy")
		}()
		<-killed
		copies, _ := f.Objects.List(f.Ctx, "jobs/")
		if len(copies) != 1 || f.Count("jobs", "") != 0 {
			t.Fatalf("before the removal: %d jobs, objects under jobs/ %+v; want no job and the one copy", f.Count("jobs", ""), copies)
		}

		f.runRemovals(t, hk)

		if left, _ := f.Objects.List(f.Ctx, "jobs/"); len(left) != 0 {
			t.Errorf("objects left under jobs/ by a job that was not made: %+v", left)
		}
	})
}

// TestAJobKeepsItsInputCopy: the removal queued in case the job would
// not be made is taken back with the job's commit, so the job's input
// stays, and no River job is left behind.
func TestAJobKeepsItsInputCopy(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		hk := housekeeping.New(f.Engine, housekeeping.DefaultConfig())
		job := f.CreatedJob(f.api)

		f.runRemovals(t, hk)

		if left, _ := f.Objects.List(f.Ctx, farm.JobPrefix(job.ID)); len(left) != 1 {
			t.Errorf("objects of job %s: %+v, want its input", job.ID, left)
		}
		if n := len(f.RiverJobs(engine.DeleteObjectsArgs{}.Kind())); n != 0 {
			t.Errorf("%d removals left queued after the job was made, want none", n)
		}
	})
}

// runRemovals runs every delete_objects River job that is still to run,
// whenever it was scheduled for, as the cleanup queue would in time,
// with hk, registered on the farm's engine before River was first used.
func (f *fixture) runRemovals(t *testing.T, hk *housekeeping.Housekeeping) {
	t.Helper()
	for _, j := range f.RiverJobs(engine.DeleteObjectsArgs{}.Kind()) {
		if j.State != "available" && j.State != "scheduled" {
			continue
		}
		var args engine.DeleteObjectsArgs
		if err := json.Unmarshal(j.Args, &args); err != nil {
			t.Fatal(err)
		}
		if err := hk.DeleteObjects(f.Ctx, args); err != nil {
			t.Fatalf("delete_objects %d: %v", j.ID, err)
		}
	}
}

// copyThen is an object store that runs then once a copy has landed.
type copyThen struct {
	objstore.Store
	then func()
}

func (c copyThen) Copy(ctx context.Context, src, dst string, maxBytes int64) (objstore.Info, error) {
	info, err := c.Store.Copy(ctx, src, dst, maxBytes)
	if err == nil {
		c.then()
	}
	return info, err
}

// TestNoJobIsMadeWithAnInputWhoseRemovalRan: the copy took longer than
// engine.InputCopyWindow, and the removal queued in case the job would
// not be made ran meanwhile. The job is not made (its input would be
// gone), and the copy is removed.
func TestNoJobIsMadeWithAnInputWhoseRemovalRan(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
		f.api.objects = copyThen{Store: f.api.objects, then: func() {
			for _, j := range f.RiverJobs(engine.DeleteObjectsArgs{}.Kind()) {
				f.EndRiverJob(j.ID, "completed", nil)
			}
		}}

		_, err := f.api.CreateJob(f.Ctx, f.P, slug)
		if !errors.Is(err, engine.ErrInputCopyTooSlow) {
			t.Errorf("CreateJob = %v, want %v", err, engine.ErrInputCopyTooSlow)
		}
		if n := f.Count("jobs", ""); n != 0 {
			t.Errorf("%d jobs made", n)
		}
		if left, _ := f.Objects.List(f.Ctx, "jobs/"); len(left) != 0 {
			t.Errorf("objects left under jobs/ by a job that was not made: %+v", left)
		}
	})
}

// TestAJobWhoseCommitsAnswerWasLostIsMadeWithItsInput: the transaction
// that makes the job commits, but the database's answer is lost (the
// connection drops as it answers). The job is made, and keeps its input:
// the request answers it, rather than take the outage for a job not
// made and remove the input the job renders.
func TestAJobWhoseCommitsAnswerWasLostIsMadeWithItsInput(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		slug := f.uploadsSent(1, enginetest.ValidatedScene)[0]
		f.api.makeJobTx = func(ctx context.Context, fn func(*store.Tx) error) error {
			if err := f.Store.InTx(ctx, fn); err != nil {
				return err
			}
			return &outage.Error{Part: outage.Database, Err: errors.New("read the answer to COMMIT: connection reset by peer")}
		}

		job, err := f.api.CreateJob(f.Ctx, f.P, slug)
		if err != nil {
			t.Errorf("CreateJob = %v, want the job its committed transaction made", err)
		}
		up, err := f.Store.GetUploadState(f.Ctx, slug)
		if err != nil || up.JobID == "" || job != nil && up.JobID != job.ID {
			t.Fatalf("upload = %+v, %v; want it made into the job answered", up, err)
		}
		if !f.Exists(up.InputKey) {
			t.Errorf("job %s's input %s was removed", up.JobID, up.InputKey)
		}
		if n := len(f.RiverJobs(engine.DeleteObjectsArgs{}.Kind())); n != 0 {
			t.Errorf("%d removals queued, want none: the job keeps its input", n)
		}
	})
}
