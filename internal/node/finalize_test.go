package node

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// finalize runs the job's finalize_outputs as a worker of the control
// queue would, on the River job's only attempt.
func (f *fixture) finalize(jobID string) error {
	f.T.Helper()
	return f.finalizeAttempt(jobID, 1, 1)
}

// finalizeAttempt is finalize on the River job's attempt of max.
func (f *fixture) finalizeAttempt(jobID string, attempt, max int) error {
	f.T.Helper()
	w := f.node.finalizeWorker()
	return w.Work(f.Ctx, attemptOf(engine.FinalizeArgs{TaskRef: f.Ref(f.finalizeTask(jobID))}, attempt, max))
}

// finalizeTask is the job's finalize task that is not over; there must
// be one.
func (f *fixture) finalizeTask(jobID string) store.Task {
	f.T.Helper()
	var open []store.Task
	for _, t := range f.Tasks(jobID, store.TaskFinalize) {
		if t.Status == store.TaskQueued || t.Status == store.TaskRunning {
			open = append(open, t)
		}
	}
	if len(open) != 1 {
		f.T.Fatalf("%d finalize tasks not over, want 1", len(open))
	}
	return open[0]
}

// storedOutputs lists what the job's finalizings stored and left: the
// objects in its outputs/ folders.
func (f *fixture) storedOutputs(jobID string) []string {
	f.T.Helper()
	return f.storedKeys(farm.JobOutputsPrefix(jobID))
}

// storedKeys lists the keys of the objects under prefix.
func (f *fixture) storedKeys(prefix string) []string {
	f.T.Helper()
	objects, err := f.Objects.List(f.Ctx, prefix)
	if err != nil {
		f.T.Fatalf("List %s: %v", prefix, err)
	}
	var keys []string
	for _, o := range objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// frameKey is where the holder of a task's generation stores a frame.
func frameKey(jobID, taskID string, generation, frame int) string {
	return farm.FrameKey(jobID, taskID, generation, enginetest.FrameName(frame))
}

func TestFinalizeRemovesFrameImagesNoFrameRefersTo(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		// No preview video: the images are not real PNGs, and a preview that
		// cannot be made is only a warning.
		f.node.cfg.FFmpeg = filepath.Join(t.TempDir(), "no-ffmpeg")
		job := f.RenderingJob(f.api, 3, 2)
		tasks := f.Tasks(job.ID, store.TaskRender)
		first, second := tasks[0], tasks[1]

		// This worker took the first chunk, stored and recorded frame 1, stored
		// frame 2's image and was killed before recording it; its heartbeat
		// went stale and the chunk was handed out again.
		f.RegisterWorker(f.node.workerID, "node-test", time.Now().Add(-time.Hour))
		old := f.startedChunk(first)
		if err := f.saveFrame(old, 1, 2); err != nil {
			t.Fatal(err)
		}
		orphan := frameKey(job.ID, first.ID, old.Generation, 2)
		f.Put(orphan)
		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		f.DispatchAll(job)
		// The new holder renders only frame 2, under its own generation's key.
		current := f.renderChunk(f.Task(first.ID))
		if current.Generation == old.Generation {
			t.Fatalf("the chunk was not handed out again: generation %d", current.Generation)
		}
		// A holder of the second chunk that never recorded anything left an
		// image too; the chunk was then rendered by its current holder.
		stray := frameKey(job.ID, second.ID, second.Generation+5, 3)
		f.Put(stray)
		last := f.renderChunk(second)
		for _, ref := range []engine.TaskRef{current, last} {
			if err := f.node.endChunk(f.Ctx, ref, nil); err != nil {
				t.Fatal(err)
			}
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Fatalf("job = %s, want finalizing", st)
		}
		// Another job's frames are not this job's to clean.
		other := f.RenderingJob(f.api, 1, 1)
		otherKey := frameKey(other.ID, "t", 1, 1)
		f.Put(otherKey)

		if err := f.finalize(job.ID); err != nil {
			t.Fatalf("finalize: %v", err)
		}

		done := f.Job(job.ID)
		if done.Status != farm.StatusCompleted {
			t.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
		}
		var referenced []string
		for n, fr := range f.Frames(job.ID) {
			if fr.Status != farm.FrameCompleted || fr.ObjectKey == "" {
				t.Errorf("frame %d = %+v, want completed with its image", n, fr)
			}
			referenced = append(referenced, fr.ObjectKey)
		}
		slices.Sort(referenced)
		want := []string{
			frameKey(job.ID, first.ID, old.Generation, 1),
			frameKey(job.ID, first.ID, current.Generation, 2),
			frameKey(job.ID, second.ID, last.Generation, 3),
		}
		slices.Sort(want)
		if !slices.Equal(referenced, want) {
			t.Errorf("frame rows refer to %v, want %v", referenced, want)
		}
		if got := f.storedKeys(farm.JobFramesPrefix(job.ID)); !slices.Equal(got, want) {
			t.Errorf("stored frame images = %v, want exactly those the frames refer to %v", got, want)
		}
		if f.Exists(orphan) || f.Exists(stray) {
			t.Errorf("orphan images left: %s %v, %s %v", orphan, f.Exists(orphan), stray, f.Exists(stray))
		}
		if !f.Exists(done.Files.FramesZipKey) {
			t.Errorf("frames zip %q not stored", done.Files.FramesZipKey)
		}
		if done.Files.VideoKey != "" {
			t.Errorf("preview %q made without ffmpeg", done.Files.VideoKey)
		}
		if !f.Exists(otherKey) {
			t.Errorf("another job's image %s was removed", otherKey)
		}
		d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{})
		if err != nil || len(d.FrameOutputs) != 3 {
			t.Errorf("downloads = %d frames, %v; want 3", len(d.FrameOutputs), err)
		}
	})
}

func TestFinalizeWithNothingToRemoveKeepsEveryFrame(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 1, 1)
		ref := f.renderChunk(f.Tasks(job.ID, store.TaskRender)[0])
		if err := f.node.endChunk(f.Ctx, ref, nil); err != nil {
			t.Fatal(err)
		}

		if err := f.finalize(job.ID); err != nil {
			t.Fatalf("finalize: %v", err)
		}

		if st := f.Job(job.ID).Status; st != farm.StatusCompleted {
			t.Fatalf("job = %s, want completed", st)
		}
		want := []string{f.Frames(job.ID)[1].ObjectKey}
		if got := f.storedKeys(farm.JobFramesPrefix(job.ID)); !slices.Equal(got, want) {
			t.Errorf("stored frame images = %v, want %v", got, want)
		}
	})
}

// requireFFmpeg skips a test that needs ffmpeg and ffprobe when they are
// not installed (scripts/test.sh installs them).
func requireFFmpeg(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
}

// grayFrames makes n images of 65x37 pixels with ffmpeg, as files with
// extension ext: image i (from 0) is a flat gray of level 10*i, so that
// every image is different and the order of a video's frames can be read
// back from their brightness. The odd size makes the preview scale.
func grayFrames(t *testing.T, n int, ext string) [][]byte {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i", "color=c=black:s=65x37:r=24",
		"-vf", "format=rgb24,geq=r=N*10:g=N*10:b=N*10", "-frames:v", strconv.Itoa(n), filepath.Join(dir, "img_%04d"+ext))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make %s images: %v: %s", ext, err, out)
	}
	images := make([][]byte, n)
	for i := range images {
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("img_%04d%s", i+1, ext)))
		if err != nil {
			t.Fatal(err)
		}
		images[i] = b
	}
	return images
}

// renderImages plays the rendering of every chunk of a job of
// len(images) frames, frame n's image being images[n-1] under Blender's
// name for it with extension ext; the last chunk's end queues the
// finalizing.
func (f *fixture) renderImages(jobID, ext string, images [][]byte) {
	f.T.Helper()
	tasks := f.Tasks(jobID, store.TaskRender)
	for _, task := range tasks {
		ref := f.Ref(task)
		f.claim(ref)
		for _, n := range f.startChunk(ref) {
			name := fmt.Sprintf("frame_%04d%s", n, ext)
			if err := f.node.storeFrame(f.Ctx, nil, ref, n, imageOnly(name, string(images[n-1])), 1, nil); err != nil {
				f.T.Fatalf("frame %d saved: %v", n, err)
			}
		}
	}
	for _, task := range tasks {
		if err := f.node.endChunk(f.Ctx, f.Ref(task), nil); err != nil {
			f.T.Fatal(err)
		}
	}
	if st := f.Job(jobID).Status; st != farm.StatusFinalizing {
		f.T.Fatalf("job = %s, want finalizing", st)
	}
}

// checkCompletedWithoutPreview finalizes a job of PNG frames images whose
// preview cannot be made, and checks that it completes with its zip and
// no preview video.
func (f *fixture) checkCompletedWithoutPreview(jobID string, images [][]byte) {
	f.T.Helper()
	if err := f.finalize(jobID); err != nil {
		f.T.Fatalf("finalize: %v", err)
	}
	done := f.Job(jobID)
	if done.Status != farm.StatusCompleted {
		f.T.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
	}
	if stored := f.storedOutputs(jobID); done.Files.VideoKey != "" || !slices.Equal(stored, []string{done.Files.FramesZipKey}) {
		f.T.Errorf("a preview was recorded (%q), or the outputs stored are %q, not the zip alone", done.Files.VideoKey, stored)
	}
	f.checkFramesZip(done, ".png", images)
}

// read returns the bytes of a stored object.
func (f *fixture) read(key string) []byte {
	f.T.Helper()
	return []byte(f.Content(key))
}

// checkFramesZip checks that the job's zip holds every frame once, in
// order, under its file name, stored as it is, with the bytes of the
// frame's image.
func (f *fixture) checkFramesZip(job *farm.Job, ext string, images [][]byte) {
	f.T.Helper()
	b := f.read(job.Files.FramesZipKey)
	if int64(len(b)) != job.Files.FramesZipSize {
		f.T.Errorf("framesZipSize = %d, the stored zip is %d bytes", job.Files.FramesZipSize, len(b))
	}
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		f.T.Fatalf("frames zip: %v", err)
	}
	if len(zr.File) != len(images) {
		f.T.Errorf("the zip holds %d entries, want %d", len(zr.File), len(images))
	}
	frames := f.Frames(job.ID)
	for i, zf := range zr.File {
		n := i + 1
		if want := fmt.Sprintf("frame_%04d%s", n, ext); zf.Name != want {
			f.T.Errorf("entry %d is %s, want %s", i, zf.Name, want)
			continue
		}
		if zf.Method != zip.Store {
			f.T.Errorf("%s is compressed with method %d, want stored", zf.Name, zf.Method)
		}
		rc, err := zf.Open()
		if err != nil {
			f.T.Fatalf("%s: %v", zf.Name, err)
		}
		got, err := io.ReadAll(rc) // also checks the CRC
		rc.Close()
		if err != nil {
			f.T.Fatalf("%s: %v", zf.Name, err)
		}
		if !bytes.Equal(got, images[n-1]) || !bytes.Equal(got, f.read(frames[n].ObjectKey)) {
			f.T.Errorf("%s holds %d bytes that are not frame %d's image", zf.Name, len(got), n)
		}
	}
}

// probedVideo is what ffprobe reports of a video stream, counting its
// frames by decoding them.
type probedVideo struct {
	Codec     string `json:"codec_name"`
	PixFmt    string `json:"pix_fmt"`
	Width     int    `json:"width"`
	Height    int    `json:"height"`
	FrameRate string `json:"r_frame_rate"`
	Frames    string `json:"nb_read_frames"`
}

// checkPreview checks that the job's preview is an H.264 MP4 that plays
// before it is fully loaded, of the frames' size made even, at fps, whose
// frames are the images in order: each brighter than the one before, as
// grayFrames makes them.
func (f *fixture) checkPreview(job *farm.Job, frames, fps int) {
	f.T.Helper()
	if job.Files.VideoKey == "" {
		f.T.Fatal("no preview video")
	}
	if job.Files.VideoFPS != float64(fps) {
		f.T.Errorf("videoFps = %v, want %d", job.Files.VideoFPS, fps)
	}
	b := f.read(job.Files.VideoKey)
	if int64(len(b)) != job.Files.VideoSize {
		f.T.Errorf("videoSize = %d, the stored video is %d bytes", job.Files.VideoSize, len(b))
	}
	if len(b) < 12 || string(b[4:8]) != "ftyp" {
		f.T.Fatal("the preview does not start with an MP4 ftyp box")
	}
	if moov, mdat := bytes.Index(b, []byte("moov")), bytes.Index(b, []byte("mdat")); moov < 0 || mdat < 0 || moov > mdat {
		f.T.Errorf("moov at %d, mdat at %d: want the index first (faststart)", moov, mdat)
	}
	path := filepath.Join(f.T.TempDir(), "preview.mp4")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		f.T.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,pix_fmt,width,height,r_frame_rate,nb_read_frames", "-of", "json", path).Output()
	if err != nil {
		f.T.Fatalf("ffprobe: %v", err)
	}
	var probe struct{ Streams []probedVideo }
	if err := json.Unmarshal(out, &probe); err != nil || len(probe.Streams) != 1 {
		f.T.Fatalf("ffprobe answered %s (%v), want one video stream", out, err)
	}
	want := probedVideo{Codec: "h264", PixFmt: "yuv420p", Width: 64, Height: 36, FrameRate: fmt.Sprintf("%d/1", fps), Frames: strconv.Itoa(frames)}
	if probe.Streams[0] != want {
		f.T.Errorf("preview = %+v, want %+v", probe.Streams[0], want)
	}
	// The frames' brightness, decoded as gray levels.
	gray, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "gray", "pipe:1").Output()
	if err != nil {
		f.T.Fatalf("decode the preview: %v", err)
	}
	size := 64 * 36
	if len(gray) != frames*size {
		f.T.Fatalf("the preview decodes to %d bytes, want %d frames of %d", len(gray), frames, size)
	}
	last := -1.0
	for i := range frames {
		sum := 0
		for _, v := range gray[i*size : (i+1)*size] {
			sum += int(v)
		}
		mean := float64(sum) / float64(size)
		if mean <= last {
			f.T.Errorf("preview frame %d has mean gray %.1f, frame %d %.1f: want the frames in order", i+1, mean, i, last)
		}
		last = mean
	}
}

// TestFinalizeZipsEveryFrameOnceAndMakesThePreview renders 24 real images
// in three chunks and finalizes: for formats ffmpeg reads from a pipe (PNG,
// JPEG) and one it reads from numbered files (TIFF).
func TestFinalizeZipsEveryFrameOnceAndMakesThePreview(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		for _, tc := range []struct {
			ext string
			fps int
		}{{".png", 24}, {".jpg", 30}, {".tif", 25}} {
			t.Run(tc.ext, func(t *testing.T) {
				t.Parallel()
				const frames = 24
				images := grayFrames(t, frames, tc.ext)
				f := newFixture(t, db)
				cfg := enginetest.RenderConfig(8)
				fps := tc.fps
				cfg.FPS = &fps
				job, _, err := f.api.Render(f.Ctx, f.P, f.ValidatedJob(f.api, frames).ID, cfg)
				if err != nil {
					t.Fatalf("Render: %v", err)
				}
				f.DispatchAll(job)
				f.renderImages(job.ID, tc.ext, images)

				if err := f.finalize(job.ID); err != nil {
					t.Fatalf("finalize: %v", err)
				}
				done := f.Job(job.ID)
				if done.Status != farm.StatusCompleted {
					t.Fatalf("job = %s (%+v), want completed", done.Status, done.FailedReason)
				}
				if done.NormalizedSeconds != frames {
					t.Errorf("normalizedSeconds = %v, want %d (1 s a frame)", done.NormalizedSeconds, frames)
				}
				f.checkFramesZip(done, tc.ext, images)
				f.checkPreview(done, frames, tc.fps)
				if _, err := os.Stat(f.node.jobDir(job.ID)); err == nil {
					entries, _ := os.ReadDir(f.node.jobDir(job.ID))
					if len(entries) > 0 {
						t.Errorf("the job's work directory still holds %v", entries)
					}
				}
			})
		}
	})
}

// TestFinalizeKeepsTheZipWhenThePreviewFails: ffmpeg gives up on images it
// cannot read while they are still being handed to it; the zip still holds
// every frame and the job completes without a preview.
func TestFinalizeKeepsTheZipWhenThePreviewFails(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 6, 3)
		// Not PNGs, and together far more than a pipe holds, so that ffmpeg
		// exits before the last ones are written to it.
		images := make([][]byte, 6)
		for i := range images {
			images[i] = bytes.Repeat([]byte{byte('a' + i)}, 256<<10)
		}
		f.renderImages(job.ID, ".png", images)

		f.checkCompletedWithoutPreview(job.ID, images)
	})
}

// TestFinalizeWithAFrameImageGoneStoresNothing: a frame's image cannot be
// read. An attempt before the last hands the task back for River's retry;
// the last fails the job. Neither stores a zip or a preview, nor leaves
// ffmpeg running.
func TestFinalizeWithAFrameImageGoneStoresNothing(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 8, 8)
		images := grayFrames(t, 8, ".png")
		f.renderImages(job.ID, ".png", images)
		if err := f.Objects.Delete(f.Ctx, f.Frames(job.ID)[5].ObjectKey); err != nil {
			t.Fatal(err)
		}

		stored := func() {
			t.Helper()
			if keys := f.storedOutputs(job.ID); len(keys) > 0 {
				t.Errorf("%q are stored", keys)
			}
			if pids := processesWith(f.node.jobDir(job.ID)); len(pids) > 0 {
				t.Errorf("processes %v still run in the job's work directory", pids)
			}
		}

		if err := f.finalizeAttempt(job.ID, 1, 3); err == nil {
			t.Fatal("finalize succeeded without frame 5's image")
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFinalizing {
			t.Errorf("job = %s after a first attempt, want finalizing", st)
		}
		if task := f.Tasks(job.ID, store.TaskFinalize)[0]; task.Status != store.TaskQueued {
			t.Errorf("finalize task = %s after a first attempt, want handed back (%s)", task.Status, store.TaskQueued)
		}
		stored()

		if err := f.finalizeAttempt(job.ID, 3, 3); err != nil {
			t.Fatalf("last attempt: %v", err)
		}
		done := f.Job(job.ID)
		if done.Status != farm.StatusFailed || done.FailedReason == nil || done.FailedReason.Name != "FINALIZE_FAILED" {
			t.Fatalf("job = %s (%+v), want failed with FINALIZE_FAILED", done.Status, done.FailedReason)
		}
		stored()
	})
}

// processesWith lists the pids of running processes whose command line
// holds s.
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(cmdline, []byte(s)) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// finalizingJob is a job of two frames, both rendered: it is finalizing.
// The node has no ffmpeg, so its finalizing stores frames.zip alone.
func (f *fixture) finalizingJob() *farm.Job {
	f.T.Helper()
	f.node.cfg.FFmpeg = filepath.Join(f.T.TempDir(), "no-ffmpeg")
	job := f.RenderingJob(f.api, 2, 2)
	f.renderImages(job.ID, ".png", [][]byte{[]byte("image 1"), []byte("image 2")})
	return job
}

// whileStoringZip runs during the first Put of a frames.zip of the job,
// before the zip is stored; during may itself finalize the job, whose
// Put it does not run again for. It answers the node's bucket, which
// counts the Puts.
func (f *fixture) whileStoringZip(jobID string, during func()) *hookedBucket {
	var fired atomic.Bool
	b := f.onHookedBucket()
	b.beforePut = func(key string) {
		if _, _, ok := farm.OutputsHolder(jobID, key); ok && path.Base(key) == farm.FramesZipName && fired.CompareAndSwap(false, true) {
			during()
		}
	}
	return b
}

// givenUpWhileStoringZip hands the job's finalize task to another holder
// (its node was given up on) during the first Put of a frames.zip of the
// job, then runs then, if not nil: a successor finalizing before the
// stale Put lands. It answers the node's bucket, which counts the Puts.
func (f *fixture) givenUpWhileStoringZip(jobID string, task store.Task, then func()) *hookedBucket {
	return f.whileStoringZip(jobID, func() {
		if err := f.Engine.Requeue(f.Ctx, f.Task(task.ID), "its node was given up on"); err != nil {
			f.T.Error(err)
			return
		}
		if then != nil {
			then()
		}
	})
}

// checkOnlyOutputIs checks that of what the job's finalizings stored,
// key alone is left.
func (f *fixture) checkOnlyOutputIs(jobID, key string) {
	f.T.Helper()
	if keys := f.storedOutputs(jobID); !slices.Equal(keys, []string{key}) {
		f.T.Errorf("outputs stored %q, want %s alone", keys, key)
	}
}

// TestNoZipIsLeftForAJobDeletedWhileItFinalizes: the job is canceled,
// its files deleted and removed while its finalizing stores frames.zip,
// before River's cancel reaches the finalizing. The finalizing, which can
// no longer record the zip, removes it: nothing stays under the deleted
// job's prefix.
func TestNoZipIsLeftForAJobDeletedWhileItFinalizes(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		f.whileStoringZip(job.ID, func() { f.deleteJobNow(job.ID) })

		if err := f.finalize(job.ID); err != nil {
			t.Fatalf("finalize: %v", err)
		}

		if keys := f.storedKeys(farm.JobPrefix(job.ID)); len(keys) != 0 {
			t.Errorf("the deleted job's prefix holds %q", keys)
		}
	})
}

// TestAZipStoredAsItsJobIsCanceledIsRemoved: the job is canceled while
// its finalizing stores frames.zip. The job records no zip, so the
// finalizing removes the one it stored, and the job's storage counts what
// it holds: its input and frames.
func TestAZipStoredAsItsJobIsCanceledIsRemoved(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		f.whileStoringZip(job.ID, func() {
			if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
				t.Error(err)
			}
		})

		if err := f.finalize(job.ID); err != nil {
			t.Fatalf("finalize: %v", err)
		}

		canceled := f.Job(job.ID)
		if canceled.Status != farm.StatusCanceled || canceled.Files != (farm.JobFiles{}) {
			t.Fatalf("job = %s with files %+v, want canceled with none", canceled.Status, canceled.Files)
		}
		if keys := f.storedOutputs(job.ID); len(keys) > 0 {
			t.Errorf("%q are stored, which the canceled job does not record", keys)
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestAFinalizingGivenUpOnLeavesItsSuccessorItsOwnZip: the finalizing
// is given to another holder while it stores frames.zip (its node was
// given up on). It stores no more, records nothing, and removes the zip
// it stored, which is in a folder of its own; the successor completes
// the job with the zip it stores in its own.
func TestAFinalizingGivenUpOnLeavesItsSuccessorItsOwnZip(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		task := f.finalizeTask(job.ID)
		f.givenUpWhileStoringZip(job.ID, task, nil)
		stale := f.Ref(task)
		if err := f.node.finalizeWorker().Work(f.Ctx, attemptOf(engine.FinalizeArgs{TaskRef: stale}, 1, 1)); err != nil {
			t.Fatalf("the finalizing given up on: %v", err)
		}
		if st, keys := f.Job(job.ID).Status, f.storedOutputs(job.ID); st != farm.StatusFinalizing || len(keys) > 0 {
			t.Fatalf("job = %s, outputs stored %q; want finalizing, none left", st, keys)
		}

		if err := f.finalize(job.ID); err != nil {
			t.Fatalf("the successor: %v", err)
		}
		done := f.Job(job.ID)
		if want := farm.FramesZipKey(job.ID, task.ID, stale.Generation+1); done.Status != farm.StatusCompleted || done.Files.FramesZipKey != want {
			t.Fatalf("job = %s with files %+v; want completed with %s", done.Status, done.Files, want)
		}
		f.checkOnlyOutputIs(job.ID, done.Files.FramesZipKey)
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestAFinalizingGivenUpOnCannotReplaceItsSuccessorsZip: the finalizing
// is given up on while it stores frames.zip, and its successor completes
// the job before the stale Put lands. The stale zip goes to the stale
// holder's folder, not over the zip the job records, and is removed as
// the stale finalizing ends: the job keeps its successor's zip, whole.
func TestAFinalizingGivenUpOnCannotReplaceItsSuccessorsZip(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		task := f.finalizeTask(job.ID)
		var successor []byte
		bucket := f.givenUpWhileStoringZip(job.ID, task, func() {
			// The stale finalizing checked that it held its task before
			// this Put; its successor now makes and records the job's zip.
			if err := f.finalize(job.ID); err != nil {
				t.Errorf("the successor: %v", err)
				return
			}
			successor = f.read(f.Job(job.ID).Files.FramesZipKey)
		})
		stale := f.Ref(task)
		if err := f.node.finalizeWorker().Work(f.Ctx, attemptOf(engine.FinalizeArgs{TaskRef: stale}, 1, 1)); err != nil {
			t.Fatalf("the finalizing given up on: %v", err)
		}

		done := f.Job(job.ID)
		if done.Status != farm.StatusCompleted || done.Files.FramesZipKey != farm.FramesZipKey(job.ID, task.ID, stale.Generation+1) {
			t.Fatalf("job = %s with files %+v; want completed with the successor's zip", done.Status, done.Files)
		}
		if puts := bucket.putsUnder(done.Files.FramesZipKey); puts != 1 {
			t.Errorf("the recorded zip was stored %d times, want once, by the finalizing that recorded it", puts)
		}
		if got := f.read(done.Files.FramesZipKey); len(successor) == 0 || !bytes.Equal(got, successor) {
			t.Errorf("the recorded zip changed after its finalizing completed (%d bytes, then %d)", len(successor), len(got))
		}
		f.checkOnlyOutputIs(job.ID, done.Files.FramesZipKey)
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestAZipAStaleFinalizingStoredAsItsNodeDiedIsRemovedLater: the
// finalizing is given up on while it stores frames.zip, its successor
// completes the job, and the stale Put lands after; then the stale node
// dies before it can remove the zip as it ends. The sweep queued when the
// task was handed out again removes it, and leaves the successor's.
func TestAZipAStaleFinalizingStoredAsItsNodeDiedIsRemovedLater(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		task := f.finalizeTask(job.ID)
		f.givenUpWhileStoringZip(job.ID, task, func() {
			if err := f.finalize(job.ID); err != nil {
				t.Errorf("the successor: %v", err)
			}
		})
		// The stale finalizing's work, which stores its zip after the
		// successor completed; its node dies before done.
		stale := f.Ref(task)
		f.claim(stale)
		if _, _, err := f.node.makeOutputs(f.Ctx, f.Job(job.ID), stale); err != nil && !errors.Is(err, errNotOurs) {
			t.Fatalf("the stale finalizing's outputs: %v", err)
		}
		done := f.Job(job.ID)
		if left := f.storedOutputs(job.ID); len(left) != 2 {
			t.Fatalf("outputs stored %q, want the successor's zip and the stale one (job %s, %+v)", left, done.Status, done.Files)
		}

		f.runRemovals()

		f.checkOnlyOutputIs(job.ID, done.Files.FramesZipKey)
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestTheZipsOfAFinalizingWhoseNodeDiedGoWithTheCancel: a finalizing
// stored frames.zip and the preview, and its node died before it could
// end. The job is canceled while it is finalizing: the cancel removes the
// zips and preview, which a canceled job does not record.
func TestTheZipsOfAFinalizingWhoseNodeDiedGoWithTheCancel(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		task := f.finalizeTask(job.ID)
		f.Put(farm.FramesZipKey(job.ID, task.ID, task.Generation))
		f.Put(farm.PreviewVideoKey(job.ID, task.ID, task.Generation))
		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatal(err)
		}
		f.runRemovals()
		if keys := f.storedOutputs(job.ID); len(keys) > 0 {
			t.Errorf("%q are stored after the cancel, which the canceled job does not record", keys)
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// refusingBucket is the node's object store, which refuses what refuse
// answers an error for, with that error: one that is no outage (a bucket
// policy's access denied, say). A Put refused stores nothing.
type refusingBucket struct {
	objstore.Store
	refuse func(op, key string) error
}

func (b *refusingBucket) Put(ctx context.Context, key string, r io.Reader, maxBytes int64) (int64, error) {
	if err := b.refuse("Put", key); err != nil {
		return 0, err
	}
	return b.Store.Put(ctx, key, r, maxBytes)
}

func (b *refusingBucket) List(ctx context.Context, prefix string) ([]objstore.Info, error) {
	if err := b.refuse("List", prefix); err != nil {
		return nil, err
	}
	return b.Store.List(ctx, prefix)
}

// TestTheLastAttemptRemovesTheZipAnEarlierOneStored: the first of two
// attempts stores frames.zip, and the bucket refuses its preview: it
// hands the task back for River's retry, at the same generation, and
// leaves the zip in their folder for that retry to store again. The
// retry, the last attempt, fails before it stores anything (the bucket
// refuses the listing of the frames): the job fails, and the zip that
// the failed job does not record goes as the task ends.
func TestTheLastAttemptRemovesTheZipAnEarlierOneStored(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		f.renderImages(job.ID, ".png", grayFrames(t, 2, ".png"))
		refused := errors.New("access denied")
		bucket := &refusingBucket{Store: f.node.objects}
		f.node.objects = bucket

		bucket.refuse = func(op, key string) error {
			if op == "Put" && path.Base(key) == farm.PreviewVideoName {
				return refused
			}
			return nil
		}
		if err := f.finalizeAttempt(job.ID, 1, 2); !errors.Is(err, refused) {
			t.Fatalf("first attempt: %v, want the preview refused", err)
		}
		if keys := f.storedOutputs(job.ID); len(keys) != 1 || path.Base(keys[0]) != farm.FramesZipName {
			t.Fatalf("outputs stored after the first attempt %q, want its frames.zip", keys)
		}

		bucket.refuse = func(op, key string) error {
			if op == "List" && key == farm.JobFramesPrefix(job.ID) {
				return refused
			}
			return nil
		}
		if err := f.finalizeAttempt(job.ID, 2, 2); err != nil {
			t.Fatalf("last attempt: %v", err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFailed {
			t.Fatalf("job = %s, want failed", st)
		}
		if keys := f.storedOutputs(job.ID); len(keys) > 0 {
			t.Errorf("%q are stored, which the failed job does not record", keys)
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestTheZipOfAFinalizingThatPanicsOnEveryAttemptGoesWithItsJob: every
// attempt at the finalizing stores frames.zip, then panics. Each hands
// the task back at the same generation and ends without sweeping; once
// River gives up, the reaper fails the job. The zip, which the failed
// job does not record, goes with it.
func TestTheZipOfAFinalizingThatPanicsOnEveryAttemptGoesWithItsJob(t *testing.T) {
	requireFFmpeg(t)
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.RenderingJob(f.api, 2, 2)
		f.renderImages(job.ID, ".png", grayFrames(t, 2, ".png"))
		task := f.finalizeTask(job.ID)
		f.RegisterWorker(f.node.workerID, "node-test", time.Now())
		const panicked = "index out of range [2] with length 2"
		f.node.objects = &refusingBucket{Store: f.node.objects, refuse: func(op, key string) error {
			if op == "Put" && path.Base(key) == farm.PreviewVideoName {
				panic(panicked)
			}
			return nil
		}}
		const attempts = 2
		for attempt := 1; attempt <= attempts; attempt++ {
			func() {
				defer func() {
					if p := recover(); p != panicked {
						t.Fatalf("attempt %d: recovered %v, want the panic", attempt, p)
					}
				}()
				_ = f.finalizeAttempt(job.ID, attempt, attempts)
			}()
		}
		if keys := f.storedOutputs(job.ID); len(keys) != 1 {
			t.Fatalf("outputs stored by the attempts %q, want their frames.zip", keys)
		}
		f.EndRiverJob(f.Task(task.ID).RiverJobID, "discarded", &rivertype.AttemptError{
			At: time.Now().UTC(), Attempt: attempts, Error: panicked, Trace: "goroutine 7 [running]:\nnode.(*Node).makeOutputs(...)",
		})

		if err := f.hk.ReapOrphans(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusFailed {
			t.Fatalf("job = %s, want failed", st)
		}
		f.runRemovals()
		if keys := f.storedOutputs(job.ID); len(keys) > 0 {
			t.Errorf("%q are stored, which the failed job does not record", keys)
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestAStaleFinalizingRemovesNoFrameARetryRendered: the finalizing reads
// the job's frames, then its node stalls. Meanwhile the job is canceled,
// frame 1 retried, rendered again under a new task and the job finalized
// again: it completes, recording frame 1's new image. The stale
// finalizing, resumed, looks for frame images no frame refers to. The
// new image is not among the frames it read, but it is the job's: it
// must stay.
func TestAStaleFinalizingRemovesNoFrameARetryRendered(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		stale := f.Ref(f.finalizeTask(job.ID))
		var stalled atomic.Bool
		f.node.objects = &refusingBucket{Store: f.node.objects, refuse: func(op, key string) error {
			if op != "List" || key != farm.JobFramesPrefix(job.ID) || !stalled.CompareAndSwap(false, true) {
				return nil
			}
			if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
				t.Error(err)
				return nil
			}
			if _, err := f.api.Retry(f.Ctx, f.P, job.ID, farm.RetryRequest{FrameRanges: []string{"1"}}); err != nil {
				t.Error(err)
				return nil
			}
			f.DispatchAll(job)
			for _, task := range f.Tasks(job.ID, store.TaskRender) {
				if task.Status == store.TaskQueued {
					if err := f.node.endChunk(f.Ctx, f.renderChunk(task), nil); err != nil {
						t.Error(err)
					}
				}
			}
			if err := f.finalize(job.ID); err != nil {
				t.Errorf("the retry's finalizing: %v", err)
			}
			return nil
		}}

		if err := f.node.finalizeWorker().Work(f.Ctx, attemptOf(engine.FinalizeArgs{TaskRef: stale}, 1, 1)); err != nil {
			t.Fatalf("the stale finalizing: %v", err)
		}

		done := f.Job(job.ID)
		if done.Status != farm.StatusCompleted {
			t.Fatalf("job = %s, want completed by the retry's finalizing", done.Status)
		}
		for n, fr := range f.Frames(job.ID) {
			if !f.Exists(fr.ObjectKey) {
				t.Errorf("frame %d's image %s, which the completed job records, was removed", n, fr.ObjectKey)
			}
		}
		if !f.Exists(done.Files.FramesZipKey) {
			t.Errorf("the zip the job records, %s, was removed", done.Files.FramesZipKey)
		}
	})
}

// TestASweepThatFailsIsLeftToTheCleanupQueue: the finalizing's first
// holder stored frames.zip and its node died; the second completes the
// job with a zip of its own, and its sweep fails as it ends (the bucket
// that failed it is still out, say). Nothing else would ever sweep the
// job's outputs again, so the sweep goes to the cleanup queue, which
// removes the first holder's zip.
func TestASweepThatFailsIsLeftToTheCleanupQueue(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job := f.finalizingJob()
		task := f.finalizeTask(job.ID)
		f.Put(farm.FramesZipKey(job.ID, task.ID, task.Generation))
		if err := f.Engine.Requeue(f.Ctx, task, "its node died"); err != nil {
			t.Fatal(err)
		}
		f.node.removeUnkeptOutputs = func(context.Context, string) (int, error) {
			return 0, errors.New("the bucket does not answer")
		}

		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}
		done := f.Job(job.ID)
		if done.Status != farm.StatusCompleted {
			t.Fatalf("job = %s, want completed", done.Status)
		}

		f.runRemovals()
		f.checkOnlyOutputIs(job.ID, done.Files.FramesZipKey)
		f.checkStorageIsWhatIsStored(job.ID)
	})
}

// TestAFrameAChunkGivenUpOnStoredAfterTheJobFinalizedIsRemovedLater: a
// chunk's worker is given up on and its chunk handed out again; the job
// renders and completes without it. The stale worker then stores its
// frame (a Put it began before) and dies before it could find the task
// gone and remove it. The sweep the requeue queued for an hour later
// removes that file, which no frame records, and leaves the job's own:
// what is stored is what the workspace's storage counts. Several chunks
// handed out at once queue one sweep.
func TestAFrameAChunkGivenUpOnStoredAfterTheJobFinalizedIsRemovedLater(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.node.cfg.FFmpeg = filepath.Join(t.TempDir(), "no-ffmpeg")
		job := f.RenderingJob(f.api, 2, 1)
		tasks := f.Tasks(job.ID, store.TaskRender)
		stale := []engine.TaskRef{f.startedChunk(tasks[0]), f.startedChunk(tasks[1])}
		for _, task := range tasks {
			if err := f.Engine.Requeue(f.Ctx, f.Task(task.ID), "worker stopped answering; its task is handed out again"); err != nil {
				t.Fatal(err)
			}
		}
		if sweeps := len(f.RiverJobs(engine.DeleteObjectsArgs{}.Kind())); sweeps != 1 {
			t.Errorf("%d sweeps queued for two chunks handed out again, want 1", sweeps)
		}
		f.DispatchAll(job)
		for _, task := range f.Tasks(job.ID, store.TaskRender) {
			if err := f.node.endChunk(f.Ctx, f.renderChunk(task), nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.finalize(job.ID); err != nil {
			t.Fatal(err)
		}
		if st := f.Job(job.ID).Status; st != farm.StatusCompleted {
			t.Fatalf("job = %s, want completed", st)
		}
		late := farm.FrameKey(job.ID, stale[0].TaskID, stale[0].Generation, "frame_0001.png")
		f.Put(late)

		f.runRemovals()

		if f.Exists(late) {
			t.Errorf("%s, stored by the chunk given up on after the job finalized, is still stored", late)
		}
		for n, fr := range f.Frames(job.ID) {
			if !f.Exists(fr.ObjectKey) {
				t.Errorf("frame %d's image %s was removed", n, fr.ObjectKey)
			}
		}
		f.checkStorageIsWhatIsStored(job.ID)
	})
}
