package node

import (
	"archive/zip"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// makeOutputs removes the frame images no frame refers to, then writes the
// frames zip and, for two frames or more, the preview video; it returns
// what it made and the Blender seconds spent.
//
// The time from the last frame stored to the job completed is what a user
// waits for, so the work is overlapped. ffmpeg is started first, because
// loading its shared libraries alone takes ~50 ms of CPU (Debian's build
// links over 200, all bound at start); the orphans are removed meanwhile.
// Then each frame is read from the object store once and, as it is read,
// written both into the zip, which streams into the object store, and to
// ffmpeg. The zip is never written to a local file, nor are the frames of
// the formats ffmpeg reads from a pipe (PNG and JPEG among them): creating
// a file costs ~0.3 ms on the reference machine's disk.
func (n *Node) makeOutputs(ctx context.Context, job *farm.Job, generation int) (farm.JobFiles, float64, error) {
	var files farm.JobFiles
	frames, err := n.store.FramesOfJob(ctx, job.ID)
	if err != nil {
		return files, 0, err
	}
	var done []store.Frame
	var seconds float64
	for _, f := range frames {
		if f.Status == farm.FrameCompleted && f.ObjectKey != "" {
			done = append(done, f)
			seconds += f.RenderSeconds
		}
	}
	// Each generation of the task works in a directory of its own: an
	// ffmpeg left running by a killed holder cannot write into its
	// successor's.
	dir := filepath.Join(n.jobDir(job.ID), "finalize-"+strconv.Itoa(generation))
	if err := os.RemoveAll(dir); err != nil {
		return files, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return files, 0, err
	}
	defer os.RemoveAll(dir)

	var video *previewEncoder
	if len(done) >= 2 {
		fps := job.FinalConfig.FPS
		if fps <= 0 {
			fps = 24
		}
		video = n.startPreview(ctx, dir, path.Ext(done[0].ObjectKey), fps)
		// On every way out: an ffmpeg still running is stopped.
		defer video.stop()
	}
	if err := n.removeOrphanFrames(ctx, job.ID, frames); err != nil {
		return files, 0, err
	}
	if len(done) == 0 {
		return files, 0, fmt.Errorf("job %s has no rendered frames", job.ID)
	}

	files.FramesZipKey = farm.FramesZipKey(job.ID)
	if files.FramesZipSize, err = n.storeFramesZip(ctx, files.FramesZipKey, done, video); err != nil {
		return files, 0, err
	}
	files.PreviewKey = done[len(done)/2].ObjectKey

	if video != nil {
		if err := video.finish(); err != nil {
			// The frames are what the user asked for; a preview that
			// cannot be made is logged, not a failed job.
			n.log.Warn("preview video failed", "job", job.ID, "err", err)
			return files, seconds, nil
		}
		files.VideoKey = farm.PreviewVideoKey(job.ID)
		files.VideoFPS = video.fps
		if files.VideoSize, err = n.putFile(ctx, files.VideoKey, video.out); err != nil {
			return files, 0, err
		}
	}
	return files, seconds, nil
}

// storeFramesZip stores under key a zip of the frames, in order, each
// under its file name, and hands each frame's bytes to video (if not nil)
// as they go by. It returns the zip's size; on failure nothing is stored.
func (n *Node) storeFramesZip(ctx context.Context, key string, frames []store.Frame, video *previewEncoder) (int64, error) {
	type stored struct {
		size int64
		err  error
	}
	result := make(chan stored, 1)
	pr, pw := io.Pipe()
	go func() {
		size, err := n.objects.Put(ctx, key, pr, framesZipLimit(frames))
		// A Put that gave up before the end must not leave the writer
		// blocked (after a whole zip, nothing is written any more).
		pr.CloseWithError(err)
		result <- stored{size, err}
	}()
	err := writeFramesZip(ctx, n.objects, pw, frames, video)
	// With err nil the reader sees the end of a whole zip; otherwise Put
	// fails and stores nothing.
	pw.CloseWithError(err)
	res := <-result
	if err != nil {
		return 0, err
	}
	return res.size, res.err
}

// writeFramesZip writes the zip of frames to w. Entries are stored as
// they are, not deflated: most rendered images are compressed already (PNG,
// JPEG, WebP, JPEG 2000, EXR and TIFF with a codec), and deflating the
// others (BMP, raw Targa, DPX) costs far more time than it saves bytes:
// 0.45 s for one 1920x1080 BMP frame here, where ffmpeg encodes such a
// frame for the preview in about 0.06 s.
func writeFramesZip(ctx context.Context, objects objstore.Store, w io.Writer, frames []store.Frame, video *previewEncoder) error {
	zw := zip.NewWriter(w)
	for i, f := range frames {
		entry, err := zw.CreateHeader(&zip.FileHeader{Name: path.Base(f.ObjectKey), Method: zip.Store, Modified: f.UpdatedAt})
		if err != nil {
			return err
		}
		r, err := objects.Get(ctx, f.ObjectKey)
		if err != nil {
			return fmt.Errorf("frame %d: %w", f.Frame, err)
		}
		dst := entry
		if video != nil {
			dst = io.MultiWriter(entry, video.frame(i))
		}
		_, err = io.Copy(dst, r)
		r.Close()
		if video != nil {
			video.endFrame()
		}
		if err != nil {
			return fmt.Errorf("frame %d: %w", f.Frame, err)
		}
	}
	return zw.Close()
}

func (n *Node) putFile(ctx context.Context, key, path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return n.objects.Put(ctx, key, f, maxPreviewBytes)
}
