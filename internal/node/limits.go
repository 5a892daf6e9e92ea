package node

import (
	"github.com/renderfarm/renderfarm/internal/farm"
)

// The most each object the farm stores may hold. Every Put states one, so
// that a source that runs away (a frame path that turned out to be a
// device, a log that never ends) stops at a known size instead of filling
// the disk or the bucket.
const (
	// maxFrameBytes bounds one rendered frame: twice the largest image
	// the render settings allow uncompressed (farm.MaxResolution squared,
	// four channels of 32-bit floats: 4 GiB), which leaves room for the
	// extra passes of a multilayer EXR and for the file's own headers.
	maxFrameBytes int64 = 2 * farm.MaxResolution * farm.MaxResolution * 4 * 4

	// maxStoredLogBytes bounds a kept Blender log: it is the tail of
	// Blender's output, at most 200 lines of at most 16 KiB each
	// (internal/blender keeps no more), 3.2 MiB with their line ends.
	maxStoredLogBytes int64 = 4 << 20

	// maxPreviewBytes bounds the preview video. x264 at the preview's
	// settings (CRF 23, preset veryfast, yuv420p) wrote 1.27 MB a frame
	// for 1920x1080 frames of pure noise, the hardest picture there is to
	// compress (24 frames of ffmpeg's geq=random, 30.5 MB); the most frames
	// a job may have (farm.MaxFramesPerJob, 100,000) of those come to
	// 127 GB. A real preview is far smaller.
	maxPreviewBytes int64 = 128 << 30

	// zipEntryOverhead bounds what a zip adds to each stored file: its
	// local header (30 bytes), central directory entry (46), data
	// descriptor (24), the name twice (at most farm.MaxRelativeNameBytes,
	// 512 bytes, each) and the extra fields Go's zip writer adds (modified
	// time, zip64 sizes: under 70 bytes). That is under 1.2 KiB; 2 KiB
	// rounds it up.
	zipEntryOverhead int64 = 2 << 10

	// zipEndOverhead bounds the end of a zip: the end of central directory
	// record (22 bytes) and its zip64 record and locator (76).
	zipEndOverhead int64 = 1 << 10
)

// zipLimit is the most a zip of entries can hold: the files are stored in
// it as they are (not deflated), so it is their sizes plus the zip's own
// bytes around each of them. Entries for the preview video alone are not
// in it.
func zipLimit(entries []zipEntry) int64 {
	limit := zipEndOverhead
	for _, e := range entries {
		if e.name != "" {
			limit += e.size + zipEntryOverhead
		}
	}
	return limit
}
