package service

import (
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
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
