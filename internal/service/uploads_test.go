package service

import (
	"strings"
	"sync"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestAWorkspaceHoldsOnlySoManyUnusedUploads: a workspace that holds as
// many uploads no job was made from as the farm allows is refused another,
// with a 400 that says what to do, and no upload is stored; another
// workspace is not held back, and a job made from one of the uploads
// makes room for the next. (The farm's limit, 1,000, is lowered to 3 so
// that the test makes few uploads.)
func TestAWorkspaceHoldsOnlySoManyUnusedUploads(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxUnusedUploads = 3
		slugs := f.uploadsSent(3, enginetest.ValidatedScene)

		_, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)

		if enginetest.ErrorCode(err) != farm.CodeInvalidRequest || farm.KindOf(err) != farm.KindInvalid {
			t.Fatalf("a fourth unused upload: %v, want 400 %s", err, farm.CodeInvalidRequest)
		}
		for _, says := range []string{"holds 3 uploads that no job was made from", "nothing was done", "POST /jobs", "--upload-retention"} {
			if !strings.Contains(err.Error(), says) {
				t.Errorf("the refusal %q does not say %q", err, says)
			}
		}
		if n := f.Count("uploads", ""); n != 3 {
			t.Errorf("%d uploads stored, want the 3 made before the refusal", n)
		}

		ws, err := f.Store.EnsureWorkspace(f.Ctx, "other studio")
		if err != nil {
			t.Fatal(err)
		}
		other := farm.Principal{WorkspaceID: ws.ID, KeyID: "key-other"}
		if _, err := f.api.CreateUpload(f.Ctx, other, "scene.blend", farm.FileTypeBlend); err != nil {
			t.Errorf("another workspace's upload: %v; one workspace's unused uploads must not hold back another's", err)
		}

		if _, err := f.api.CreateJob(f.Ctx, f.P, slugs[0]); err != nil {
			t.Fatalf("CreateJob: %v", err)
		}
		if _, err := f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend); err != nil {
			t.Errorf("an upload once a job was made from another: %v; a used upload no longer counts", err)
		}
	})
}

// TestUploadsAskedForAtOnceStayWithinTheLimit: six uploads asked for at
// the same moment, where the workspace has room for three more, make
// three; the others are refused.
func TestUploadsAskedForAtOnceStayWithinTheLimit(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.api.cfg.MaxUnusedUploads = 3
		errs := make([]error, 6)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() {
				<-start
				_, errs[i] = f.api.CreateUpload(f.Ctx, f.P, "scene.blend", farm.FileTypeBlend)
			})
		}
		close(start)
		wg.Wait()

		made := 0
		for _, err := range errs {
			switch {
			case err == nil:
				made++
			case enginetest.ErrorCode(err) != farm.CodeInvalidRequest:
				t.Errorf("CreateUpload: %v, want success or %s", err, farm.CodeInvalidRequest)
			}
		}
		if made != 3 || f.Count("uploads", "") != 3 {
			t.Errorf("%d uploads made and %d stored, want 3 of each", made, f.Count("uploads", ""))
		}
	})
}

func TestTheFarmsLimitOfUnusedUploadsIsAThousand(t *testing.T) {
	if farm.MaxUnusedUploadsPerWorkspace != 1000 {
		t.Errorf("farm.MaxUnusedUploadsPerWorkspace = %d, want 1,000, as docs/api.md says", farm.MaxUnusedUploadsPerWorkspace)
	}
	if got := DefaultConfig().MaxUnusedUploads; got != farm.MaxUnusedUploadsPerWorkspace {
		t.Errorf("DefaultConfig().MaxUnusedUploads = %d, want farm.MaxUnusedUploadsPerWorkspace", got)
	}
}
