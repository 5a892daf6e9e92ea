package e2e

import (
	"errors"
	"io/fs"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/client"
)

// filesUnder counts the regular files under dir; a dir that is gone has
// none.
func filesUnder(t *testing.T, dir string) int {
	t.Helper()
	return len(filesIn(t, dir))
}

// filesIn lists the regular files under dir, relative to it, so that a
// count that is off can say which file it did not expect.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, path)
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDeletingAFinishedJobRemovesItsFiles renders three frames, deletes
// the job, and checks that its input and every output leave the data
// directory while the job stays listed; that a job still rendering cannot
// be deleted; and that another workspace cannot delete it.
func TestDeletingAFinishedJobRemovesItsFiles(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)

	job := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	job = renderAndWait(ctx, t, c, job.ID, client.RenderConfig{
		ColorManagementPreset: client.String("default"),
		FrameRanges:           []string{"1-3"},
		SampleCount:           client.Int(4),
	})
	if job.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", job.Status, job.FailedReason)
	}
	before, err := c.Downloads(ctx, job.ID)
	if err != nil || len(before.FrameOutputs) != 3 || before.Transforms.FramesZip == nil {
		t.Fatalf("downloads = %+v, %v; want three frames and a zip", before, err)
	}
	outputs := filepath.Join(f.DataDir, "objects", "jobs", job.ID)
	input := filepath.Join(outputs, "input")
	// Three frames, the zip, the preview video, the chunk's Blender log
	// and the job's copy of its input (the upload's own file went when the
	// job was made).
	if files := filesIn(t, outputs); len(files) != 7 {
		t.Errorf("files under %s before the delete: %q, want 7", outputs, files)
	}
	if n := filesUnder(t, input); n != 1 {
		t.Errorf("%d files under %s before the delete, want the input", n, input)
	}

	other := f.client("other studio")
	if _, err := other.DeleteJob(ctx, job.ID); !client.IsNotFound(err) {
		t.Errorf("delete by another workspace: %v, want 404", err)
	}

	deleted, err := c.DeleteJob(ctx, job.ID)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if !deleted.Output.IsDeletedForClient || deleted.Status != client.StatusCompleted || deleted.PreviewURL != nil {
		t.Errorf("delete answered status %s, output %+v, preview %v; want completed, deleted, no preview",
			deleted.Status, deleted.Output, deleted.PreviewURL)
	}

	// The files go in the background, within moments.
	deadline := time.Now().Add(30 * time.Second)
	for filesUnder(t, outputs)+filesUnder(t, input) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("30 s after the delete, %d output and %d input files are left", filesUnder(t, outputs), filesUnder(t, input))
		}
		time.Sleep(100 * time.Millisecond)
	}

	got, err := c.GetJob(ctx, job.ID)
	if err != nil || !got.Output.IsDeletedForClient || got.Status != client.StatusCompleted {
		t.Errorf("GET after the delete = %+v, %v; want the completed job, marked deleted", got, err)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Frames)+len(d.FrameOutputs) != 0 || d.Transforms.FramesZip != nil || d.Transforms.Video != nil {
		t.Errorf("downloads after the delete = %+v, want the empty shape", d)
	}
	// A URL handed out before the delete reaches nothing any more.
	_, err = c.DownloadFile(ctx, before.FrameOutputs[0].URL, filepath.Join(t.TempDir(), "frame.png"))
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
		t.Errorf("download of a deleted frame: %v, want 404", err)
	}
	if lines, err := c.JobLog(ctx, job.ID); err != nil || len(lines) != 0 {
		t.Errorf("log after the delete = %v, %v; want no lines", lines, err)
	}
	if again, err := c.DeleteJob(ctx, job.ID); err != nil || !again.Output.IsDeletedForClient {
		t.Errorf("second delete = %+v, %v; want the deleted job again", again, err)
	}
	if list, err := c.ListJobs(ctx, client.ListOptions{}); err != nil || list.Pagination.Total != 1 {
		t.Errorf("list after the delete: %+v, %v; want the job still listed", list, err)
	}

	// A job that is rendering must be canceled first.
	running := validate(ctx, t, c, submit(ctx, t, c, scene("cube.blend")).ID)
	if _, _, err := c.Render(ctx, running.ID, slowRender("1-24")); err != nil {
		t.Fatal(err)
	}
	_, err = c.DeleteJob(ctx, running.ID)
	if !client.IsInvalidState(err) || !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
		t.Errorf("delete of a rendering job: %v, want 400 INVALID_STATE", err)
	}
	if _, err := c.Cancel(ctx, running.ID); err != nil {
		t.Fatal(err)
	}
	if canceled, err := c.DeleteJob(ctx, running.ID); err != nil || !canceled.Output.IsDeletedForClient {
		t.Errorf("delete once canceled = %+v, %v; want it deleted", canceled, err)
	}
}
