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
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// makeOutputs removes the frame images no frame refers to, then writes the
// frames zip, the compositeNodes zip when the frames made images of File
// Output nodes, and, for two frames or more, the preview video; it returns
// what it made and the Blender seconds spent. They go in the folder of
// the finalizing's own task and generation (farm.FinalizeOutputsPrefix),
// so that one that lost its task cannot write over its successor's.
// Before each of them is stored, it checks that the finalizing still
// holds its task (ref): errNotOurs if not, which stores nothing for a
// job that was canceled or deleted meanwhile. What it stored and did not
// complete the job with is removed as it ends (finalizing.done).
//
// The time from the last frame stored to the job completed is what a user
// waits for, so the work is overlapped. ffmpeg is started first, because
// loading its shared libraries alone takes ~50 ms of CPU (Debian's build
// links over 200, all bound at start); the orphans are removed meanwhile.
// Then each frame is read from the object store once and, as it is read,
// written both into the zip, which streams into the object store, and to
// ffmpeg. The zip is never written to a local file, nor are the frames of
// the formats ffmpeg reads from a pipe (PNG and JPEG among them): creating
// a file costs ~0.3 ms on the reference machine's disk. A frame whose
// preview comes from a proxy (an OpenEXR frame's JPEG) has its proxy read
// for ffmpeg alone.
func (n *Node) makeOutputs(ctx context.Context, job *farm.Job, ref engine.TaskRef) (farm.JobFiles, float64, error) {
	var files farm.JobFiles
	// Read before the frames, for removeOrphanFrames.
	tasks, err := n.store.TasksOfJob(ctx, job.ID, "")
	if err != nil {
		return files, 0, err
	}
	frames, err := n.store.FramesOfJob(ctx, job.ID)
	if err != nil {
		return files, 0, err
	}
	outputs, err := n.store.FrameOutputsOfJob(ctx, job.ID)
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
	dir := filepath.Join(n.jobDir(job.ID), "finalize-"+strconv.Itoa(ref.Generation))
	if err := os.RemoveAll(dir); err != nil {
		return files, 0, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return files, 0, err
	}
	defer os.RemoveAll(dir)

	framesZip, nodesZip, previews := zipEntries(done, outputs)
	var video *previewEncoder
	if len(previews) >= 2 {
		fps := job.FinalConfig.FPS
		if fps <= 0 {
			fps = 24
		}
		video = n.startPreview(ctx, dir, path.Ext(previews[0]), fps)
		// On every way out: an ffmpeg still running is stopped.
		defer video.stop()
	}
	if err := n.removeOrphanFrames(ctx, job.ID, tasks, frames, outputs); err != nil {
		return files, 0, err
	}
	if len(done) == 0 {
		return files, 0, fmt.Errorf("job %s has no rendered frames", job.ID)
	}

	if err := n.stillHolds(ctx, ref); err != nil {
		return files, 0, err
	}
	files.FramesZipKey = farm.FramesZipKey(job.ID, ref.TaskID, ref.Generation)
	if files.FramesZipSize, err = n.storeZip(ctx, files.FramesZipKey, framesZip, video); err != nil {
		return files, 0, err
	}
	if len(nodesZip) > 0 {
		if err := n.stillHolds(ctx, ref); err != nil {
			return files, 0, err
		}
		files.CompositeNodesZipKey = farm.CompositeNodesZipKey(job.ID, ref.TaskID, ref.Generation)
		if files.CompositeNodesZipSize, err = n.storeZip(ctx, files.CompositeNodesZipKey, nodesZip, nil); err != nil {
			return files, 0, err
		}
	}
	files.PreviewKey = previews[len(previews)/2]

	if video != nil {
		if err := video.finish(); err != nil {
			// The frames are what the user asked for; a preview that
			// cannot be made is logged, not a failed job.
			n.log.Warn("preview video failed", "job", job.ID, "err", err)
			return files, seconds, nil
		}
		if err := n.stillHolds(ctx, ref); err != nil {
			return files, 0, err
		}
		files.VideoKey = farm.PreviewVideoKey(job.ID, ref.TaskID, ref.Generation)
		files.VideoFPS = video.fps
		if files.VideoSize, err = n.objects.Put(ctx, files.VideoKey, video.video, maxPreviewBytes); err != nil {
			return files, 0, err
		}
	}
	return files, seconds, nil
}

// zipEntry is one object read for a zip the finalizing makes, or for the
// preview video, or both.
type zipEntry struct {
	// name is the entry's name in the zip; "" for an object read for the
	// preview video alone (a proxy).
	name     string
	key      string
	size     int64
	modified time.Time
	// video says the object is the next frame of the preview video.
	video bool
}

// zipEntries lists, in frame order, what the frames zip holds (every
// image of each frame: its views), what the compositeNodes zip holds (the
// File Output nodes' images, a folder per node), and the objects the
// preview video is made of, one per frame: the frame's proxy if it has
// one, else its first image. The frames zip's entries carry the preview's
// frames too, marked, so that each is read once; a proxy is an entry of
// its own, for the video only. A frame of a job rendered before its files
// were recorded one by one is its ObjectKey alone. Names are made unique
// in each zip.
//
// ffmpeg reads the preview's images in one format, the first one's, so
// the video is made of the images of the format most frames offer: a
// frame whose preview is of another (an OpenEXR frame whose proxy could
// not be made, among frames that have theirs) shows the nearest frame
// before it that has one of that format (after it, at the start), read
// again for the video, so that the video keeps every frame's place.
func zipEntries(done []store.Frame, outputs map[int][]farm.FrameOutput) (framesZip, nodesZip []zipEntry, previews []string) {
	frameNames, nodeNames := map[string]bool{}, map[string]bool{}
	own, proxy := make([]string, len(done)), make([]bool, len(done))
	filesOf := make([][]farm.FrameOutput, len(done))
	for i, f := range done {
		files := outputs[f.Frame]
		if len(files) == 0 {
			name := farm.DownloadName(f.ObjectKey)
			files = []farm.FrameOutput{{Kind: farm.OutputFrame, FileName: name, RelativePath: name, ObjectKey: f.ObjectKey, SizeBytes: f.SizeBytes}}
		}
		filesOf[i] = files
		own[i] = f.ObjectKey
		for _, o := range files {
			if o.Kind == farm.OutputPreview {
				own[i], proxy[i] = o.ObjectKey, true
			}
		}
	}
	previews = previewSequence(own, proxy)
	for i, f := range done {
		read := false // the frame's preview was read with its files
		for _, o := range filesOf[i] {
			entry := zipEntry{key: o.ObjectKey, size: o.SizeBytes, modified: f.UpdatedAt, video: o.ObjectKey == previews[i]}
			switch o.Kind {
			case farm.OutputFrame:
				entry.name = farm.Unique(o.RelativePath, frameNames)
				framesZip = append(framesZip, entry)
			case farm.OutputCompositeNode:
				entry.name, entry.video = farm.Unique(o.RelativePath, nodeNames), false
				nodesZip = append(nodesZip, entry)
			case farm.OutputPreview:
				if !entry.video {
					continue // another frame's preview stands in for this one
				}
				framesZip = append(framesZip, entry)
			}
			read = read || entry.video
		}
		if !read {
			framesZip = append(framesZip, zipEntry{key: previews[i], video: true})
		}
	}
	return framesZip, nodesZip, previews
}

// previewSequence answers the preview video's image for each frame, given
// each frame's own and whether it is a proxy: its own when of the video's
// format, else the nearest earlier frame's of that format, else the
// nearest later one's. The video's format is the proxies' when any frame
// has one (a proxy is made to be seen, its OpenEXR frame is linear light),
// else the one most frames' images are in (the earliest frame's among
// formats as common).
func previewSequence(own []string, proxy []bool) []string {
	counts := map[string]int{}
	format := ""
	for i, key := range own {
		ext := path.Ext(key)
		if proxy[i] {
			format = ext
			break
		}
		counts[ext]++
		if format == "" || counts[ext] > counts[format] {
			format = ext
		}
	}
	sequence := make([]string, len(own))
	last := ""
	for i, key := range own {
		if path.Ext(key) == format {
			last = key
		}
		sequence[i] = last
	}
	last = ""
	for i := len(own) - 1; i >= 0; i-- {
		if path.Ext(own[i]) == format {
			last = own[i]
		}
		if sequence[i] == "" {
			sequence[i] = last
		}
	}
	return sequence
}

// storeZip stores under key a zip of entries, in order, and hands the
// bytes of those for the preview video (if not nil) to it as they go by.
// It returns the zip's size; on failure nothing is stored.
func (n *Node) storeZip(ctx context.Context, key string, entries []zipEntry, video *previewEncoder) (int64, error) {
	type stored struct {
		size int64
		err  error
	}
	result := make(chan stored, 1)
	pr, pw := io.Pipe()
	go func() {
		size, err := n.objects.Put(ctx, key, pr, zipLimit(entries))
		// A Put that gave up before the end must not leave the writer
		// blocked (after a whole zip, nothing is written any more).
		pr.CloseWithError(err)
		result <- stored{size, err}
	}()
	err := writeZip(ctx, n.objects, pw, entries, video)
	// With err nil the reader sees the end of a whole zip; otherwise Put
	// fails and stores nothing.
	pw.CloseWithError(err)
	res := <-result
	if err != nil {
		return 0, err
	}
	return res.size, res.err
}

// writeZip writes the zip of entries to w. Entries are stored as they
// are, not deflated: most rendered images are compressed already (PNG,
// JPEG, WebP, JPEG 2000, EXR and TIFF with a codec), and deflating the
// others (BMP, raw Targa, DPX) costs far more time than it saves bytes:
// 0.45 s for one 1920x1080 BMP frame here, where ffmpeg encodes such a
// frame for the preview in about 0.06 s.
func writeZip(ctx context.Context, objects objstore.Store, w io.Writer, entries []zipEntry, video *previewEncoder) error {
	zw := zip.NewWriter(w)
	videoFrame := 0
	for _, e := range entries {
		var dst []io.Writer
		if e.name != "" {
			entry, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store, Modified: e.modified})
			if err != nil {
				return err
			}
			dst = append(dst, entry)
		}
		if video != nil && e.video {
			dst = append(dst, video.frame(videoFrame))
			videoFrame++
		}
		if len(dst) == 0 {
			continue
		}
		r, err := objects.Get(ctx, e.key)
		if err != nil {
			return fmt.Errorf("%s: %w", e.key, err)
		}
		_, err = io.Copy(io.MultiWriter(dst...), r)
		r.Close()
		if video != nil && e.video {
			video.endFrame()
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.key, err)
		}
	}
	return zw.Close()
}
