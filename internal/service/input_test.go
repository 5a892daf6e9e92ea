package service

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
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
