package service

import (
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestCreateJobRefusesAnUploadOverTheLimit: a file over the limit (which a
// bucket takes through its presigned PUT) makes no job, and is removed.
// validatedScene is the content of the uploads of these tests.
const validatedScene = "BLENDER-v402 the scene that was validated"

func TestCreateJobRefusesAnUploadOverTheLimit(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixture(t, db)
		f.api.cfg.MaxUploadBytes = int64(len(validatedScene)) - 1
		ticket, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
		if err != nil {
			t.Fatal(err)
		}
		uploadKey := farm.UploadKey(ticket.Slug, "scene.blend")
		f.PutContent(uploadKey, validatedScene)
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
