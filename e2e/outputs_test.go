package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	binenc "encoding/binary"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

// The tests in this file render scenes that write more than one image a
// frame: passes through compositor File Output nodes, stereo views, a
// multilayer OpenEXR, and frames named after the scene's output path. Each
// scene is made by Blender in the test's own set-up.

// makeOutputScene is run by Blender with a JSON spec: the factory cube,
// tiny and fast in Cycles, three frames long, with the depth, normal and
// AO passes on, and what the spec asks for (see outputScene).
const makeOutputScene = `
import bpy, json, sys
spec = json.loads(sys.argv[sys.argv.index("--") + 1])
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x, scene.render.resolution_y = 32, 18
scene.render.resolution_percentage = 100
scene.frame_start, scene.frame_end = 1, 3
scene.view_settings.view_transform = "Standard"
scene.render.image_settings.file_format = spec.get("format") or "PNG"
if spec.get("outputPath"):
    scene.render.filepath = spec["outputPath"]
layer = scene.view_layers[0]
layer.use_pass_z = True
layer.use_pass_normal = True
layer.use_pass_ambient_occlusion = True
# The cube turns, so that every frame differs.
cube = bpy.data.objects["Cube"]
cube.rotation_euler = (0, 0, 0)
cube.keyframe_insert("rotation_euler", frame=1)
cube.rotation_euler = (0, 0, 1.2)
cube.keyframe_insert("rotation_euler", frame=3)
if spec.get("stereo"):
    scene.render.use_multiview = True
    scene.render.views_format = "STEREO_3D"
    scene.render.image_settings.views_format = spec["stereo"]
    # Eyes far apart: the two views differ at 32x18.
    scene.camera.data.stereo.interocular_distance = 1.0
if spec.get("depthBase"):
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes["Render Layers"]
    depth = tree.nodes.new("CompositorNodeOutputFile")
    depth.name = "Depth Out"
    depth.base_path = spec["depthBase"]
    depth.format.file_format = "OPEN_EXR"
    depth.file_slots[0].path = "depth_####"
    tree.links.new(layers.outputs["Depth"], depth.inputs[0])
    ao = tree.nodes.new("CompositorNodeOutputFile")
    ao.name = "AO"
    ao.base_path = spec["aoBase"]
    ao.format.file_format = "PNG"
    ao.file_slots[0].path = "ao_"
    tree.links.new(layers.outputs["AO"], ao.inputs[0])
    muted = tree.nodes.new("CompositorNodeOutputFile")
    muted.name = "Muted"
    muted.mute = True
    muted.base_path = spec["aoBase"]
    tree.links.new(layers.outputs["Image"], muted.inputs[0])
bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

// outputScene is one .blend for makeOutputScene to make.
type outputScene struct {
	Out        string `json:"out"`
	Format     string `json:"format,omitempty"`
	OutputPath string `json:"outputPath,omitempty"`
	// Stereo is how the two views are written: INDIVIDUAL or STEREO_3D.
	Stereo string `json:"stereo,omitempty"`
	// DepthBase and AOBase, when set, add two File Output nodes writing
	// the depth pass as OpenEXR and the AO pass as PNG under them, and a
	// muted one.
	DepthBase string `json:"depthBase,omitempty"`
	AOBase    string `json:"aoBase,omitempty"`
}

func makeOutputScenes(t *testing.T, scenes ...outputScene) {
	t.Helper()
	for _, s := range scenes {
		body, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
			"--python-exit-code", "1", "--python-expr", makeOutputScene, "--", string(body)).CombinedOutput()
		if err != nil {
			t.Fatalf("making %s: %v\n%s", filepath.Base(s.Out), err, out)
		}
	}
}

// renderScene uploads, validates and renders blend with cfg, and waits
// for the job to complete.
func renderScene(ctx context.Context, t *testing.T, c *client.Client, blend string, cfg client.RenderConfig) *client.Job {
	t.Helper()
	job := validate(ctx, t, c, submit(ctx, t, c, blend).ID)
	if job.Status != client.StatusValidated {
		t.Fatalf("validation ended %s: %+v", job.Status, job.FailedReason)
	}
	done := renderAndWait(ctx, t, c, job.ID, cfg)
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}
	return done
}

// fetch downloads a URL into dir under name and returns its bytes.
func fetch(ctx context.Context, t *testing.T, c *client.Client, url, dir, name string) []byte {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
	if _, err := c.DownloadFile(ctx, url, path); err != nil {
		t.Fatalf("download %s: %v", name, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exrMagic starts every OpenEXR file.
var exrMagic = []byte{0x76, 0x2f, 0x31, 0x01}

// TestFileOutputNodesAreStoredBesideTheFrames renders 3 frames of a scene
// whose compositor writes a depth pass as OpenEXR (under "//passes/") and
// an AO pass as PNG (under an absolute path outside the farm): the
// analysis lists both nodes and not the muted one; the downloads list 6
// composite node outputs named by node, slot and frame, of the sizes
// stored and with their formats' headers; the compositeNodes zip holds a
// folder per node; and nothing was written under either path.
func TestFileOutputNodesAreStoredBesideTheFrames(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	dir := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	blend := filepath.Join(dir, "passes.blend")
	makeOutputScenes(t, outputScene{Out: blend, DepthBase: "//passes/", AOBase: elsewhere + "/"})

	job := validate(ctx, t, c, submit(ctx, t, c, blend).ID)
	nodes := job.Analysis.Scenes[0].FileOutputNodes
	if len(nodes) != 2 || nodes[0].Name != "Depth Out" || nodes[0].Format != "OPEN_EXR" || nodes[0].Slots[0].Path != "depth_####" ||
		nodes[1].Name != "AO" || nodes[1].BasePath != elsewhere+"/" || nodes[1].Slots[0].Format != "PNG" {
		t.Fatalf("fileOutputNodes = %+v; want Depth Out (OPEN_EXR, depth_####) and AO (PNG), not the muted node", nodes)
	}
	done := renderAndWait(ctx, t, c, job.ID, client.RenderConfig{ColorManagementPreset: client.String("default")})
	if done.Status != client.StatusCompleted {
		t.Fatalf("job ended %s: %+v", done.Status, done.FailedReason)
	}

	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 3 || len(d.CompositeNodeOutputs) != 6 || len(d.CompositeNodes) != 6 {
		t.Fatalf("downloads list %d frames and %d composite node outputs; want 3 and 6", len(d.FrameOutputs), len(d.CompositeNodeOutputs))
	}
	got := dir + "/got"
	for i, o := range d.CompositeNodeOutputs {
		frame := i/2 + 1
		node, name := "Depth Out", []string{"Depth_Out/depth_0001.exr", "Depth_Out/depth_0002.exr", "Depth_Out/depth_0003.exr"}[frame-1]
		if i%2 == 1 {
			node, name = "AO", []string{"AO/ao_0001.png", "AO/ao_0002.png", "AO/ao_0003.png"}[frame-1]
		}
		if o.CompositeNodeName == nil || *o.CompositeNodeName != node || o.FileName != name || o.RelativePath != name ||
			o.Frame == nil || *o.Frame != frame || o.View != nil {
			t.Errorf("composite node output %d = %+v, want %s of frame %d by %s", i, o, name, frame, node)
			continue
		}
		b := fetch(ctx, t, c, o.URL, got, o.FileName)
		if int64(len(b)) != o.SizeBytes {
			t.Errorf("%s is %d bytes, listed as %d", name, len(b), o.SizeBytes)
		}
		if node == "AO" {
			if cfg, err := png.DecodeConfig(bytes.NewReader(b)); err != nil || cfg.Width != 32 || cfg.Height != 18 {
				t.Errorf("%s: %+v, %v; want a 32x18 PNG", name, cfg, err)
			}
		} else if !bytes.HasPrefix(b, exrMagic) || len(exrChannels(t, b)) == 0 {
			t.Errorf("%s is not an OpenEXR image with a channel", name)
		}
	}

	zipURL := d.Transforms.CompositeNodesZip
	if zipURL == nil || d.Transforms.CompositeNodesZipOutputs == nil || d.Transforms.CompositeNodesZipOutputs.FileName != "compositeNodes.zip" {
		t.Fatalf("transforms = %+v; want the compositeNodes zip", d.Transforms)
	}
	zb := fetch(ctx, t, c, *zipURL, got, "compositeNodes.zip")
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	if err != nil {
		t.Fatal(err)
	}
	folders := map[string]int{}
	for _, zf := range zr.File {
		folder, _, _ := strings.Cut(zf.Name, "/")
		folders[folder]++
	}
	if len(zr.File) != 6 || folders["Depth_Out"] != 3 || folders["AO"] != 3 {
		t.Errorf("compositeNodes.zip holds %d entries in folders %v; want 3 in Depth_Out and 3 in AO", len(zr.File), folders)
	}
	if _, err := os.Stat(elsewhere); !os.IsNotExist(err) {
		t.Errorf("the AO node's absolute path %s exists: %v; the farm writes only in its runs", elsewhere, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "passes")); !os.IsNotExist(err) {
		t.Errorf("the depth node wrote beside the uploaded .blend: %v", err)
	}
}

// TestStereoFramesComeAsAViewEach: a stereo scene whose views are written
// apart gives two frame outputs per frame, views left and right, whose
// pixels differ; written as one stereo image, one per frame, of view
// "stereo".
func TestStereoFramesComeAsAViewEach(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	dir := t.TempDir()
	apart, together := filepath.Join(dir, "apart.blend"), filepath.Join(dir, "anaglyph.blend")
	makeOutputScenes(t, outputScene{Out: apart, Stereo: "INDIVIDUAL"}, outputScene{Out: together, Stereo: "STEREO_3D"})
	cfg := client.RenderConfig{ColorManagementPreset: client.String("default"), FrameRanges: []string{"1-2"}}

	job := renderScene(ctx, t, c, apart, cfg)
	if mv := job.Analysis.Scenes[0].Multiview; mv == nil || len(mv.Views) != 2 || mv.ImageViews != "INDIVIDUAL" {
		t.Errorf("multiview = %+v; want two views written apart", mv)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 4 {
		t.Fatalf("%d frame outputs, want 2 views of 2 frames", len(d.FrameOutputs))
	}
	for frame := 1; frame <= 2; frame++ {
		left, right := d.FrameOutputs[2*frame-2], d.FrameOutputs[2*frame-1]
		if left.View == nil || *left.View != "left" || right.View == nil || *right.View != "right" || *left.Frame != frame || *right.Frame != frame ||
			left.FileName != "frame_000"+string(rune('0'+frame))+"_L.png" || right.FileName != "frame_000"+string(rune('0'+frame))+"_R.png" {
			t.Fatalf("frame %d's outputs = %+v, %+v; want its left and right views", frame, left, right)
		}
		l := decodeImage(t, fetch(ctx, t, c, left.URL, dir, left.FileName))
		r := decodeImage(t, fetch(ctx, t, c, right.URL, dir, right.FileName))
		if samePixels(l, r) {
			t.Errorf("frame %d's left and right views have the same pixels", frame)
		}
	}

	job = renderScene(ctx, t, c, together, cfg)
	d, err = c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 2 || d.FrameOutputs[0].View == nil || *d.FrameOutputs[0].View != "stereo" || d.FrameOutputs[1].FileName != "frame_0002.png" {
		t.Fatalf("frame outputs = %+v; want one stereo image per frame", d.FrameOutputs)
	}
	stereo := fetch(ctx, t, c, d.FrameOutputs[0].URL, dir, "stereo.png")
	if cfg, err := png.DecodeConfig(bytes.NewReader(stereo)); err != nil || cfg.Width != 32 || cfg.Height != 18 {
		t.Errorf("the stereo image: %+v, %v; want a 32x18 PNG", cfg, err)
	}
}

// TestSceneNamingNamesFramesAsTheScene: with outputNaming "scene", a scene
// whose output path is //render/shot010_#### downloads shot010_0001.png
// and so on, and its frames zip holds them under render/.
func TestSceneNamingNamesFramesAsTheScene(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	blend := filepath.Join(t.TempDir(), "shot010.blend")
	makeOutputScenes(t, outputScene{Out: blend, OutputPath: "//render/shot010_####"})

	job := renderScene(ctx, t, c, blend, client.RenderConfig{ColorManagementPreset: client.String("default"), OutputNaming: client.String(client.NamingScene)})
	if job.FinalConfig.OutputNaming != client.NamingScene || job.Analysis.Scenes[0].OutputPath != "//render/shot010_####" {
		t.Errorf("finalConfig.outputNaming = %q, outputPath %q", job.FinalConfig.OutputNaming, job.Analysis.Scenes[0].OutputPath)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names, paths []string
	for _, o := range d.FrameOutputs {
		names = append(names, o.FileName)
		paths = append(paths, o.RelativePath)
	}
	if want := []string{"shot010_0001.png", "shot010_0002.png", "shot010_0003.png"}; !slices.Equal(names, want) {
		t.Errorf("frames are named %q, want %q", names, want)
	}
	if want := []string{"render/shot010_0001.png", "render/shot010_0002.png", "render/shot010_0003.png"}; !slices.Equal(paths, want) {
		t.Errorf("frames' relative paths are %q, want %q", paths, want)
	}
	dir := t.TempDir()
	b := fetch(ctx, t, c, *d.Transforms.FramesZip, dir, "frames.zip")
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var entries []string
	for _, zf := range zr.File {
		entries = append(entries, zf.Name)
	}
	if !slices.Equal(entries, paths) {
		t.Errorf("frames.zip holds %q, want %q", entries, paths)
	}
	// The download URL names the file so too.
	path := filepath.Join(dir, names[0])
	if _, err := c.DownloadFile(ctx, d.FrameOutputs[0].URL, path); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path, 32, 18)
}

// TestMultilayerFramesHoldThePassesAndMakeAPreview: an OPEN_EXR_MULTILAYER
// render holds the passes the analysis lists (its header's channels), and
// its preview video, made from JPEG proxies through the scene's view
// transform since ffmpeg cannot show the OpenEXR as the scene does, plays;
// the job's preview image is the middle frame's proxy.
func TestMultilayerFramesHoldThePassesAndMakeAPreview(t *testing.T) {
	f := startFarm(t)
	c := f.client("studio")
	ctx := testContext(t)
	blend := filepath.Join(t.TempDir(), "multilayer.blend")
	makeOutputScenes(t, outputScene{Out: blend, Format: "OPEN_EXR_MULTILAYER"})

	job := renderScene(ctx, t, c, blend, client.RenderConfig{ColorManagementPreset: client.String("default")})
	passes := job.Analysis.Scenes[0].RenderPasses
	if len(passes) != 1 || !slices.Equal(passes[0].Passes, []string{"Combined", "Depth", "Normal", "AO"}) {
		t.Fatalf("renderPasses = %+v; want Combined, Depth, Normal and AO of ViewLayer", passes)
	}
	d, err := c.Downloads(ctx, job.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.FrameOutputs) != 3 {
		t.Fatalf("%d frame outputs, want 3 (the proxies are not listed)", len(d.FrameOutputs))
	}
	dir := t.TempDir()
	b := fetch(ctx, t, c, d.FrameOutputs[0].URL, dir, d.FrameOutputs[0].FileName)
	if d.FrameOutputs[0].FileName != "frame_0001.exr" || !bytes.HasPrefix(b, exrMagic) {
		t.Fatalf("%s is not an OpenEXR file", d.FrameOutputs[0].FileName)
	}
	channels := exrChannels(t, b)
	for _, pass := range passes[0].Passes {
		if !slices.ContainsFunc(channels, func(c string) bool { return strings.HasPrefix(c, "ViewLayer."+pass+".") }) {
			t.Errorf("the frame's channels %q hold no pass %s", channels, pass)
		}
	}
	if d.Transforms.Video == nil {
		t.Fatal("no preview video")
	}
	video := filepath.Join(dir, "preview.mp4")
	if _, err := c.DownloadFile(ctx, d.Transforms.Video.URL, video); err != nil {
		t.Fatal(err)
	}
	checkMP4(t, video)
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "csv=p=0", video).Output()
	if err != nil || strings.TrimSpace(string(out)) != "h264,32,18,3" {
		t.Errorf("ffprobe of the preview: %q, %v; want 3 H.264 frames of 32x18", out, err)
	}
	// The job's preview image is a proxy a browser shows.
	if job.PreviewURL == nil {
		t.Fatal("no previewUrl")
	}
	if _, err := jpeg.DecodeConfig(bytes.NewReader(fetch(ctx, t, c, *job.PreviewURL, dir, "preview.jpg"))); err != nil {
		t.Errorf("previewUrl is not a JPEG: %v", err)
	}
}

// exrChannels reads the channel names of an OpenEXR file's header (its
// "channels" attribute, a chlist).
func exrChannels(t *testing.T, b []byte) []string {
	t.Helper()
	attr := []byte("channels\x00chlist\x00")
	i := bytes.Index(b, attr)
	if i < 0 || i+len(attr)+4 > len(b) {
		t.Fatal("no channels attribute in the OpenEXR header")
	}
	i += len(attr)
	size := int(binenc.LittleEndian.Uint32(b[i:]))
	list := b[i+4 : min(len(b), i+4+size)]
	var names []string
	for len(list) > 0 && list[0] != 0 {
		end := bytes.IndexByte(list, 0)
		if end < 0 || end+1+16 > len(list) {
			t.Fatal("a truncated channel list")
		}
		names = append(names, string(list[:end]))
		list = list[end+1+16:] // pixel type, pLinear and reserved, x and y sampling
	}
	return names
}

func decodeImage(t *testing.T, b []byte) image.Image {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func samePixels(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}
