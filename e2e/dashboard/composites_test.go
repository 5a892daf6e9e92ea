package dashboard

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/renderfarm/renderfarm/client"
)

// makeNodesScene has Blender make two tiny frames whose compositor writes
// the AO pass as PNG and the depth pass as OpenEXR through two File
// Output nodes.
const makeNodesScene = `
import bpy, sys
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 32, 18
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 2
layer = scene.view_layers[0]
layer.use_pass_z = True
layer.use_pass_ambient_occlusion = True
scene.use_nodes = True
tree = scene.node_tree
layers = tree.nodes["Render Layers"]
for name, fmt, output, path in (("Depth Out", "OPEN_EXR", "Depth", "depth_####"), ("AO", "PNG", "AO", "ao_")):
    node = tree.nodes.new("CompositorNodeOutputFile")
    node.name = name
    node.base_path = "//passes/"
    node.format.file_format = fmt
    node.file_slots[0].path = path
    tree.links.new(layers.outputs[output], node.inputs[0])
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
`

// TestDashboardShowsTheCompositorsImages: a completed job whose scene has
// two File Output nodes shows, under "Compositor outputs", a group per
// node named as the node: the AO node's PNGs as thumbnails that load, the
// depth node's OpenEXR files as download tiles, each captioned with its
// frame, and the zip of them all; what validation found names the nodes
// and the passes.
func TestDashboardShowsTheCompositorsImages(t *testing.T) {
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("the dashboard test needs Chromium at %s (apt-get install chromium; scripts/test.sh installs it): %v", chromium, err)
	}
	for _, tool := range []string{"blender", "ffmpeg"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed; scripts/test.sh installs it", tool)
		}
	}
	blend := filepath.Join(t.TempDir(), "passes.blend")
	if out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio", "--python-exit-code", "1",
		"--python-expr", makeNodesScene, "--", blend).CombinedOutput(); err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}
	f := startFarm(t)
	key := f.key(t, "studio")
	c := client.New(f.url, key, client.WithPollInterval(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	slug, err := c.UploadFile(ctx, blend, nil)
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
	if _, _, err := c.Render(ctx, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default")}); err != nil {
		t.Fatal(err)
	}
	if done, err := c.Wait(ctx, job.ID, client.UntilFinal, nil); err != nil || done.Status != client.StatusCompleted {
		t.Fatalf("the job ended %v, %v", done, err)
	}

	bctx, console := newBrowser(t)
	shots := newScreenshots(t)
	b := &browser{t: t, ctx: bctx}
	b.do(chromedp.EmulateViewport(1280, 800), chromedp.Navigate(f.url+"/"))
	b.waitFor("the sign-in form", `document.getElementById('api-key') !== null`)
	b.do(chromedp.SendKeys(chromedp.ID("api-key"), key), chromedp.Click(chromedp.ID("sign-in")))
	b.waitFor("the job list", `document.getElementById('jobs-view') !== null`)
	b.do(chromedp.Navigate(f.url + "/#/jobs/" + job.ID))
	b.waitFor("the compositor outputs", `document.getElementById('composites-section')?.hidden === false && document.getElementById('download-composites-zip') !== null`)
	b.do(chromedp.Evaluate[chromedp.Void](`document.getElementById('composites-section').scrollIntoView({block: 'start'})`))
	b.waitFor("the AO thumbnails", `(() => {
		const imgs = [...document.querySelectorAll('.composite-grid[data-node="AO"] img')];
		return imgs.length === 2 && imgs.every((i) => i.complete && i.naturalWidth === 32);
	})()`)
	if got := b.text(`[...document.querySelectorAll('.composite-node-name')].map((h) => h.textContent).join(',')`); got != "Depth Out,AO" {
		t.Errorf("node groups = %q, want Depth Out,AO", got)
	}
	depth := b.text(`[...document.querySelectorAll('.composite-grid[data-node="Depth Out"] .frame-ext')].map((e) => e.textContent).join(',')`)
	if depth != "EXR,EXR" {
		t.Errorf("the depth node's tiles = %q, want two EXR download tiles", depth)
	}
	captions := b.text(`[...document.querySelectorAll('.composite-grid[data-node="AO"] .frame-number')].map((e) => e.textContent).join(',')`)
	if captions != "Frame 1,Frame 2" {
		t.Errorf("the AO captions = %q, want Frame 1,Frame 2", captions)
	}
	// What validation found names the nodes and the passes.
	scene := b.text(`document.getElementById('analysis-scene')?.textContent ?? ''`)
	for _, want := range []string{"Depth Out (OPEN_EXR, 1 input), AO (PNG, 1 input)", "Combined, Depth, AO"} {
		if !strings.Contains(scene, want) {
			t.Errorf("the analysis does not say %q: %q", want, scene)
		}
	}
	zip := b.text(`document.getElementById('download-composites-zip').href`)
	if !strings.Contains(zip, "compositeNodes.zip") {
		t.Errorf("the zip link is %q", zip)
	}
	checkDownload(t, zip, "PK")
	b.checkLabels("compositor outputs")
	shots.take(bctx, "20-compositor-outputs")
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.checkNoOverflow("compositor outputs")
	for _, m := range console.exceptions() {
		t.Errorf("uncaught exception in the page: %s", m)
	}
}
