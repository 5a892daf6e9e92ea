package dashboard

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/renderfarm/renderfarm/client"
)

// TestDashboardApprovesScoutFramesAndRetriesFrames: a job rendered with
// scout frames shows, once they are done, which frames they are and an
// Approve button; approving renders the rest to completion; then frames
// typed under the completed job render again.
func TestDashboardApprovesScoutFramesAndRetriesFrames(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("the dashboard test needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it): %v", chromium, err)
	}
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
	f := startFarm(t)
	key := f.key(t, "studio")
	c := client.New(f.url, key, client.WithPollInterval(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	slug, err := c.UploadFile(ctx, scene("cube.blend"), nil)
	if err != nil {
		t.Fatal(err)
	}
	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Validate(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil); err != nil {
		t.Fatal(err)
	}
	cfg := client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-6"},
		Resolution: []int{64, 36}, SampleCount: client.Int(1), ScoutFrames: client.ScoutAuto}
	if _, _, err := c.Render(ctx, job.ID, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusSuspended), nil); err != nil {
		t.Fatal(err)
	}

	bctx, console := newBrowser(t)
	shots := newScreenshots(t)
	b := &browser{t: t, ctx: bctx}
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(f.url+"/"))
	b.waitFor("the sign-in form", `document.getElementById('api-key') !== null`)
	b.do(chromedp.SendKeys(chromedp.ID("api-key"), key), chromedp.Click(chromedp.ID("sign-in")))
	b.waitFor("the job list", `document.getElementById('jobs-view') !== null`)
	// A suspended job is still the farm's work: its row shows the scout
	// frames done, as a rendering job's does.
	row := fmt.Sprintf(`document.querySelector('tr[data-job-id="%s"] .progress-cell')`, job.ID)
	b.waitFor("the suspended job's frames done in the job list", row+` !== null && `+row+`.textContent.includes('3 / 6 frames')`)
	b.do(chromedp.Navigate(f.url + "/#/jobs/" + job.ID))
	b.waitFor("the scout frames", `document.getElementById('approve-scouts') !== null`)
	if got := b.text(`document.getElementById('scout-list').textContent`); got != "1, 3, 6" {
		t.Errorf("scout frames shown = %q, want 1, 3, 6", got)
	}
	b.checkLabels("scout frames")
	shots.take(bctx, "30-scout-frames")
	b.do(chromedp.Click(chromedp.ID("approve-scouts")))
	done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil)
	if err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("the approved job ended %v, %v; want completed", done, err)
	}

	b.waitFor("the retry form", `document.getElementById('retry-frames') !== null`)
	b.fill("retry-frames", "2")
	b.do(chromedp.Click(chromedp.ID("retry-frames-button")))
	// The job completed already: wait for the retry's own end, frame 2
	// begun a second time and the job completed again.
	var p *client.Progress
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if p, err = c.Progress(ctx, job.ID); err != nil {
			t.Fatal(err)
		}
		if p.Status == client.StatusCompleted && slices.ContainsFunc(p.Frames, func(fr client.FrameProgress) bool { return fr.Frame == 2 && fr.Attempts == 2 }) {
			break
		}
		if time.Now().After(deadline) || p.Status == client.StatusFailed {
			t.Fatalf("the retry of frame 2 did not complete: %+v\npage:\n%s", p, b.pageText())
		}
	}
	for _, fr := range p.Frames {
		want := 1
		if fr.Frame == 2 {
			want = 2
		}
		if fr.Attempts != want {
			t.Errorf("frame %d begun %d times, want %d", fr.Frame, fr.Attempts, want)
		}
	}
	// The page, whose poll ended with the job, polls again from the retry
	// on, and shows the job as the retry left it.
	b.waitFor("the page to show frame 2's second attempt", `document.querySelector('#frame-grid li[data-frame="2"] .frame-time')?.textContent.includes('2 attempts') &&
		document.querySelector('#job-view .badge')?.dataset.status === 'completed'`)
	for _, m := range console.exceptions() {
		t.Errorf("uncaught exception in the page: %s", m)
	}
}
