package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	rf "github.com/renderfarm/renderfarm/internal/farm" // "farm" is this package's farm of a test
	"github.com/renderfarm/renderfarm/internal/store"
)

// listFramesMs is the job page's: how old a large job's list of frames
// may get before the page asks for it again (views/job.js).
const listFramesMs = 10_000

// TestDashboardJobOfManyFrames: the page of a job of 3,000 frames asks for
// its frames once, then for the counters alone (frames=none) at each poll,
// and for the frames again only once the list is 10 s old or the job's
// status moved; meanwhile it shows the fresh counters, and a tile a frame.
// A job of 10 frames asks for every frame at each poll, and never for the
// counters alone. The jobs are rendered by no one: the farm has no render
// node, and the test writes how their frames stand in its database.
func TestDashboardJobOfManyFrames(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("the dashboard test needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it): %v", chromium, err)
	}
	f := apptest.Start(t, "--workers", "0")
	key := f.Key("studio")
	c := client.New(f.URL, key)
	st := f.Main().Store()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	big := renderingJob(ctx, t, st, c, 3000)
	setFrames(ctx, t, st, big, 1, 1200, rf.FrameCompleted)
	setFrames(ctx, t, st, big, 1201, 1203, rf.FrameRendering)
	setFrames(ctx, t, st, big, 3000, 3000, rf.FrameFailed)
	small := renderingJob(ctx, t, st, c, 10)
	setFrames(ctx, t, st, small, 1, 4, rf.FrameCompleted)

	bctx, console := newBrowser(t)
	b := &browser{t: t, ctx: bctx}
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(f.URL+"/"))
	b.waitFor("the sign-in form", `document.getElementById('api-key') !== null`)
	b.do(chromedp.SendKeys(chromedp.ID("api-key"), key), chromedp.Click(chromedp.ID("sign-in")))
	b.waitFor("the job list", `document.getElementById('jobs-view') !== null`)

	// The large job: its first poll asks for the frames.
	b.open(big)
	b.waitFor("a tile for each of the 3,000 frames", `document.querySelectorAll('#frame-grid li.frame').length === 3000`)
	b.checkCounters("1200", "3", "1", "1200 of 3000 done, 1 failed")
	if n := b.text(`String(document.querySelectorAll('#frame-grid li[data-status="completed"]').length)`); n != "1200" {
		t.Errorf("%s tiles completed, want 1200", n)
	}

	// More frames done: the next poll's counters say so, from a request
	// without the frames; the tiles stay as the list said.
	setFrames(ctx, t, st, big, 1201, 1500, rf.FrameCompleted)
	b.waitFor("the counters of 1500 frames done", `document.getElementById('frames-summary').textContent === '1500 of 3000 done, 1 failed'`)
	b.checkCounters("1500", "0", "1", "1500 of 3000 done, 1 failed")
	tile := b.text(`document.querySelector('#frame-grid li[data-frame="1300"]').dataset.status`)
	if asked := b.progressAsked(big.ID); asked.full() == 1 {
		if asked.counts() == 0 || tile != "queued" {
			t.Errorf("the counters moved with the frames asked for once: asked %v, the tile of frame 1300 %q; want counters from frames=none and the tile as the list said, queued", asked, tile)
		}
	} else {
		t.Logf("the frames were asked for again before the counters moved (a slow machine): %v", asked)
	}

	// Ten seconds on, the frames are asked for again, and the tiles show
	// the frames done meanwhile.
	b.waitFor("the frames asked for a second time", fmt.Sprintf(`performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/jobs/%s/progress')).length >= 2`, big.ID))
	b.waitFor("1500 tiles completed", `document.querySelectorAll('#frame-grid li[data-status="completed"]').length === 1500`)
	asked := b.progressAsked(big.ID)
	asked.checkPolls(t, "the large job")
	var fulls []request
	first := ""
	for i, r := range asked {
		switch r.What {
		case "full":
			fulls = append(fulls, r)
		case "job", "counts", "downloads":
		default:
			t.Errorf("request %d of the large job's progress asked %q", i, r.What)
		}
		if first == "" && r.What != "job" {
			first = r.What
		}
	}
	if len(fulls) < 2 || first != "full" {
		t.Fatalf("the large job's progress was asked as %v; want the frames first", asked)
	}
	if gap := fulls[1].Start - fulls[0].End; gap < listFramesMs {
		t.Errorf("the frames were asked for again %.0f ms after the first list; want %d ms or more", gap, listFramesMs)
	}
	between := 0
	for _, r := range asked {
		if r.What == "counts" && r.Start > fulls[0].Start && r.Start < fulls[1].Start {
			between++
		}
	}
	// A poll every 1.5 s: about six in ten seconds.
	if between < 3 {
		t.Errorf("%d polls asked for the counters between the two lists of frames, want 3 or more: %v", between, asked)
	}
	// Its downloads, a signed URL a file, go with the list of frames: each
	// is asked for in a poll that read the frames, none in a poll that read
	// the counters alone, though these moved.
	progressBefore := ""
	for _, r := range asked {
		switch r.What {
		case "full", "counts":
			progressBefore = r.What
		case "downloads":
			if progressBefore != "full" {
				t.Errorf("the large job's downloads were asked for in a poll that read %q, want only with its frames: %v", progressBefore, asked)
			}
		}
	}
	if asked.count("downloads") == 0 {
		t.Errorf("the large job's downloads were never asked for: %v", asked)
	}

	// The status moves: the very poll that sees it asks for the frames.
	setFrames(ctx, t, st, big, 1501, 1600, rf.FrameCompleted)
	fullsBefore := b.progressAsked(big.ID).full()
	if _, _, err := c.Suspend(ctx, big.ID); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the suspended job", `document.querySelector('#job-view .badge')?.dataset.status === 'suspended'`)
	if n := b.text(`String(document.querySelectorAll('#frame-grid li[data-status="completed"]').length)`); n != "1600" {
		t.Errorf("once the job is suspended, %s tiles completed; want 1600, from the frames asked for as the status moved", n)
	}
	if n := b.progressAsked(big.ID).full(); n <= fullsBefore {
		t.Errorf("the frames were asked for %d times before the job was suspended and %d after; want once more", fullsBefore, n)
	}

	// Suspended, its frames do not move: past listFramesMs, the page reads
	// its counters still, and neither its frames nor its downloads again.
	b.do(chromedp.Evaluate[chromedp.Void](`performance.clearResourceTimings()`))
	time.Sleep(listFramesMs*time.Millisecond + 2*time.Second)
	if idle := b.progressAsked(big.ID); idle.full() != 0 || idle.count("downloads") != 0 || idle.counts() < 3 {
		t.Errorf("the suspended job's page asked %v over %d s; want its counters at each poll, and neither its frames nor its downloads", idle, listFramesMs/1000+2)
	}

	// The small job: every poll asks for its frames, none for the
	// counters alone.
	b.open(small)
	b.waitFor("a tile for each of the 10 frames", `document.querySelectorAll('#frame-grid li.frame').length === 10`)
	b.waitFor("three polls of the small job", fmt.Sprintf(`performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/jobs/%s/progress')).length >= 3`, small.ID))
	b.checkCounters("4", "0", "0", "4 of 10 done")
	asked = b.progressAsked(small.ID)
	asked.checkPolls(t, "the small job")
	if asked.counts() > 0 || asked.full() < 3 {
		t.Errorf("the small job's progress was asked as %v; want its frames at each poll", asked)
	}

	// Once the job is completed, the poll that sees it reads its frames
	// and downloads, and nothing more is asked for until the links are
	// signed again, ten minutes on.
	small.Status = rf.StatusCompleted
	if err := st.UpdateJob(ctx, small); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the completed job", `document.querySelector('#job-view .badge')?.dataset.status === 'completed'`)
	time.Sleep(2 * time.Second)
	asked = b.progressAsked(small.ID)
	last := 0
	for i, r := range asked {
		if r.What == "job" {
			last = i
		}
	}
	if after := asked[last+1:]; after.full() != 1 || after.count("downloads") > 1 || len(after) > 2 {
		t.Errorf("after the poll that found the job completed, its page asked %v; want its frames once, and its downloads at most once", after)
	}

	for _, m := range console.exceptions() {
		t.Errorf("uncaught exception in the page: %s", m)
	}
}

// renderingJob is a job of frames 1 to frames whose render the farm
// accepted, its frames queued, that the test set rendering: a job as the
// page sees it while a render node renders it. It was never validated:
// its analysis is made up (enginetest.Analysis).
func renderingJob(ctx context.Context, t *testing.T, st *store.Store, c *client.Client, frames int) *rf.Job {
	t.Helper()
	slug, err := c.UploadFile(ctx, scene("cube.blend"), nil)
	if err != nil {
		t.Fatal(err)
	}
	created, err := c.CreateJob(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	job := storedJob(ctx, t, st, created.ID)
	id := "analysis-" + job.ID
	job.Status, job.Analysis, job.AnalysisID = rf.StatusValidated, enginetest.Analysis(frames), &id
	if err := st.UpdateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Render(ctx, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default"), ChunkSize: client.Int(100)}); err != nil {
		t.Fatal(err)
	}
	job = storedJob(ctx, t, st, job.ID)
	if job.FinalConfig == nil || job.FinalConfig.FrameCount != frames {
		t.Fatalf("the render of job %s: %+v; want %d frames", job.ID, job.FinalConfig, frames)
	}
	job.Status = rf.StatusRendering
	if err := st.UpdateJob(ctx, job); err != nil {
		t.Fatal(err)
	}
	return job
}

func storedJob(ctx context.Context, t *testing.T, st *store.Store, id string) *rf.Job {
	t.Helper()
	job, err := st.GetJob(ctx, "", id)
	if err != nil {
		t.Fatalf("GetJob(%s): %v", id, err)
	}
	return job
}

// setFrames moves frames first to last of job to status, as a render node
// would report them: done in 2 s on its first attempt.
func setFrames(ctx context.Context, t *testing.T, st *store.Store, job *rf.Job, first, last int, status rf.FrameStatus) {
	t.Helper()
	err := st.InTx(ctx, func(tx *store.Tx) error {
		for n := first; n <= last; n++ {
			fr := store.Frame{JobID: job.ID, Frame: n, Status: status, Worker: "node-a", Attempts: 1}
			if status == rf.FrameCompleted {
				fr.RenderSeconds = 2
			}
			if err := tx.UpdateFrame(ctx, fr); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("set frames %d-%d of job %s %s: %v", first, last, job.ID, status, err)
	}
}

// open shows a job's page, from the page shown (the dashboard is one
// document: its resource timings go on), with the timings cleared.
func (b *browser) open(job *rf.Job) {
	b.t.Helper()
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`performance.clearResourceTimings(); location.hash = '#/jobs/%s'`, job.ID)))
}

// checkCounters checks the progress card's counters and the frames'
// summary.
func (b *browser) checkCounters(done, rendering, failed, summary string) {
	b.t.Helper()
	got := b.text(`JSON.stringify(Object.fromEntries([...document.querySelectorAll('#progress-card .stat')]
		.map((s) => [s.querySelector('dt').textContent, s.querySelector('dd').textContent])))`)
	var stats map[string]string
	if err := json.Unmarshal([]byte(got), &stats); err != nil {
		b.t.Fatal(err)
	}
	if stats["Done"] != done || stats["Rendering"] != rendering || stats["Failed"] != failed {
		b.t.Errorf("the progress card says %v; want %s done, %s rendering, %s failed", stats, done, rendering, failed)
	}
	if s := b.text(`document.getElementById('frames-summary').textContent`); s != summary {
		b.t.Errorf("the frames' summary says %q, want %q", s, summary)
	}
}

// request is one of the requests of a job's page, from the browser's
// resource timing: the job ("job"), its progress with its frames ("full")
// or without ("counts"), its downloads ("downloads"), and when it started
// and ended, in ms.
type request struct {
	What       string
	Start, End float64
}

type requests []request

// progressAsked lists the requests for the job and its progress since
// the timings were cleared, by start.
func (b *browser) progressAsked(jobID string) requests {
	b.t.Helper()
	got := b.text(fmt.Sprintf(`JSON.stringify(performance.getEntriesByType('resource')
		.map((e) => [new URL(e.name), e])
		.filter(([u]) => ['', '/progress', '/downloads'].some((end) => u.pathname.endsWith('/jobs/%[1]s' + end)))
		.map(([u, e]) => ({
			What: u.pathname.endsWith('/progress') ? ({ '': 'full', '?frames=none': 'counts' }[u.search] ?? u.search)
				: u.pathname.endsWith('/downloads') ? 'downloads' : 'job',
			Start: e.startTime, End: e.responseEnd,
		}))
		.sort((a, b) => a.Start - b.Start))`, jobID))
	var out requests
	if err := json.Unmarshal([]byte(got), &out); err != nil {
		b.t.Fatal(err)
	}
	return out
}

func (rs requests) count(what string) int {
	n := 0
	for _, r := range rs {
		if r.What == what {
			n++
		}
	}
	return n
}

func (rs requests) full() int   { return rs.count("full") }
func (rs requests) counts() int { return rs.count("counts") }

// checkPolls checks that each poll, which reads the job, asked for its
// progress once: as many of one as of the other, but for the poll under
// way, which may have read the job and not yet its progress.
func (rs requests) checkPolls(t *testing.T, which string) {
	t.Helper()
	polls, progress := rs.count("job"), rs.full()+rs.counts()
	if polls != progress && polls != progress+1 {
		t.Errorf("%s's page read the job %d times and its progress %d times; want once a poll: %v", which, polls, progress, rs)
	}
}
