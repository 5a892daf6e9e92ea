package node

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// stereoFrameFiles are the files the runner hands over for frame n of a
// stereo scene with two File Output nodes, rendered as OpenEXR: both
// views, a view of each node's slot, and the JPEG proxy of the preview.
func stereoFrameFiles(n int, proxy []byte) []frameFile {
	left, right := "left", "right"
	file := func(rel string, o farm.FrameOutput, body string) frameFile {
		return frameFile{rel: rel, output: o, body: func() io.Reader { return bytes.NewReader([]byte(body)) }}
	}
	return []frameFile{
		file(fmt.Sprintf("frame_%04d_L.exr", n), farm.FrameOutput{Kind: farm.OutputFrame, View: &left,
			FileName: fmt.Sprintf("shot_%04d_L.exr", n), RelativePath: fmt.Sprintf("render/shot_%04d_L.exr", n)}, fmt.Sprintf("v/1\x01 left %d", n)),
		file(fmt.Sprintf("frame_%04d_R.exr", n), farm.FrameOutput{Kind: farm.OutputFrame, View: &right,
			FileName: fmt.Sprintf("shot_%04d_R.exr", n), RelativePath: fmt.Sprintf("render/shot_%04d_R.exr", n)}, fmt.Sprintf("v/1\x01 right %d", n)),
		file(fmt.Sprintf("nodes/0/0/f_%04d_L.exr", n), farm.FrameOutput{Kind: farm.OutputCompositeNode, View: &left, CompositeNodeName: "Depth Out",
			FileName: fmt.Sprintf("Depth_Out/depth_%04d_L.exr", n), RelativePath: fmt.Sprintf("Depth_Out/depth_%04d_L.exr", n)}, fmt.Sprintf("depth %d", n)),
		file(fmt.Sprintf("nodes/1/0/f_%04d_L.png", n), farm.FrameOutput{Kind: farm.OutputCompositeNode, View: &left, CompositeNodeName: "AO",
			FileName: fmt.Sprintf("AO/ao_%04d_L.png", n), RelativePath: fmt.Sprintf("AO/ao_%04d_L.png", n)}, fmt.Sprintf("ao %d", n)),
		{rel: fmt.Sprintf("preview/frame_%04d_L.jpg", n), body: func() io.Reader { return bytes.NewReader(proxy) },
			output: farm.FrameOutput{Kind: farm.OutputPreview, FileName: fmt.Sprintf("frame_%04d_L.jpg", n), RelativePath: fmt.Sprintf("preview/frame_%04d_L.jpg", n)}},
	}
}

// zipEntriesOf reads a stored zip's entry names and contents.
func (f *fixture) zipEntriesOf(key string, size int64) ([]string, map[string]string) {
	f.T.Helper()
	b := f.read(key)
	if int64(len(b)) != size {
		f.T.Errorf("%s is %d bytes, its job says %d", key, len(b), size)
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.T.Fatalf("%s: %v", key, err)
	}
	var names []string
	bodies := map[string]string{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			f.T.Fatal(err)
		}
		body, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			f.T.Fatal(err)
		}
		names = append(names, zf.Name)
		bodies[zf.Name] = string(body)
	}
	return names, bodies
}

// TestEveryFileOfAFrameIsStoredListedAndZipped: a frame's files, its views,
// its File Output nodes' images and its preview proxy, are stored and
// recorded with the frame; the downloads list each view as a frame output
// and each node's image as a composite node output, never the proxy; the
// frames zip holds the views under the names the scene gives them, the
// compositeNodes zip a folder per node, and the preview is made of the
// proxies, in frame order.
func TestEveryFileOfAFrameIsStoredListedAndZipped(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		const frames = 4
		proxies := grayFrames(t, frames, ".jpg")
		job := f.RenderingJob(f.api, frames, 2)
		done := f.renderAndFinalize(job.ID, func(n int) []frameFile { return stereoFrameFiles(n, proxies[n-1]) })

		d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(d.FrameOutputs) != 2*frames || len(d.Frames) != 2*frames || len(d.CompositeNodeOutputs) != 2*frames || len(d.CompositeNodes) != 2*frames {
			t.Fatalf("downloads list %d frame outputs and %d composite node outputs; want %d of each", len(d.FrameOutputs), len(d.CompositeNodeOutputs), 2*frames)
		}
		for i, o := range d.FrameOutputs {
			n, view := i/2+1, []string{"left", "right"}[i%2]
			if *o.Frame != n || o.View == nil || *o.View != view || o.FileName != fmt.Sprintf("shot_%04d_%s.exr", n, []string{"L", "R"}[i%2]) ||
				o.CompositeNodeName != nil || o.SizeBytes == 0 {
				t.Errorf("frame output %d = %+v (view %v), want frame %d's %s view", i, o, deref(o.View), n, view)
			}
		}
		for i, o := range d.CompositeNodeOutputs {
			n, node := i/2+1, []string{"Depth Out", "AO"}[i%2]
			if *o.Frame != n || o.CompositeNodeName == nil || *o.CompositeNodeName != node || o.RelativePath != o.FileName {
				t.Errorf("composite node output %d = %+v, want frame %d of %s", i, o, n, node)
			}
		}

		names, _ := f.zipEntriesOf(done.Files.FramesZipKey, done.Files.FramesZipSize)
		var want []string
		for n := 1; n <= frames; n++ {
			want = append(want, fmt.Sprintf("render/shot_%04d_L.exr", n), fmt.Sprintf("render/shot_%04d_R.exr", n))
		}
		if !slices.Equal(names, want) {
			t.Errorf("frames.zip holds %q, want %q", names, want)
		}
		if task := f.Tasks(job.ID, store.TaskFinalize)[0]; done.Files.CompositeNodesZipKey != farm.CompositeNodesZipKey(job.ID, task.ID, task.Generation) {
			t.Fatalf("compositeNodesZipKey = %q", done.Files.CompositeNodesZipKey)
		}
		names, bodies := f.zipEntriesOf(done.Files.CompositeNodesZipKey, done.Files.CompositeNodesZipSize)
		want = nil
		for n := 1; n <= frames; n++ {
			want = append(want, fmt.Sprintf("Depth_Out/depth_%04d_L.exr", n), fmt.Sprintf("AO/ao_%04d_L.png", n))
		}
		if !slices.Equal(names, want) || bodies["AO/ao_0003_L.png"] != "ao 3" {
			t.Errorf("compositeNodes.zip holds %q, want %q with each node's images", names, want)
		}
		if d.Transforms.CompositeNodesZip == nil || d.Transforms.CompositeNodesZipOutputs == nil ||
			d.Transforms.CompositeNodesZipOutputs.SizeBytes != done.Files.CompositeNodesZipSize {
			t.Errorf("downloads' transforms = %+v, want the compositeNodes zip", d.Transforms)
		}
		f.checkPreview(done, frames, 24)
		if !bytes.Equal(f.read(done.Files.PreviewKey), proxies[frames/2]) {
			t.Errorf("previewKey %s is not the middle frame's proxy", done.Files.PreviewKey)
		}
		// Every stored file is one a frame recorded.
		stored := f.storedKeys(farm.JobFramesPrefix(job.ID))
		if len(stored) != 5*frames {
			t.Errorf("%d files stored under frames/, want %d", len(stored), 5*frames)
		}
	})
}

// renderAndFinalize plays the rendering of every chunk of the job, frame
// n's files being filesOf(n), then its finalizing, and answers the job,
// which must have completed.
func (f *fixture) renderAndFinalize(jobID string, filesOf func(n int) []frameFile) *farm.Job {
	f.T.Helper()
	tasks := f.Tasks(jobID, store.TaskRender)
	for _, task := range tasks {
		ref := f.Ref(task)
		f.claim(ref)
		for _, n := range f.startChunk(ref) {
			if err := f.node.storeFrame(f.Ctx, nil, ref, n, filesOf(n), 1, nil); err != nil {
				f.T.Fatalf("frame %d: %v", n, err)
			}
		}
	}
	for _, task := range tasks {
		if err := f.node.endChunk(f.Ctx, f.Ref(task), nil); err != nil {
			f.T.Fatal(err)
		}
	}
	if err := f.finalize(jobID); err != nil {
		f.T.Fatalf("finalize: %v", err)
	}
	done := f.Job(jobID)
	if done.Status != farm.StatusCompleted {
		f.T.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
	}
	return done
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestAFrameWithoutItsProxyKeepsItsPlaceInThePreview: OpenEXR frames whose
// JPEG proxy could not be made (frames 1 and 3 of 4) are not images ffmpeg
// can read among the others' JPEGs: the preview shows the nearest proxy in
// their place (frame 2's for both: before frame 3, after frame 1), so it
// still has a frame for each frame, and the zip still every view.
func TestAFrameWithoutItsProxyKeepsItsPlaceInThePreview(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		const frames = 4
		proxies := grayFrames(t, frames, ".jpg")
		job := f.RenderingJob(f.api, frames, 2)
		done := f.renderAndFinalize(job.ID, func(n int) []frameFile {
			files := stereoFrameFiles(n, proxies[n-1])
			if n%2 == 1 {
				files = files[:len(files)-1] // no proxy
			}
			return files
		})
		names, _ := f.zipEntriesOf(done.Files.FramesZipKey, done.Files.FramesZipSize)
		if len(names) != 2*frames {
			t.Errorf("frames.zip holds %q, want both views of %d frames", names, frames)
		}
		if done.Files.VideoKey == "" {
			t.Fatal("no preview video")
		}
		means := f.previewMeans(done.Files.VideoKey)
		if len(means) != frames {
			t.Fatalf("the preview has %d frames, want %d", len(means), frames)
		}
		// The proxies are ever brighter (grayFrames): frame 2's stands in
		// for frames 1 and 3, and frame 4's is brighter still.
		for _, i := range []int{0, 2} {
			if d := means[i] - means[1]; d < -1 || d > 1 {
				t.Errorf("preview frame %d has mean gray %.1f, frame 2 %.1f: want frame 2's proxy in its place", i+1, means[i], means[1])
			}
		}
		if means[3] <= means[1]+5 {
			t.Errorf("preview frame 4 has mean gray %.1f, frame 2 %.1f: want its own, brighter proxy", means[3], means[1])
		}
	})
}

// previewMeans decodes the stored preview video and answers the mean gray
// level of each of its frames.
func (f *fixture) previewMeans(key string) []float64 {
	f.T.Helper()
	path := filepath.Join(f.T.TempDir(), "preview.mp4")
	if err := os.WriteFile(path, f.read(key), 0o644); err != nil {
		f.T.Fatal(err)
	}
	gray, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1").Output()
	if err != nil {
		f.T.Fatalf("decode the preview: %v", err)
	}
	const size = 64 * 36
	var means []float64
	for i := 0; i+size <= len(gray); i += size {
		sum := 0
		for _, v := range gray[i : i+size] {
			sum += int(v)
		}
		means = append(means, float64(sum)/size)
	}
	return means
}
