package node

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// What a retry supersedes goes with its records: the files of the frames
// it renders again, and the job's zips and preview. A retry that ends
// without finalizing (canceled, failed) leaves the job holding what its
// workspace's storage counts, and nothing else.

// runRemovals carries out every delete_objects River job queued so far,
// as a worker of the cleanup queue would. Carrying one out again removes
// nothing more.
func (f *fixture) runRemovals() {
	f.T.Helper()
	for _, rj := range f.RiverJobs("delete_objects") {
		var args engine.DeleteObjectsArgs
		if err := json.Unmarshal(rj.Args, &args); err != nil {
			f.T.Fatalf("decode %s: %v", rj.Args, err)
		}
		if err := f.hk.DeleteObjects(f.Ctx, args); err != nil {
			f.T.Fatalf("delete_objects %s: %v", rj.Args, err)
		}
	}
}

// checkStorageIsWhatIsStored checks that the workspace's storage, its
// only job being jobID, counts exactly the bytes stored under the job's
// prefix.
func (f *fixture) checkStorageIsWhatIsStored(jobID string) {
	f.T.Helper()
	objects, err := f.Objects.List(f.Ctx, farm.JobPrefix(jobID))
	if err != nil {
		f.T.Fatal(err)
	}
	var stored int64
	var keys []string
	for _, o := range objects {
		stored += o.Size
		keys = append(keys, o.Key)
	}
	used, err := f.Store.GetWorkspaceStorage(f.Ctx, f.P.WorkspaceID, "")
	if err != nil {
		f.T.Fatal(err)
	}
	if used.UsedBytes != stored {
		f.T.Errorf("the workspace's storage counts %d bytes; %d are stored under the job's prefix: %q", used.UsedBytes, stored, keys)
	}
}

// TestARetryThatIsCanceledLeavesNoFileItSuperseded: a job of two frames,
// each with both views, two File Output nodes' images and a proxy, is
// rendered and finalized (frames.zip, compositeNodes.zip, preview.mp4).
// Both frames are retried, and the retry is canceled before a frame
// renders. The frames' files and the job's zips and preview go with
// their records: once the removal the retry queued has run, the job
// holds its input alone, which is what its workspace's storage counts.
func TestARetryThatIsCanceledLeavesNoFileItSuperseded(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		proxies := grayFrames(t, 2, ".jpg")
		job := f.RenderingJob(f.api, 2, 2)
		done := f.renderAndFinalize(job.ID, func(n int) []frameFile { return stereoFrameFiles(n, proxies[n-1]) })
		if done.Files.CompositeNodesZipKey == "" || done.Files.VideoKey == "" {
			t.Fatalf("files = %+v, want both zips and the preview", done.Files)
		}
		f.checkStorageIsWhatIsStored(job.ID)
		superseded := append(f.storedKeys(farm.JobFramesPrefix(job.ID)), f.storedOutputs(job.ID)...)
		if len(superseded) < 2+3 {
			t.Fatalf("stored %q, want the frames' files, both zips and the preview", superseded)
		}

		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"1-2"}}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("cancel: %v", err)
		}
		f.runRemovals()

		for _, key := range superseded {
			if f.Exists(key) {
				t.Errorf("%s is still stored", key)
			}
		}
		if got := f.storedKeys(farm.JobPrefix(job.ID)); len(got) != 1 || !strings.HasPrefix(got[0], farm.JobPrefix(job.ID)+"input/") {
			t.Errorf("the job holds %q, want its input alone", got)
		}
		f.checkStorageIsWhatIsStored(job.ID)
		if d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{}); err != nil || len(d.FrameOutputs) != 0 || d.Transforms.FramesZip != nil {
			t.Errorf("downloads = %+v, %v; want nothing listed", d, err)
		}
	})
}

// TestARetryOfTheFailedFramesLeavesTheCompletedOnesAlone: frame 1 of a job
// completed, frame 2 failed, failing the job. Retrying the failed frames
// removes nothing of frame 1: its files stay stored, recorded and listed
// for download, and the retry renders frame 2 alone.
func TestARetryOfTheFailedFramesLeavesTheCompletedOnesAlone(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 1)
		tasks := f.Tasks(job.ID, store.TaskRender)
		first := f.startedChunk(tasks[0])
		if err := f.node.storeFrame(f.Ctx, nil, first, 1, stereoFrameFiles(1, []byte("proxy 1")), 1, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.node.endChunk(f.Ctx, first, nil); err != nil {
			t.Fatal(err)
		}
		second := f.startedChunk(tasks[1])
		if err := f.node.endChunk(f.Ctx, second, &blender.RenderError{Frame: 2, Line: "Error: out of memory"}); err != nil {
			t.Fatal(err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFailed {
			t.Fatalf("job = %s, want failed", st)
		}
		kept := f.storedKeys(farm.JobFramesPrefix(job.ID))
		if len(kept) != 5 {
			t.Fatalf("frame 1 stored %q, want its 5 files", kept)
		}
		before := f.Frames(job.ID)[1]

		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{Frames: "failed"}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		f.runRemovals()

		if got := f.storedKeys(farm.JobFramesPrefix(job.ID)); !slices.Equal(got, kept) {
			t.Errorf("stored under frames/: %q, want frame 1's files %q", got, kept)
		}
		if after := f.Frames(job.ID)[1]; after.Status != farm.FrameCompleted || after.ObjectKey != before.ObjectKey || after.SizeBytes != before.SizeBytes {
			t.Errorf("frame 1 = %+v, want it as it was: %+v", after, before)
		}
		if n := f.Count("frame_outputs", "job_id = ? AND frame = 1", job.ID); n != 5 {
			t.Errorf("frame 1 has %d files recorded, want its 5", n)
		}
		d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{})
		if err != nil || len(d.FrameOutputs) != 2 || len(d.CompositeNodeOutputs) != 2 {
			t.Errorf("downloads list %d frame outputs and %d composite node outputs, %v; want frame 1's 2 views and 2 nodes' images",
				len(d.FrameOutputs), len(d.CompositeNodeOutputs), err)
		}
		f.checkStorageIsWhatIsStored(job.ID)
		if queued := f.FrameStatuses(job.ID); queued[2] != farm.FrameQueued {
			t.Errorf("frames = %v, want frame 2 queued again", queued)
		}
	})
}

// TestARetryKeepsAFileAnotherFrameStillRefersTo: two frames of a chunk
// recorded one and the same file of a File Output node (a node that
// writes one name for every frame). Retrying one of them removes its own
// image, but not the file the other frame still refers to.
func TestARetryKeepsAFileAnotherFrameStillRefersTo(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		ref := f.startedChunk(f.Tasks(job.ID, store.TaskRender)[0])
		for n := 1; n <= 2; n++ {
			files := append(imageOnly(fmt.Sprintf("frame_%04d.png", n), "image"), frameFile{
				rel: "nodes/0/0/mask.png", body: func() io.Reader { return strings.NewReader("mask") },
				output: farm.FrameOutput{Kind: farm.OutputCompositeNode, CompositeNodeName: "Mask", FileName: "Mask/mask.png", RelativePath: "Mask/mask.png"},
			})
			if err := f.node.storeFrame(f.Ctx, nil, ref, n, files, 1, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.node.endChunk(f.Ctx, ref, nil); err != nil {
			t.Fatal(err)
		}
		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}
		shared := farm.FrameOutputKey(job.ID, ref.TaskID, ref.Generation, "nodes/0/0/mask.png")
		second := f.Frames(job.ID)[2].ObjectKey

		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"2"}}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		f.runRemovals()

		if f.Exists(second) {
			t.Errorf("frame 2's image %s is still stored", second)
		}
		if !f.Exists(shared) || !f.Exists(f.Frames(job.ID)[1].ObjectKey) {
			t.Errorf("frame 1's files were removed: %q", f.storedKeys(farm.JobFramesPrefix(job.ID)))
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestARetrysRemovalRunLateKeepsWhatTheRetryMade: the removal a retry
// queued runs only once the retry has rendered and finalized again. The
// frames' new files are under new keys, and so are the new zips and
// preview, in the folder of the new finalize task: the removal takes
// the zip the retry superseded and leaves the one the job now records.
func TestARetrysRemovalRunLateKeepsWhatTheRetryMade(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		f.renderImages(job.ID, ".png", [][]byte{[]byte("first 1"), []byte("first 2")})
		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}
		superseded := f.Job(job.ID).Files.FramesZipKey
		if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"1-2"}}); err != nil {
			t.Fatalf("retry: %v", err)
		}
		f.DispatchAll(job)
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if task.Status != store.TaskQueued {
				continue
			}
			ref := f.renderChunk(task)
			if err := f.node.endChunk(f.Ctx, ref, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}
		done := f.Job(job.ID)
		if done.Status != farm.StatusCompleted || done.Files.FramesZipKey == superseded {
			t.Fatalf("job = %s with zip %s, want completed with a new zip", done.Status, done.Files.FramesZipKey)
		}

		f.runRemovals()

		f.checkOnlyOutputIs(job.ID, done.Files.FramesZipKey)

		for _, key := range []string{done.Files.FramesZipKey, f.Frames(job.ID)[1].ObjectKey, f.Frames(job.ID)[2].ObjectKey} {
			if !f.Exists(key) {
				t.Errorf("%s, which the retry made, was removed", key)
			}
		}
		if got := len(f.storedKeys(farm.JobFramesPrefix(job.ID))); got != 2 {
			t.Errorf("%d files stored under frames/, want the 2 the retry made", got)
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}
