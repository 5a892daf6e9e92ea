package farm

import (
	"path"
	"strconv"
	"strings"
	"time"
)

// Where the farm keeps things in its object store (a directory under
// --data-dir, or a bucket). This file is the whole layout: every key the
// farm writes, reads, lists or removes is made here.
//
//	uploads/{slug}/{fileName}                     what an upload URL writes
//	jobs/{job}/input/{fileName}                   the job's own copy of its upload
//	jobs/{job}/frames/{task}.{generation}/{name}  a frame, stored by the holder of its task
//	jobs/{job}/frames/{task}.{generation}/{path}  every other file of a frame: a view's
//	                                              image, a File Output node's
//	                                              (nodes/{node}/{slot}/f_0001.exr), the
//	                                              preview proxy (preview/frame_0001.png)
//	jobs/{job}/outputs/{task}.{generation}/frames.zip
//	                                              every frame, zipped, by the holder of a
//	                                              finalize task
//	jobs/{job}/outputs/{task}.{generation}/compositeNodes.zip
//	                                              every File Output node's images, zipped
//	jobs/{job}/outputs/{task}.{generation}/preview.mp4
//	                                              the preview video
//	jobs/{job}/logs/{time}-{name}.log             the tail of a Blender run that failed
//
// Removing jobs/{job}/ removes everything of a job.

// UploadsPrefix holds every upload's object.
const UploadsPrefix = "uploads/"

// UploadKey is where the upload URL of slug writes fileName.
func UploadKey(slug, fileName string) string { return UploadsPrefix + slug + "/" + fileName }

// UploadSlug is the slug of an upload's key, uploads/{slug}/{fileName};
// false for a key that is not an upload's.
func UploadSlug(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, UploadsPrefix)
	if !ok {
		return "", false
	}
	slug, name, ok := strings.Cut(rest, "/")
	return slug, ok && slug != "" && name != "" && !strings.Contains(name, "/")
}

// JobsPrefix holds every job's objects.
const JobsPrefix = "jobs/"

// JobPrefix holds every object of a job: its input, frames, zip, preview
// and logs.
func JobPrefix(jobID string) string { return JobsPrefix + jobID + "/" }

// JobInputKey is the job's own copy of its input, beside its outputs, so
// that removing the job's prefix removes it too.
func JobInputKey(jobID, fileName string) string { return JobPrefix(jobID) + "input/" + fileName }

// JobFramesPrefix holds a job's frame images.
func JobFramesPrefix(jobID string) string { return JobPrefix(jobID) + "frames/" }

// FrameKey is where the holder of a task's generation stores a frame image
// named fileName. Each holder has a folder of its own, so one that was
// given up on can never replace an image its successor stored; the name a
// frame downloads as is fileName alone.
func FrameKey(jobID, taskID string, generation int, fileName string) string {
	return JobFramesPrefix(jobID) + taskID + "." + strconv.Itoa(generation) + "/" + fileName
}

// FrameOutputKey is where the holder of a task's generation stores a
// file of a frame, at rel: its path below the chunk's output directory,
// the farm's own name, never one from the scene.
func FrameOutputKey(jobID, taskID string, generation int, rel string) string {
	return FrameKey(jobID, taskID, generation, rel)
}

// JobPartsPrefix holds a job's split frames' parts until they are merged.
func JobPartsPrefix(jobID string) string { return JobPrefix(jobID) + "parts/" }

// PartKey is where the holder of a part task's generation stores the part
// of frame named fileName (blender.PartFileName): a folder per frame, and
// in it one per holder, so that a part rendered twice is stored twice and
// the merge uses the one its record names.
func PartKey(jobID string, frame int, taskID string, generation int, fileName string) string {
	return JobPartsPrefix(jobID) + strconv.Itoa(frame) + "/" + taskID + "." + strconv.Itoa(generation) + "/" + fileName
}

// The names a job's outputs besides its frames download as, which no
// frame takes (see jobFileNames).
const (
	FramesZipName         = "frames.zip"
	CompositeNodesZipName = "compositeNodes.zip"
	PreviewVideoName      = "preview.mp4"
)

// JobOutputsPrefix holds what a job's finalizings stored: a folder per
// holder of a finalize task, its zips and preview video in it.
func JobOutputsPrefix(jobID string) string { return JobPrefix(jobID) + "outputs/" }

// FinalizeOutputsPrefix is the folder of the holder of a finalize task's
// generation. Every finalizing stores its outputs in a folder of its own,
// so one that lost its task (canceled, or given to another node) can
// neither write over its successor's files nor be mistaken for them when
// what it left is removed: once its holder no longer holds its task, a
// folder whose files the job does not record is never recorded, and
// written to only by a Put its holder began before (which its holder's
// own end removes).
func FinalizeOutputsPrefix(jobID, taskID string, generation int) string {
	return JobOutputsPrefix(jobID) + taskID + "." + strconv.Itoa(generation) + "/"
}

// FramesZipKey is the zip of a job's frames that the holder of a finalize
// task's generation stores.
func FramesZipKey(jobID, taskID string, generation int) string {
	return FinalizeOutputsPrefix(jobID, taskID, generation) + FramesZipName
}

// CompositeNodesZipKey is the zip of a job's File Output nodes' images, a
// folder per node, that the holder of a finalize task's generation stores.
func CompositeNodesZipKey(jobID, taskID string, generation int) string {
	return FinalizeOutputsPrefix(jobID, taskID, generation) + CompositeNodesZipName
}

// PreviewVideoKey is a job's preview video that the holder of a finalize
// task's generation stores.
func PreviewVideoKey(jobID, taskID string, generation int) string {
	return FinalizeOutputsPrefix(jobID, taskID, generation) + PreviewVideoName
}

// OutputsHolder is the finalize task and generation whose folder holds
// key, an object under jobID's outputs; false for a key of no such folder.
func OutputsHolder(jobID, key string) (taskID string, generation int, ok bool) {
	return holderIn(JobOutputsPrefix(jobID), key)
}

// FramesHolder is the task and generation whose folder holds key, an
// object under jobID's frames (FrameKey); false for a key of no such
// folder, such as a frame stored before frames had folders (right under
// frames/).
func FramesHolder(jobID, key string) (taskID string, generation int, ok bool) {
	return holderIn(JobFramesPrefix(jobID), key)
}

// holderIn is the task and generation of the folder {task}.{generation}/
// right under prefix that holds key.
func holderIn(prefix, key string) (taskID string, generation int, ok bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", 0, false
	}
	folder, name, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return "", 0, false
	}
	dot := strings.LastIndexByte(folder, '.')
	if dot <= 0 {
		return "", 0, false
	}
	generation, err := strconv.Atoi(folder[dot+1:])
	if err != nil || generation < 1 || strconv.Itoa(generation) != folder[dot+1:] {
		return "", 0, false
	}
	return folder[:dot], generation, true
}

// LegacyJobOutputKeys are where farms before the outputs/ folders stored
// a job's zips and preview video, the same keys for every finalizing of
// the job: a job completed then still records them.
func LegacyJobOutputKeys(jobID string) []string {
	p := JobPrefix(jobID)
	return []string{p + FramesZipName, p + CompositeNodesZipName, p + PreviewVideoName}
}

// JobLogsPrefix holds the logs kept for a job.
func JobLogsPrefix(jobID string) string { return JobPrefix(jobID) + "logs/" }

// JobLogKey is where a log named name, kept at time at, goes. Keys start
// with their time, so listing the prefix lists the logs oldest first.
func JobLogKey(jobID string, at time.Time, name string) string {
	return JobLogsPrefix(jobID) + at.UTC().Format("20060102T150405.000") + "-" + name + ".log"
}

// DownloadName is the name an object downloads as: its key's last part,
// which is unique within a job (a frame's file name, frames.zip,
// preview.mp4): the folders keys are made of never show.
func DownloadName(key string) string { return path.Base(key) }
