package dashboard

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/renderfarm/renderfarm/client"
)

// chromium is where Debian's chromium package puts the browser;
// scripts/test.sh installs it.
const chromium = "/usr/bin/chromium"

// TestDashboard walks the dashboard as a person would: sign in (first with
// a wrong key), upload cube.blend through the file input, read the
// validation, get a field error from the API beside its field, render two
// frames, watch their thumbnails load, find the zip and the preview video,
// and look at it all again at phone width. Each step leaves a screenshot.
func TestDashboard(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("the dashboard test needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it): %v", chromium, err)
	}
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
	start := time.Now()
	f := startFarm(t)
	key := f.key(t, "studio")
	t.Logf("farm up at %s after %v", f.url, time.Since(start).Round(time.Millisecond))

	ctx, console := newBrowser(t)
	shots := newScreenshots(t)
	b := &browser{t: t, ctx: ctx}

	// Sign-in page, then a key the farm does not know: the API's own
	// message must be what the page says.
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(f.url+"/"))
	b.waitFor("the sign-in form", `document.getElementById('api-key') !== null`)
	b.checkLabels("sign-in")
	shots.take(ctx, "01-sign-in")

	wrongMessage := apiMessage(t, f.url, "RF-not-a-real-key")
	b.do(chromedp.SendKeys(chromedp.ID("api-key"), "RF-not-a-real-key"), chromedp.Click(chromedp.ID("sign-in")))
	b.waitFor("the sign-in error", `!document.getElementById('signin-error').hidden`)
	if got := b.text(`document.getElementById('signin-error').textContent`); got != wrongMessage {
		t.Errorf("sign-in error = %q, want the API's message %q", got, wrongMessage)
	}
	shots.take(ctx, "02-sign-in-wrong-key")

	// The right key: the key lives in sessionStorage, never in the URL.
	b.fill("api-key", "")
	b.do(chromedp.SendKeys(chromedp.ID("api-key"), key), chromedp.Click(chromedp.ID("sign-in")))
	b.waitFor("the job list", `document.getElementById('jobs-view') !== null && document.getElementById('jobs-summary').textContent !== ''`)
	if stored := b.text(`sessionStorage.getItem('renderfarm.apiKey')`); stored != key {
		t.Errorf("sessionStorage key = %q, want the key signed in with", stored)
	}
	if href := b.text(`location.href`); strings.Contains(href, key) {
		t.Errorf("the API key is in the URL %q", href)
	}
	b.checkLabels("job list")
	shots.take(ctx, "03-jobs-empty")

	// New job: the file goes in through the real file input; the page
	// uploads, creates, validates and moves to the job's page.
	b.do(chromedp.Click(chromedp.ID("nav-new")))
	b.waitFor("the upload page", `document.getElementById('file-input') !== null`)
	b.checkLabels("new job")
	shots.take(ctx, "04-new-job")
	b.do(chromedp.SetUploadFiles(chromedp.ID("file-input"), []string{scene("cube.blend")}))
	b.waitFor("the validated job", `document.querySelector('#job-view .badge')?.dataset.status === 'validated'`)
	warning := b.text(`document.getElementById('analysis-warnings')?.textContent ?? ''`)
	// The page says what the analysis says: cube.blend asks for
	// denoising, which a farm whose Blender has no denoiser (Debian's)
	// warns it will render without.
	if want := denoiserWarned(t, f.url, key); strings.Contains(warning, "DENOISER_UNAVAILABLE") != want {
		t.Errorf("warnings = %q; want DENOISER_UNAVAILABLE shown: %v, as the analysis warns", warning, want)
	}
	for _, want := range []string{"64 × 36 px", "Cycles", "Blender 3.4"} {
		if got := b.text(`document.getElementById('job-setup').textContent`); !strings.Contains(got, want) {
			t.Errorf("the analysis does not say %q", want)
		}
	}
	if got := b.text(`document.getElementById('f-frameRanges').value`); got != "1-24" {
		t.Errorf("frames prefilled with %q, want the scene's 1-24", got)
	}
	b.checkLabels("validated job")
	shots.take(ctx, "05-validated")
	shots.full(ctx, "05-validated-full")
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.checkNoOverflow("validated job")
	shots.full(ctx, "05-validated-phone-full")
	b.do(chromedp.EmulateViewport(1280, 800))

	// Samples 0: the farm refuses it, and the page shows its message
	// beside the samples field.
	b.fill("f-frameRanges", "1-2")
	b.fill("f-sampleCount", "0")
	if got := b.text(`document.getElementById('render-button').textContent`); got != "Render 2 frames" {
		t.Errorf("the render button says %q, want Render 2 frames", got)
	}
	b.do(chromedp.Click(chromedp.ID("render-button")))
	b.waitFor("the samples error", `!document.getElementById('err-sampleCount').hidden`)
	if got := b.text(`document.getElementById('err-sampleCount').textContent`); !strings.Contains(got, "between 1 and") {
		t.Errorf("samples error = %q, want the API's range message", got)
	}
	if !b.truth(`document.getElementById('field-sampleCount').contains(document.getElementById('err-sampleCount')) && document.getElementById('f-sampleCount').getAttribute('aria-invalid') === 'true'`) {
		t.Errorf("the samples error is not beside its field, or the field is not marked invalid")
	}
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('field-sampleCount').scrollIntoView({block: 'center'})`))
	shots.take(ctx, "06-field-error")

	// A frame split into 65 parts: the farm refuses it, and the page
	// shows its message beside the parts field. Then the frames render
	// whole again.
	b.fill("f-sampleCount", "4")
	b.fill("f-splitFrame", "65")
	b.fill("f-splitFrameMode", "tiles")
	b.do(chromedp.Click(chromedp.ID("render-button")))
	b.waitFor("the split error", `!document.getElementById('err-splitFrame').hidden`)
	if got := b.text(`document.getElementById('err-splitFrame').textContent`); !strings.Contains(got, "2 to 64 parts") {
		t.Errorf("split error = %q, want the API's range message", got)
	}
	b.fill("f-splitFrame", "")

	// The form offers the farm's Blenders, as GET /blender lists them: the
	// one that opened the file (cube.blend is a 3.4 file) first, which it
	// sends nothing for, then each other. The newest is picked.
	offered, err := client.New(f.url, key).BlenderVersions(t.Context())
	if err != nil || len(offered.Versions) == 0 {
		t.Fatalf("GET /blender = %+v, %v", offered, err)
	}
	b.waitFor("the farm's Blenders in the render form", fmt.Sprintf(`document.getElementById('f-blenderVersion').options.length === %d`, len(offered.Versions)))
	opened := b.text(`document.getElementById('f-blenderVersion').options[0].textContent`)
	if !strings.HasPrefix(opened, "Blender 3.4") || !strings.HasSuffix(opened, "(opened the file)") {
		t.Errorf("the Blender field starts with %q, want the 3.4 that opened the file", opened)
	}
	newest := offered.Versions[len(offered.Versions)-1].Version
	if len(offered.Versions) > 1 {
		b.fill("f-blenderVersion", newest)
	}

	// Render frames 1-2 with the file's samples, at priority 70.
	b.fill("f-sampleCount", "4")
	b.fill("f-priority", "70")
	b.do(chromedp.Click(chromedp.ID("render-button")))
	b.waitFor("rendering to start", `document.getElementById('progress-card') !== null`)
	jobID := b.text(`location.hash.split('/').pop()`)
	if job, err := client.New(f.url, key).GetJob(t.Context(), jobID); err != nil || job.Priority != 70 {
		t.Errorf("the job's priority = %+v, %v; want the form's 70", job, err)
	}
	shots.take(ctx, "07-rendering")
	b.waitFor("the completed job", `document.querySelector('#job-view .badge')?.dataset.status === 'completed' && document.getElementById('download-zip') !== null`)
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('frame-grid').scrollIntoView({block: 'center'})`))
	b.waitFor("two thumbnails", `(() => {
		const imgs = [...document.querySelectorAll('#frame-grid img')];
		return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth > 0);
	})()`)
	b.waitFor("the preview video's metadata", `document.getElementById('preview-video')?.readyState >= 1`)
	if got := b.text(`document.getElementById('settings-card').textContent`); !strings.Contains(got, "Blender"+newest) {
		t.Errorf("the settings do not say Blender %s rendered the frames: %q", newest, got)
	}
	// The priority is shown and changed on the job's page.
	if got := b.text(`document.getElementById('priority-input').value`); got != "70" {
		t.Errorf("the priority field shows %q, want 70", got)
	}
	b.fill("priority-input", "90")
	b.do(chromedp.Click(chromedp.ID("priority-save")))
	b.waitFor("the priority set", `document.getElementById('priority-status').textContent === 'Priority 90'`)
	if job, err := client.New(f.url, key).GetJob(t.Context(), jobID); err != nil || job.Priority != 90 {
		t.Errorf("after the page set it, the job's priority = %+v, %v; want 90", job, err)
	}
	zip := b.text(`document.getElementById('download-zip').href`)
	video := b.text(`document.getElementById('download-video').href`)
	if !strings.Contains(zip, "frames.zip") || !strings.Contains(video, "preview.mp4") {
		t.Errorf("download links: zip %q, video %q", zip, video)
	}
	checkDownload(t, zip, "PK")
	if n := b.text(`String(document.querySelectorAll('#frame-grid a[download]').length)`); n != "2" {
		t.Errorf("%s frame download links, want 2", n)
	}
	b.checkLabels("completed job")
	b.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	shots.take(ctx, "08-completed")
	shots.full(ctx, "08-completed-full")
	jobURL := b.text(`location.href`)

	// The keyboard alone: from the list, Tab to the job's link and open it.
	// The list shows a meter a job, from progress reports asked for
	// without their frames.
	b.do(chromedp.Evaluate[chromedp.Void](`performance.clearResourceTimings()`))
	b.do(chromedp.Click(chromedp.ID("nav-jobs")))
	b.waitFor("the job in the list", `document.querySelector('#jobs-table tbody tr .badge')?.dataset.status === 'completed'`)
	if got := b.text(`document.querySelector('#jobs-table tbody tr .meter-label').textContent`); got != "2 / 2 frames" {
		t.Errorf("the list says %q, want 2 / 2 frames", got)
	}
	asked := b.text(`JSON.stringify([...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name))
		.filter((u) => u.pathname.endsWith('/progress')).map((u) => u.pathname.replace(/.*\/jobs\//, '') + u.search))])`)
	if asked != `["progress?frames=none","`+jobID+`/progress?frames=none"]` {
		t.Errorf("the list asked for the progress reports %s; want the running jobs' and the completed job's, each with frames=none", asked)
	}
	shots.take(ctx, "09-jobs")
	b.do(chromedp.Focus(chromedp.ID("status-filter")), chromedp.KeyEvent(kb.Tab))
	if !b.truth(`document.activeElement.classList.contains('job-link') && getComputedStyle(document.activeElement).outlineStyle !== 'none'`) {
		t.Errorf("Tab from the filter did not reach the job's link with a visible focus ring")
	}
	b.do(chromedp.KeyEvent(kb.Enter))
	b.waitFor("the job page, by keyboard", `document.querySelector('#job-view .badge')?.dataset.status === 'completed'`)

	// Phone width: nothing wider than the screen.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)), chromedp.Navigate(jobURL))
	b.waitFor("the job page on a phone", `document.querySelectorAll('#frame-grid img').length === 2`)
	b.checkNoOverflow("job page")
	shots.take(ctx, "10-job-phone")
	shots.full(ctx, "10-job-phone-full")
	b.do(chromedp.Click(chromedp.ID("nav-jobs")))
	b.waitFor("the job list on a phone", `document.querySelector('#jobs-table tbody tr') !== null`)
	b.checkNoOverflow("job list")
	shots.take(ctx, "11-jobs-phone")
	b.do(chromedp.Click(chromedp.ID("nav-new")))
	b.waitFor("the upload page on a phone", `document.getElementById('file-input') !== null`)
	b.checkNoOverflow("new job")

	// No page of the walk broke the Content-Security-Policy. Then the
	// policy holds in the browser: an inline script added at run time is
	// refused.
	if v := b.text(`JSON.stringify(window.cspViolations)`); v != "[]" {
		t.Errorf("Content-Security-Policy violations: %s", v)
	}
	b.do(chromedp.Evaluate[chromedp.Void](`(() => {
		const s = document.createElement('script');
		s.textContent = 'window.inlineRan = true';
		document.body.append(s);
	})()`))
	b.waitFor("the refused inline script to be reported", `window.cspViolations.some((v) => v.startsWith('script-src') && v.endsWith(' inline'))`)
	if b.truth(`window.inlineRan === true`) {
		t.Errorf("an inline script ran despite the Content-Security-Policy")
	}

	// Sign out: back to the form, and the key is gone from the tab.
	b.do(chromedp.Click(chromedp.ID("sign-out")))
	b.waitFor("the sign-in form after sign-out", `document.getElementById('api-key') !== null`)
	if !b.truth(`sessionStorage.getItem('renderfarm.apiKey') === null`) {
		t.Errorf("the key is still in sessionStorage after signing out")
	}

	for _, m := range console.exceptions() {
		t.Errorf("uncaught exception in the page: %s", m)
	}
	t.Logf("dashboard walk took %v", time.Since(start).Round(time.Millisecond))
}

// browser runs steps in one tab and fails the test on the first error.
type browser struct {
	t   *testing.T
	ctx context.Context
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v\npage:\n%s", err, b.pageText())
	}
}

// fill sets a form field's value as typing would, input event included.
func (b *browser) fill(id, value string) {
	b.t.Helper()
	js, _ := json.Marshal([]string{id, value})
	b.do(chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(([id, value]) => {
		const el = document.getElementById(id);
		el.value = value;
		el.dispatchEvent(new Event('input', { bubbles: true }));
	})(%s)`, js)))
}

// waitFor polls a JavaScript expression in the page until it is true.
func (b *browser) waitFor(what, expr string) {
	b.t.Helper()
	_, err := chromedp.Run(b.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(30*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		b.t.Fatalf("waiting for %s: %v\npage:\n%s", what, err, b.pageText())
	}
}

func (b *browser) text(expr string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return s
}

func (b *browser) truth(expr string) bool {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (b *browser) pageText() string {
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return fmt.Sprintf("(unreadable: %v)", err)
	}
	return s
}

// checkLabels fails when a form control has no label or a button or link
// has no text, which leaves screen reader users guessing.
func (b *browser) checkLabels(page string) {
	b.t.Helper()
	unlabelled := b.text(`JSON.stringify([
		...[...document.querySelectorAll('input, select, textarea')]
			.filter((e) => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
			.map((e) => 'control ' + (e.id || e.name || e.outerHTML.slice(0, 60))),
		...[...document.querySelectorAll('button, a[href]')]
			.filter((e) => !e.textContent.trim() && !e.getAttribute('aria-label'))
			.map((e) => 'button/link ' + e.outerHTML.slice(0, 80)),
	])`)
	if unlabelled != "[]" {
		b.t.Errorf("%s: without a label or text: %s", page, unlabelled)
	}
}

// checkNoOverflow fails when the page scrolls sideways.
func (b *browser) checkNoOverflow(page string) {
	b.t.Helper()
	widths := b.text(`(() => {
		const d = document.documentElement;
		if (d.scrollWidth <= d.clientWidth) return '';
		const wide = [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > d.clientWidth + 1);
		return d.scrollWidth + ' > ' + d.clientWidth + ': ' + wide.slice(0, 5).map((e) => e.tagName + '#' + e.id + '.' + e.className).join(', ');
	})()`)
	if widths != "" {
		b.t.Errorf("%s is wider than the phone screen: %s", page, widths)
	}
}

// newBrowser starts a headless Chromium with a fresh profile. Every page it
// opens records Content-Security-Policy violations in window.cspViolations,
// from before the page's own scripts run.
func newBrowser(t *testing.T) (context.Context, *consoleLog) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox, // the tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	// The whole walk must fit in this; it takes ~15 s.
	base, cancelBase := context.WithTimeout(context.Background(), 2*time.Minute)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(base, opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // waits for the browser to exit, before its profile is removed
		cancelBase()
	})
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.cspViolations = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.cspViolations.push(e.effectiveDirective + (e.blockedURI === 'inline' ? ' inline' : ' ' + e.blockedURI));
});`,
		})
		return err
	}))
	if err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	log := &consoleLog{}
	log.follow(ctx)
	return ctx, log
}

// consoleLog keeps the page's uncaught exceptions.
type consoleLog struct {
	mu   sync.Mutex
	errs []string
}

func (c *consoleLog) follow(ctx context.Context) {
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() {
				c.mu.Lock()
				c.errs = append(c.errs, m.String())
				c.mu.Unlock()
			}
		}
	}()
}

func (c *consoleLog) exceptions() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.errs...)
}

// screenshots writes PNGs into $RENDERFARM_ARTIFACTS/dashboard, or into a
// temporary directory when the variable is unset.
type screenshots struct {
	t   *testing.T
	dir string
}

func newScreenshots(t *testing.T) *screenshots {
	dir := t.TempDir()
	if base := os.Getenv("RENDERFARM_ARTIFACTS"); base != "" {
		dir = filepath.Join(base, "dashboard")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshots in %s", dir)
	return &screenshots{t: t, dir: dir}
}

// take saves what the viewport shows.
func (s *screenshots) take(ctx context.Context, name string) {
	s.save(ctx, name, chromedp.CaptureScreenshot())
}

// full saves the whole page, beyond the viewport.
func (s *screenshots) full(ctx context.Context, name string) {
	s.save(ctx, name, chromedp.FullScreenshot(100))
}

func (s *screenshots) save(ctx context.Context, name string, shot chromedp.Action[[]byte]) {
	s.t.Helper()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		s.t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(s.dir, name+".png"), png, 0o644); err != nil {
		s.t.Errorf("screenshot %s: %v", name, err)
	}
}

// apiMessage is what the API says to a request with this key.
func apiMessage(t *testing.T, base, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/external/v1/jobs", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Error.Message == "" {
		t.Fatalf("the API answered %s with no error message (%v)", resp.Status, err)
	}
	return body.Error.Message
}

// checkDownload fetches a download link as the browser would follow it,
// without the API key.
func checkDownload(t *testing.T, url, magic string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	head := make([]byte, len(magic))
	_, err = io.ReadFull(resp.Body, head)
	if resp.StatusCode != http.StatusOK || err != nil || string(head) != magic {
		t.Errorf("GET %s: %s, starts with %q (%v), want %q", url, resp.Status, head, err, magic)
	}
}

// denoiserWarned reports whether the analysis of the workspace's one job
// warns that the farm cannot denoise, as the API answers it.
func denoiserWarned(t *testing.T, url, key string) bool {
	t.Helper()
	list, err := client.New(url, key).ListJobs(t.Context(), client.ListOptions{})
	if err != nil || len(list.Jobs) != 1 || list.Jobs[0].Analysis == nil {
		t.Fatalf("the workspace's jobs: %+v, %v; want one, validated", list, err)
	}
	for _, w := range list.Jobs[0].Analysis.Warnings {
		if w.Code == client.WarnDenoiserUnavailable {
			return true
		}
	}
	return false
}
