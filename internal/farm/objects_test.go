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
		{farm.FramesZipKey(job), "jobs/" + job + "/frames.zip"},
		{farm.PreviewVideoKey(job), "jobs/" + job + "/preview.mp4"},
		{farm.JobLogsPrefix(job), "jobs/" + job + "/logs/"},
		{farm.JobLogKey(job, at, "chunk2"), "jobs/" + job + "/logs/20260304T080607.890-chunk2.log"},
	} {
		if tt.got != tt.want {
			t.Errorf("key %q, want %q", tt.got, tt.want)
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
