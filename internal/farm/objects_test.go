package farm_test

import (
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func TestObjectKeyLayout(t *testing.T) {
	const job = "4b7c1d7e-0000-4000-8000-000000000001"
	at := time.Date(2026, 3, 4, 5, 6, 7, 890e6, time.FixedZone("BRT", -3*60*60))
	for _, tt := range []struct{ got, want string }{
		{farm.UploadKey("s1", "scene.blend"), "uploads/s1/scene.blend"},
		{farm.JobPrefix(job), "jobs/" + job + "/"},
		{farm.JobInputKey(job, "scene.blend"), "jobs/" + job + "/input/scene.blend"},
		{farm.JobFramesPrefix(job), "jobs/" + job + "/frames/"},
		{farm.FrameKey(job, "t1", 2, "frame_0001.png"), "jobs/" + job + "/frames/t1.2/frame_0001.png"},
		{farm.JobOutputsPrefix(job), "jobs/" + job + "/outputs/"},
		{farm.FinalizeOutputsPrefix(job, "t9", 3), "jobs/" + job + "/outputs/t9.3/"},
		{farm.FramesZipKey(job, "t9", 3), "jobs/" + job + "/outputs/t9.3/frames.zip"},
		{farm.CompositeNodesZipKey(job, "t9", 3), "jobs/" + job + "/outputs/t9.3/compositeNodes.zip"},
		{farm.PreviewVideoKey(job, "t9", 3), "jobs/" + job + "/outputs/t9.3/preview.mp4"},
		{farm.JobLogsPrefix(job), "jobs/" + job + "/logs/"},
		{farm.JobLogKey(job, at, "chunk2"), "jobs/" + job + "/logs/20260304T080607.890-chunk2.log"},
	} {
		if tt.got != tt.want {
			t.Errorf("key %q, want %q", tt.got, tt.want)
		}
	}
}

func TestOutputsHolderIsTheFinalizingThatStoredAnOutput(t *testing.T) {
	const job = "4b7c1d7e-0000-4000-8000-000000000001"
	type holder struct {
		task       string
		generation int
	}
	for key, want := range map[string]holder{
		farm.FramesZipKey(job, "t9", 3):             {"t9", 3},
		farm.PreviewVideoKey(job, "a.b", 12):        {"a.b", 12},
		"jobs/" + job + "/outputs/t9.3/":            {},
		"jobs/" + job + "/outputs/t9/frames.zip":    {},
		"jobs/" + job + "/outputs/.3/frames.zip":    {},
		"jobs/" + job + "/outputs/t9.0/frames.zip":  {},
		"jobs/" + job + "/outputs/t9.03/frames.zip": {},
		"jobs/" + job + "/outputs/t9.-1/frames.zip": {},
		"jobs/" + job + "/frames.zip":               {},
		"jobs/other/outputs/t9.3/frames.zip":        {},
	} {
		task, generation, ok := farm.OutputsHolder(job, key)
		if ok != (want.task != "") || task != want.task || generation != want.generation {
			t.Errorf("OutputsHolder(%q) = %q, %d, %v; want %q, %d", key, task, generation, ok, want.task, want.generation)
		}
	}
}

func TestFramesHolderIsTheTaskThatStoredAFrame(t *testing.T) {
	const job = "4b7c1d7e-0000-4000-8000-000000000001"
	if task, generation, ok := farm.FramesHolder(job, farm.FrameOutputKey(job, "t1", 2, "nodes/0/0/f_0001.exr")); !ok || task != "t1" || generation != 2 {
		t.Errorf("FramesHolder of a frame's file = %q, %d, %v; want t1, 2", task, generation, ok)
	}
	for _, key := range []string{farm.JobFramesPrefix(job) + "frame_0001.png", farm.FramesZipKey(job, "t1", 2)} {
		if _, _, ok := farm.FramesHolder(job, key); ok {
			t.Errorf("FramesHolder(%q) found a holder", key)
		}
	}
}

func TestUploadSlug(t *testing.T) {
	for key, want := range map[string]string{
		"uploads/s1/scene.blend": "s1",
		"uploads/s1/":            "",
		"uploads//scene.blend":   "",
		"uploads/s1/a/b.blend":   "",
		"jobs/j1/input/a.blend":  "",
		"uploads/s1":             "",
	} {
		slug, ok := farm.UploadSlug(key)
		if ok != (want != "") || slug != want && ok {
			t.Errorf("UploadSlug(%q) = %q, %v; want %q", key, slug, ok, want)
		}
	}
}
