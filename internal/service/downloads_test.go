package service

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestAJobsDownloadsComeAPageAtATime: a job of seven frames, one of
// which made a compositor output too (eight files), with a service that
// lists at most five files in one answer. Asked for everything, it says
// to ask a page at a time; asked for pages of three, it lists the files
// in frame order, frames and compositor outputs together, the zip and the
// video on every page, and a page past the last lists none.
func TestAJobsDownloadsComeAPageAtATime(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, api := jobOfEightFiles(t, f)

		_, err := api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{})
		var refused *farm.Error
		if !errors.As(err, &refused) || refused.Kind != farm.KindInvalid || refused.Field != "page" || !strings.Contains(refused.Message, "8 files") {
			t.Fatalf("all of 8 files with at most 5 an answer: %v; want a 400 naming page and the 8 files", err)
		}

		var frames []int
		var composites int
		for page := 1; page <= 3; page++ {
			d, err := api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{Page: page, PageSize: 3})
			if err != nil {
				t.Fatal(err)
			}
			if want := (farm.Pagination{Page: page, PageSize: 3, Total: 8, TotalPages: 3}); d.Pagination == nil || *d.Pagination != want {
				t.Errorf("page %d: pagination %+v, want %+v", page, d.Pagination, want)
			}
			if d.Transforms.FramesZip == nil || d.Transforms.Video == nil {
				t.Errorf("page %d has no zip or video", page)
			}
			if len(d.Frames) != len(d.FrameOutputs) || len(d.CompositeNodes) != len(d.CompositeNodeOutputs) {
				t.Errorf("page %d: the legacy lists differ from the outputs: %d/%d, %d/%d", page, len(d.Frames), len(d.FrameOutputs), len(d.CompositeNodes), len(d.CompositeNodeOutputs))
			}
			if n := len(d.FrameOutputs) + len(d.CompositeNodeOutputs); n != min(3, 8-(page-1)*3) {
				t.Errorf("page %d lists %d files", page, n)
			}
			for _, o := range d.FrameOutputs {
				frames = append(frames, *o.Frame)
			}
			composites += len(d.CompositeNodeOutputs)
		}
		if fmt.Sprint(frames) != "[1 2 3 4 5 6 7]" || composites != 1 {
			t.Errorf("the pages listed frames %v and %d compositor outputs; want frames 1 to 7 once each and 1", frames, composites)
		}
		past, err := api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{Page: 4, PageSize: 3})
		if err != nil || len(past.FrameOutputs)+len(past.CompositeNodeOutputs) != 0 || past.Pagination.TotalPages != 3 {
			t.Errorf("a page past the last = %+v, %v; want no files and the pages there are", past, err)
		}
		// The default service lists all eight at once.
		if d, err := f.api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{}); err != nil || len(d.FrameOutputs)+len(d.CompositeNodeOutputs) != 8 || d.Pagination != nil {
			t.Errorf("every file of a job under the bound: %v; want 8 files and no pagination", err)
		}
	})
}

// TestAJobsDownloadsOfASpanOfFrames: asked for a span of frame numbers,
// the downloads list only the files of the job's frames in it, their
// compositor outputs with them, and sign only those URLs; the zip and the
// video are there all the same, the bound on one answer counts the
// span's files, and pages walk them. The job here has frames 1 to 7,
// frame 4 with a compositor output, and a service that lists at most
// five files in one answer.
func TestAJobsDownloadsOfASpanOfFrames(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		job, api := jobOfEightFiles(t, f)
		span := func(from, to int) *farm.FrameRange { return &farm.FrameRange{Start: from, End: to, Step: 1} }
		listed := func(d *farm.Downloads) string {
			var out []string
			for _, o := range d.FrameOutputs {
				out = append(out, fmt.Sprint(*o.Frame))
			}
			for _, o := range d.CompositeNodeOutputs {
				out = append(out, fmt.Sprintf("%s@%d", *o.CompositeNodeName, *o.Frame))
			}
			return strings.Join(out, " ")
		}
		for _, tc := range []struct {
			q    farm.DownloadsQuery
			want string
		}{
			{farm.DownloadsQuery{Frames: span(3, 5)}, "3 4 5 Mask@4"},
			{farm.DownloadsQuery{Frames: span(4, 4)}, "4 Mask@4"},
			{farm.DownloadsQuery{Frames: span(6, 100)}, "6 7"},
			{farm.DownloadsQuery{Frames: span(8, 1000)}, ""},
			{farm.DownloadsQuery{Frames: span(2, 5), Page: 2, PageSize: 3}, "5 Mask@4"},
		} {
			d, err := api.Downloads(f.Ctx, f.P, job.ID, tc.q)
			if err != nil {
				t.Fatalf("frames %s: %v", tc.q.Frames, err)
			}
			if got := listed(d); got != tc.want {
				t.Errorf("frames %s, page %d: listed %q; want %q", tc.q.Frames, tc.q.Page, got, tc.want)
			}
			if len(d.Frames) != len(d.FrameOutputs) || len(d.CompositeNodes) != len(d.CompositeNodeOutputs) {
				t.Errorf("frames %s: the legacy lists differ from the outputs", tc.q.Frames)
			}
			if d.Transforms.FramesZip == nil || d.Transforms.Video == nil {
				t.Errorf("frames %s: no zip or video", tc.q.Frames)
			}
		}
		// Frames 1 to 7 make 8 files, past the 5 of one answer: the pages
		// to ask for instead are of the span, not of the whole job.
		_, err := api.Downloads(f.Ctx, f.P, job.ID, farm.DownloadsQuery{Frames: span(1, 7)})
		var refused *farm.Error
		if !errors.As(err, &refused) || refused.Field != "page" || !strings.Contains(refused.Message, "frames 1-7 of this job made 8 files") ||
			!strings.Contains(refused.Message, "?frames=1-7&page=1&pageSize=5") {
			t.Errorf("a span of 8 files with at most 5 an answer: %v; want a 400 naming page and the span's 8 files, asking for the span's pages", err)
		}
	})
}

// jobOfEightFiles is a completed job of frames 1 to 7, frame 4 with a
// compositor output too (eight files), and a service that lists at most
// five files in one answer.
func jobOfEightFiles(t *testing.T, f *fixture) (*farm.Job, *Service) {
	t.Helper()
	job := f.FinishedJobWithFiles(f.api, farm.StatusCompleted) // frames 1 and 2
	now := time.Now().UTC()
	for n := 3; n <= 7; n++ {
		key := fmt.Sprintf("%sframe_%04d.png", farm.JobFramesPrefix(job.ID), n)
		if err := f.Store.InsertFrame(f.Ctx, store.Frame{JobID: job.ID, Frame: n, TaskID: "task-" + job.ID, Status: farm.FrameCompleted,
			Worker: "node-a", Attempts: 1, ObjectKey: key, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	err := f.Store.InsertFrameOutputs(f.Ctx, job.ID, 4, []farm.FrameOutput{
		{Kind: farm.OutputFrame, FileName: "frame_0004.png", RelativePath: "frame_0004.png", ObjectKey: farm.JobFramesPrefix(job.ID) + "frame_0004.png"},
		{Kind: farm.OutputCompositeNode, FileName: "mask/0004.png", RelativePath: "mask/0004.png", ObjectKey: farm.JobFramesPrefix(job.ID) + "mask_0004.png", CompositeNodeName: "Mask"},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.api.cfg
	cfg.MaxDownloadFiles = 5
	api := New(f.Engine, cfg)
	return job, api
}
