package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app/apptest"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	rf "github.com/renderfarm/renderfarm/internal/farm" // "farm" is this package's farm of a test
	"github.com/renderfarm/renderfarm/internal/store"
)

// pageFrames is the job page's: how many frames of a job of more than
// 2,000 it shows at a time (views/job.js).
const pageFrames = 1000

// TestDashboardJobOfManyFrames: the page of a job of 3,000 frames shows
// them a thousand at a time. Each poll asks for the counters and the
// frames of the page shown (frames=A-B), never for every frame; the
// downloads it asks for are those of the page's frames, again only once
// more of them are done. Its controls turn the pages, and go to the page
// of a frame; the counters and the render time are the whole job's. A
// job of 10 frames asks for every frame at each poll. The jobs are
// rendered by no one: the farm has no render node, and the test writes
// how their frames stand in its database.
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

	// The large job opens on its first thousand frames; the counters and
	// the render time (1,200 frames of 2 s) are the whole job's.
	b.open(big)
	b.checkPage(1, 1000, "Frames 1–1,000 · page 1 of 3")
	b.checkCounters("1200", "3", "1", "1200 of 3000 done, 1 failed")
	if got := b.stat("Render time"); got != "40 min 0 s" {
		t.Errorf("the render time says %q; want the 1,200 completed frames' 2 s each, 40 min 0 s", got)
	}
	if n := b.text(`String(document.querySelectorAll('#frame-grid li[data-status="completed"]').length)`); n != "1000" {
		t.Errorf("%s tiles completed on the first page, want 1000", n)
	}
	if b.text(`String(document.getElementById('frame-page-previous').disabled && document.getElementById('frame-page-first').disabled)`) != "true" {
		t.Error("on the first page, the controls to the previous and first pages are enabled")
	}

	// The next page: frames 1,001 to 2,000, of which 200 are done and 3
	// rendering.
	b.do(chromedp.Click(chromedp.ID("frame-page-next")))
	b.checkPage(1001, 2000, "Frames 1,001–2,000 · page 2 of 3")
	b.waitFor("the second page's 200 frames done", `document.querySelectorAll('#frame-grid li[data-status="completed"]').length === 200`)
	if n := b.text(`String(document.querySelectorAll('#frame-grid li[data-status="rendering"]').length)`); n != "3" {
		t.Errorf("%s tiles rendering on the second page, want 3", n)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('frames-section').scrollIntoView()`))
	newScreenshots(t).take(bctx, "job-of-many-frames-page-2")

	// More frames done: the next poll shows them on their tiles, and asks
	// for the page's downloads again.
	b.do(chromedp.Evaluate[chromedp.Void](`performance.clearResourceTimings()`))
	setFrames(ctx, t, st, big, 1201, 1500, rf.FrameCompleted)
	b.waitFor("500 tiles completed on the second page", `document.querySelectorAll('#frame-grid li[data-status="completed"]').length === 500`)
	b.checkCounters("1500", "0", "1", "1500 of 3000 done, 1 failed")
	b.waitFor("the render time of 1,500 frames", `[...document.querySelectorAll('#progress-card .stat')].some((s) => s.textContent === 'Render time50 min 0 s')`)
	asked := b.progressAsked(big.ID)
	if asked.count("frames=1001-2000") == 0 || asked.count("downloads frames=1001-2000") == 0 {
		t.Errorf("after frames of the second page were done, the page asked %v; want that page's frames and downloads", asked)
	}

	// A frame to go to: the page that holds it.
	b.do(chromedp.SetValue(chromedp.ID("frame-page-go"), "3000"), chromedp.Click(chromedp.ID("frame-page-show")))
	b.checkPage(2001, 3000, "Frames 2,001–3,000 · page 3 of 3")
	b.waitFor("frame 3000 failed", `document.querySelector('#frame-grid li[data-frame="3000"]')?.dataset.status === 'failed'`)
	if b.text(`String(document.getElementById('frame-page-next').disabled && document.getElementById('frame-page-last').disabled)`) != "true" {
		t.Error("on the last page, the controls to the next and last pages are enabled")
	}
	// A frame of a page's middle: its tile is brought into view, and the
	// focus onto it. A frame not of the job shows the nearest, and says so.
	b.do(chromedp.SetValue(chromedp.ID("frame-page-go"), "1500"), chromedp.Click(chromedp.ID("frame-page-show")))
	b.checkPage(1001, 2000, "Frames 1,001–2,000 · page 2 of 3")
	b.waitFor("frame 1500 in view, and focused", `(() => {
		const tile = document.querySelector('#frame-grid li[data-frame="1500"]').getBoundingClientRect();
		return tile.top >= 0 && tile.bottom <= window.innerHeight && document.activeElement?.dataset.frame === '1500';
	})()`)
	b.do(chromedp.SetValue(chromedp.ID("frame-page-go"), "4000"), chromedp.Click(chromedp.ID("frame-page-show")))
	b.checkPage(2001, 3000, "Frames 2,001–3,000 · page 3 of 3")
	if got := b.text(`document.getElementById('frame-page-said').textContent`); !strings.Contains(got, "not one of this job") {
		t.Errorf("asked for frame 4000 of a job of frames 1 to 3000, the page says %q; want that it is not one of the job's", got)
	}
	// The controls below the grid turn the pages too.
	b.do(chromedp.Click(chromedp.ID("frame-page-previous-end")))
	b.checkPage(1001, 2000, "Frames 1,001–2,000 · page 2 of 3")
	// The focus follows the page turned from below the grid up to the
	// grid's heading; and turned from the keyboard to the last page, whose
	// control to the next page is then disabled, it is not lost either.
	if got := b.text(`document.activeElement?.id ?? ''`); got != "frames-title" {
		t.Errorf("after a page turned from below the grid, the focus is on %q; want the frames' heading", got)
	}
	b.do(chromedp.Focus(chromedp.ID("frame-page-next")), chromedp.KeyEvent("\r"))
	b.checkPage(2001, 3000, "Frames 2,001–3,000 · page 3 of 3")
	if got := b.text(`document.activeElement?.id ?? ''`); got != "frames-title" {
		t.Errorf("after the last page was turned to from the keyboard, the focus is on %q; want the frames' heading", got)
	}
	// Pages turned faster than the polls answer: the grid ends on the
	// last page turned to, with its frames alone.
	b.do(chromedp.Click(chromedp.ID("frame-page-first")), chromedp.Click(chromedp.ID("frame-page-next")),
		chromedp.Click(chromedp.ID("frame-page-previous")))
	b.checkPage(1, 1000, "Frames 1–1,000 · page 1 of 3")
	time.Sleep(2 * time.Second) // a poll of a page left would land by now
	b.checkPage(1, 1000, "Frames 1–1,000 · page 1 of 3")

	// Each poll asked for the frames of a page, never for every frame nor
	// for the counters alone, and every download asked for was of a page's
	// frames.
	asked = b.progressAsked(big.ID)
	asked.checkPolls(t, "the large job")
	for i, r := range asked {
		if r.What == "full" || r.What == "counts" || r.What == "downloads" {
			t.Errorf("request %d of the large job's page asked %q: %v", i, r.What, asked)
		}
	}

	// Suspended, nothing of the page moves: its frames are asked for at
	// each poll, its downloads not again.
	if _, _, err := c.Suspend(ctx, big.ID); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the suspended job", `document.querySelector('#job-view .badge')?.dataset.status === 'suspended'`)
	time.Sleep(2 * time.Second) // the poll that found it suspended asks for the downloads again
	b.do(chromedp.Evaluate[chromedp.Void](`performance.clearResourceTimings()`))
	time.Sleep(5 * time.Second)
	if idle := b.progressAsked(big.ID); idle.count("frames=1-1000") < 2 || idle.count("downloads frames=1-1000") != 0 {
		t.Errorf("the suspended job's page asked %v over 5 s; want the first page's frames at each poll, and its downloads not again", idle)
	}

	// Scout frames on other pages than the one shown: a link to each of
	// their ranges turns the grid to its first frame. (The job is marked
	// suspended for them here as the farm marks it once they are done.)
	scouted := storedJob(ctx, t, st, big.ID)
	scouted.Status, scouted.SuspendedReason = rf.StatusRendering, ""
	if err := st.UpdateJob(ctx, scouted); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the job rendering again", `document.querySelector('#job-view .badge')?.dataset.status === 'rendering'`)
	scouted.Status, scouted.SuspendedReason = rf.StatusSuspended, rf.SuspendedScoutFramesReady
	scouted.FinalConfig.ScoutFrames = []string{"1", "2999-3000"}
	if err := st.UpdateJob(ctx, scouted); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the scout frames' links", `document.querySelectorAll('#scout-frames .scout-links button').length === 2`)
	b.do(chromedp.Click(chromedp.CSS(`#scout-frames button[data-frame="2999"]`)))
	b.checkPage(2001, 3000, "Frames 2,001–3,000 · page 3 of 3")
	b.waitFor("frame 2999's tile in view, with the focus", `document.activeElement?.dataset.frame === '2999'`)
	b.do(chromedp.Click(chromedp.CSS(`#scout-frames button[data-frame="1"]`)))
	b.checkPage(1, 1000, "Frames 1–1,000 · page 1 of 3")

	// Completed, the page signs its page's links again every ten minutes
	// (here 300 ms). A round of them under way when the page is turned
	// draws nothing: the new page shows its own frames alone, though the
	// round's answer lands before the new page's. The page's downloads are
	// held (held) to answer in that order.
	b.do(chromedp.Evaluate[chromedp.Void](`
		window.setTimeoutOf = window.setTimeout;
		window.setTimeout = (f, ms, ...rest) => window.setTimeoutOf(f, ms === 10 * 60 * 1000 ? 300 : ms, ...rest);
		window.fetchOf = window.fetch;
		window.holding = false;
		window.held = [];
		window.fetch = (url, init) => window.holding && String(url).includes('/downloads?')
			? new Promise((answer) => window.held.push(() => answer(window.fetchOf(url, init))))
			: window.fetchOf(url, init);`))
	big.Status = rf.StatusCompleted
	if err := st.UpdateJob(ctx, big); err != nil {
		t.Fatal(err)
	}
	b.waitFor("the completed job", `document.querySelector('#job-view .badge')?.dataset.status === 'completed'`)
	b.do(chromedp.Evaluate[chromedp.Void](`window.holding = true`))
	b.waitFor("a round of the first page's links asked for", `window.held.length === 1`)
	b.do(chromedp.Click(chromedp.ID("frame-page-next")))
	b.waitFor("the second page's downloads asked for", `window.held.length === 2`)
	b.do(chromedp.Evaluate[chromedp.Void](`window.held[0]()`))
	time.Sleep(500 * time.Millisecond)
	if n := b.text(`String(document.querySelectorAll('#frame-grid li[data-frame="1"]').length)`); n != "0" {
		t.Error("the links of the first page, signed as the page was turned, drew its tiles on the second page")
	}
	b.do(chromedp.Evaluate[chromedp.Void](`window.holding = false; window.held.slice(1).forEach((answer) => answer())`))
	b.checkPage(1001, 2000, "Frames 1,001–2,000 · page 2 of 3")
	b.do(chromedp.Evaluate[chromedp.Void](`window.setTimeout = window.setTimeoutOf; window.fetch = window.fetchOf`))

	// The small job: every poll asks for its frames, none for the
	// counters alone, and it has no pages.
	b.open(small)
	b.waitFor("a tile for each of the 10 frames", `document.querySelectorAll('#frame-grid li.frame').length === 10`)
	b.waitFor("three polls of the small job", fmt.Sprintf(`performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/jobs/%s/progress')).length >= 3`, small.ID))
	b.checkCounters("4", "0", "0", "4 of 10 done")
	if b.text(`String(document.getElementById('frame-pager') === null)`) != "true" {
		t.Error("the page of a job of 10 frames has controls to turn pages")
	}
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

// checkPage waits for the grid to show the frames first to last of a
// large job, a tile each and no other, and checks what its controls say.
func (b *browser) checkPage(first, last int, says string) {
	b.t.Helper()
	b.waitFor(fmt.Sprintf("the tiles of frames %d to %d", first, last), fmt.Sprintf(`(() => {
		const tiles = [...document.querySelectorAll('#frame-grid li.frame')].map((li) => Number(li.dataset.frame));
		return tiles.length === %d && tiles[0] === %d && tiles[tiles.length - 1] === %d && tiles.every((n, i) => i === 0 || n === tiles[i - 1] + 1);
	})()`, last-first+1, first, last))
	if got := b.text(`document.getElementById('frame-page').textContent`); got != says {
		b.t.Errorf("the page's controls say %q, want %q", got, says)
	}
	if last-first+1 > pageFrames {
		b.t.Errorf("a page of %d frames, more than %d", last-first+1, pageFrames)
	}
}

// stat is what the progress card says of term.
func (b *browser) stat(term string) string {
	b.t.Helper()
	return b.text(fmt.Sprintf(`[...document.querySelectorAll('#progress-card .stat')].find((s) => s.querySelector('dt').textContent === %q)?.querySelector('dd').textContent ?? ''`, term))
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
// resource timing: the job ("job"), its progress with its frames ("full"),
// without ("counts") or with a span of them ("frames=1-1000"), its
// downloads ("downloads", or "downloads frames=1-1000" for a span's), and
// when it started and ended, in ms.
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
			What: u.pathname.endsWith('/progress') ? ({ '': 'full', '?frames=none': 'counts' }[u.search] ?? u.search.slice(1))
				: u.pathname.endsWith('/downloads') ? ({ '?page=1&pageSize=100000': 'downloads' }[u.search] ?? 'downloads ' + u.search.slice(1).replace('&page=1&pageSize=100000', '')) : 'job',
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
	polls, progress := rs.count("job"), 0
	for _, r := range rs {
		if r.What == "full" || r.What == "counts" || strings.HasPrefix(r.What, "frames=") {
			progress++
		}
	}
	if polls != progress && polls != progress+1 {
		t.Errorf("%s's page read the job %d times and its progress %d times; want once a poll: %v", which, polls, progress, rs)
	}
}
