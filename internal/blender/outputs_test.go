package blender

import (
	"bytes"
	"context"
	"encoding/json"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// makeOutputsScene is run by Blender to make the scene of an outputs
// test: the factory cube, tiny and fast in Cycles, three frames long, with
// what spec asks for: stereo views (written apart or as one anaglyph),
// File Output nodes (a depth pass as OpenEXR, an AO pass as PNG, each
// under the base path spec gives), a muted node and a node fed by nothing,
// and the frames' format.
const makeOutputsScene = `
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
scene.render.image_settings.file_format = spec.get("format", "PNG")
scene.render.filepath = spec.get("outputPath", "//render/")
layer = scene.view_layers[0]
layer.use_pass_z = True
layer.use_pass_ambient_occlusion = True
layer.use_pass_normal = True
if spec.get("stereo"):
    scene.render.use_multiview = True
    scene.render.views_format = "STEREO_3D"
    scene.render.image_settings.views_format = spec["stereo"]
    scene.camera.data.stereo.interocular_distance = 1.0
    # A file's own suffixes never name a file on the farm's disk.
    scene.render.views["left"].file_suffix = "_lft/x"
if spec.get("nodes"):
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
    lonely = tree.nodes.new("CompositorNodeOutputFile")
    lonely.name = "Lonely"
    lonely.base_path = spec["aoBase"]
if spec.get("groups"):
    # File Output nodes inside node groups: "Passes" holds one, and a group
    # of its own, "Deeper", that holds another; "Passes" is used twice, and
    # "Silent" only by a muted group node.
    scene.use_nodes = True
    tree = scene.node_tree
    layers = tree.nodes["Render Layers"]
    def group_of(name, base):
        group = bpy.data.node_groups.new(name, "CompositorNodeTree")
        if hasattr(group, "interface"):
            group.interface.new_socket("Image", in_out="INPUT", socket_type="NodeSocketColor")
        else:
            group.inputs.new("NodeSocketColor", "Image")
        given = group.nodes.new("NodeGroupInput")
        out = group.nodes.new("CompositorNodeOutputFile")
        out.name = "Out"
        out.base_path = base
        out.format.file_format = "PNG"
        out.file_slots[0].path = name.lower() + "_"
        group.links.new(given.outputs[0], out.inputs[0])
        return group, given
    def use(tree, group, name, mute=False):
        node = tree.nodes.new("CompositorNodeGroup")
        node.node_tree = group
        node.name = name
        node.mute = mute
        return node
    passes, given = group_of("Passes", spec["aoBase"])
    deeper, _ = group_of("Deeper", "//deeper/")
    inner = use(passes, deeper, "Inner")
    passes.links.new(given.outputs[0], inner.inputs[0])
    silent, _ = group_of("Silent", spec["aoBase"])
    for name, group, mute in (("Once", passes, False), ("Twice", passes, False), ("Muted", silent, True)):
        tree.links.new(layers.outputs["Image"], use(tree, group, name, mute).inputs[0])
bpy.ops.wm.save_as_mainfile(filepath=spec["out"])
`

// outputsScene describes a scene for makeOutputsScene.
type outputsScene struct {
	Out        string `json:"out"`
	Format     string `json:"format,omitempty"`
	OutputPath string `json:"outputPath,omitempty"`
	// Stereo is how the views are written: INDIVIDUAL or STEREO_3D; ""
	// for a scene of one view.
	Stereo string `json:"stereo,omitempty"`
	Nodes  bool   `json:"nodes,omitempty"`
	// Groups adds File Output nodes inside node groups.
	Groups    bool   `json:"groups,omitempty"`
	DepthBase string `json:"depthBase,omitempty"`
	AOBase    string `json:"aoBase,omitempty"`
}

func makeScene(t *testing.T, spec outputsScene) string {
	t.Helper()
	body, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("blender", "-b", "--factory-startup", "--disable-autoexec", "-noaudio",
		"--python-exit-code", "1", "--python-expr", makeOutputsScene, "--", string(body)).CombinedOutput()
	if err != nil {
		t.Fatalf("making the scene: %v\n%s", err, out)
	}
	return spec.Out
}

// savedFile is a file a FrameSaved event carried, read while it was open.
type savedFile struct {
	frame  int
	name   string
	output farm.FrameOutput
	body   []byte
}

// renderAll renders frames of blend and returns every file of every
// FrameSaved event, the frame's own image first.
func renderAll(t *testing.T, r *Runner, blend string, frames []int, naming string) []savedFile {
	t.Helper()
	var files []savedFile
	job := RenderJob{BlendPath: blend, Frames: frames, OutputDir: filepath.Join(t.TempDir(), "out"), Naming: naming}
	_, err := r.Render(context.Background(), job, func(ev Event) {
		if ev.Kind != FrameSaved {
			return
		}
		for _, img := range append([]*FrameImage{ev.Image}, ev.Outputs...) {
			body, err := io.ReadAll(img.Reader())
			if err != nil {
				t.Error(err)
			}
			files = append(files, savedFile{frame: ev.Frame, name: img.Name, output: img.Output, body: body})
		}
	})
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return files
}

// TestRenderTakesEveryFileOfAFrame: a stereo scene with two File Output
// nodes makes, for each frame, an image per view and a file per view of
// each node's slot; each is taken from the name the farm gave it (the
// file's own view suffix, a path, is not used), checked for its format,
// and named for download as the node and slot name it. The muted node and
// the node fed by nothing write nothing, and the node whose base path is
// outside the run writes nothing there. Blender runs unconfined here: it
// is the farm's redirection that keeps the files in the run, not only the
// sandbox. On every Blender of the machine (3.4, and 4.3 where it is).
func TestRenderTakesEveryFileOfAFrame(t *testing.T) {
	needBlender(t)
	for _, each := range runnersHere(t) {
		t.Run(each.name, func(t *testing.T) { renderTakesEveryFileOfAFrame(t, each.r) })
	}
}

func renderTakesEveryFileOfAFrame(t *testing.T, r *Runner) {
	dir := t.TempDir()
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	blend := makeScene(t, outputsScene{Out: filepath.Join(dir, "stereo.blend"), Stereo: "INDIVIDUAL",
		Nodes: true, DepthBase: "//passes/", AOBase: elsewhere + "/ao/"})

	files := renderAll(t, r, blend, []int{2, 3}, farm.NamingFarm)

	type want struct {
		name, fileName, view, node string
		kind                       farm.OutputKind
		magic                      string
	}
	var wants []want
	for _, frame := range []string{"0002", "0003"} {
		wants = append(wants,
			want{"frame_" + frame + "_L.png", "frame_" + frame + "_lft_x.png", "left", "", farm.OutputFrame, "\x89PNG"},
			want{"frame_" + frame + "_R.png", "frame_" + frame + "_R.png", "right", "", farm.OutputFrame, "\x89PNG"},
			want{"nodes/0/0/f_" + frame + "_L.exr", "Depth_Out/depth_" + frame + "_lft_x.exr", "left", "Depth Out", farm.OutputCompositeNode, "\x76\x2f\x31\x01"},
			want{"nodes/0/0/f_" + frame + "_R.exr", "Depth_Out/depth_" + frame + "_R.exr", "right", "Depth Out", farm.OutputCompositeNode, "\x76\x2f\x31\x01"},
			want{"nodes/1/0/f_" + frame + "_L.png", "AO/ao_" + frame + "_lft_x.png", "left", "AO", farm.OutputCompositeNode, "\x89PNG"},
			want{"nodes/1/0/f_" + frame + "_R.png", "AO/ao_" + frame + "_R.png", "right", "AO", farm.OutputCompositeNode, "\x89PNG"},
		)
	}
	if len(files) != len(wants) {
		names := make([]string, len(files))
		for i, f := range files {
			names[i] = f.name
		}
		t.Fatalf("the frames made %d files %q, want %d", len(files), names, len(wants))
	}
	for i, w := range wants {
		got := files[i]
		if got.name != w.name || got.output.Kind != w.kind || got.output.FileName != w.fileName ||
			got.output.RelativePath != w.fileName || got.output.View == nil || *got.output.View != w.view ||
			got.output.CompositeNodeName != w.node {
			t.Errorf("file %d = %s %+v (view %v), want %+v", i, got.name, got.output, deref(got.output.View), w)
		}
		if !bytes.HasPrefix(got.body, []byte(w.magic)) {
			t.Errorf("%s starts with % x, not its format's", got.name, got.body[:min(8, len(got.body))])
		}
	}
	// The two views show the scene from two places.
	if bytes.Equal(files[0].body, files[1].body) {
		t.Error("the left and right views of frame 2 are the same image")
	}
	if entries, err := os.ReadDir(elsewhere); err == nil || !os.IsNotExist(err) {
		t.Errorf("the AO node wrote outside the run, into %s: %v", elsewhere, entries)
	}
	if _, err := os.Stat(filepath.Join(dir, "passes")); !os.IsNotExist(err) {
		t.Errorf("the depth node wrote beside the .blend: %v", err)
	}
}

// TestFileOutputNodesInsideGroupsAreTaken: Blender runs the File Output
// nodes inside the node groups a scene's compositor uses, a group inside a
// group too, so the farm sends their files into the run and takes them as
// it takes the scene's own nodes, named for download by their group and
// their name. A group used twice writes its node's file once for the
// frame; a muted group writes nothing; no node writes where its base path
// points. On every Blender of the machine.
func TestFileOutputNodesInsideGroupsAreTaken(t *testing.T) {
	needBlender(t)
	elsewhere := filepath.Join(t.TempDir(), "elsewhere")
	dir := t.TempDir()
	blend := makeScene(t, outputsScene{Out: filepath.Join(dir, "groups.blend"), Groups: true, AOBase: elsewhere + "/"})
	for _, each := range runnersHere(t) {
		t.Run(each.name, func(t *testing.T) {
			files := renderAll(t, each.r, blend, []int{1}, farm.NamingFarm)
			var got []string
			for _, f := range files {
				got = append(got, f.name+" "+f.output.CompositeNodeName+" "+f.output.RelativePath)
				if !bytes.HasPrefix(f.body, []byte("\x89PNG")) {
					t.Errorf("%s is not a PNG", f.name)
				}
			}
			want := []string{
				"frame_0001.png  frame_0001.png",
				"nodes/0/0/f_0001.png Passes/Out Passes_Out/passes_0001.png",
				"nodes/1/0/f_0001.png Deeper/Out Deeper_Out/deeper_0001.png",
			}
			if !slices.Equal(got, want) {
				t.Errorf("the frame's files:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
	for _, place := range []string{elsewhere, filepath.Join(dir, "deeper")} {
		if entries, err := os.ReadDir(place); !os.IsNotExist(err) {
			t.Errorf("a node in a group wrote outside the run, into %s: %v", place, entries)
		}
	}
}

// TestRenderStereoInOneImage: views written as one stereo image make one
// file per frame, whose view is "stereo". On every Blender of the machine.
func TestRenderStereoInOneImage(t *testing.T) {
	needBlender(t)
	blend := makeScene(t, outputsScene{Out: filepath.Join(t.TempDir(), "anaglyph.blend"), Stereo: "STEREO_3D"})
	for _, each := range runnersHere(t) {
		t.Run(each.name, func(t *testing.T) {
			files := renderAll(t, each.r, blend, []int{1}, farm.NamingFarm)
			if len(files) != 1 || files[0].name != "frame_0001.png" || deref(files[0].output.View) != "stereo" ||
				files[0].output.FileName != "frame_0001.png" {
				t.Fatalf("files = %+v; want frame_0001.png alone, of view stereo", files)
			}
			if _, err := png.DecodeConfig(bytes.NewReader(files[0].body)); err != nil {
				t.Errorf("frame_0001.png: %v", err)
			}
		})
	}
}

// TestRenderMultilayerKeepsAProxy: an OPEN_EXR_MULTILAYER frame comes with
// a JPEG proxy for the preview, made through the scene's view transform;
// the frame is named as the scene's output path names it when asked. On
// every Blender of the machine.
func TestRenderMultilayerKeepsAProxy(t *testing.T) {
	needBlender(t)
	blend := makeScene(t, outputsScene{Out: filepath.Join(t.TempDir(), "multilayer.blend"),
		Format: "OPEN_EXR_MULTILAYER", OutputPath: "//render/shot010_####"})
	for _, each := range runnersHere(t) {
		t.Run(each.name, func(t *testing.T) { renderMultilayerKeepsAProxy(t, each.r, blend) })
	}
}

func renderMultilayerKeepsAProxy(t *testing.T, r *Runner, blend string) {
	files := renderAll(t, r, blend, []int{1}, farm.NamingScene)
	if len(files) != 2 {
		t.Fatalf("files = %+v; want the frame and its proxy", files)
	}
	frame, proxy := files[0], files[1]
	if frame.name != "frame_0001.exr" || frame.output.FileName != "shot010_0001.exr" ||
		frame.output.RelativePath != "render/shot010_0001.exr" || frame.output.View != nil {
		t.Errorf("frame = %s %+v", frame.name, frame.output)
	}
	if !bytes.HasPrefix(frame.body, []byte("\x76\x2f\x31\x01")) || !bytes.Contains(frame.body, []byte("ViewLayer.AO.R")) {
		t.Errorf("the frame is not a multilayer OpenEXR with the AO pass")
	}
	if proxy.name != "preview/frame_0001.jpg" || proxy.output.Kind != farm.OutputPreview {
		t.Errorf("proxy = %s %+v", proxy.name, proxy.output)
	}
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(proxy.body))
	if err != nil || cfg.Width != 32 || cfg.Height != 18 {
		t.Errorf("the proxy is %+v (%v); want a 32x18 JPEG", cfg, err)
	}
}

// TestInspectListsOutputs: the analysis lists a scene's File Output nodes
// that write (not the muted one, nor the one fed by nothing), with their
// slots' paths, its views, and each view layer's passes, on every Blender
// of the machine.
func TestInspectListsOutputs(t *testing.T) {
	needBlender(t)
	blend := makeScene(t, outputsScene{Out: filepath.Join(t.TempDir(), "inspect.blend"), Stereo: "INDIVIDUAL",
		Nodes: true, DepthBase: "//passes/", AOBase: "/tmp/elsewhere/"})
	for _, each := range runnersHere(t) {
		t.Run(each.name, func(t *testing.T) { inspectListsOutputs(t, each.r, blend) })
	}
}

func inspectListsOutputs(t *testing.T, r *Runner, blend string) {
	insp, err := r.Inspect(context.Background(), blend)
	if err != nil {
		t.Fatal(err)
	}
	s := insp.Scenes[0]
	wantNodes := []farm.FileOutputNode{
		{Name: "Depth Out", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL", BasePath: "//passes/",
			Slots: []farm.FileOutputSlot{{Path: "depth_####", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL"}}},
		{Name: "AO", Format: "PNG", ImageViews: "INDIVIDUAL", BasePath: "/tmp/elsewhere/",
			Slots: []farm.FileOutputSlot{{Path: "ao_", Format: "PNG", ImageViews: "INDIVIDUAL"}}},
	}
	if !slices.EqualFunc(s.FileOutputNodes, wantNodes, func(a, b farm.FileOutputNode) bool {
		return a.Name == b.Name && a.Format == b.Format && a.BasePath == b.BasePath && slices.Equal(a.Slots, b.Slots)
	}) {
		t.Errorf("fileOutputNodes = %+v\nwant %+v", s.FileOutputNodes, wantNodes)
	}
	if mv := s.Multiview; mv == nil || mv.Mode != "STEREO_3D" || mv.ImageViews != "INDIVIDUAL" ||
		!slices.Equal(mv.Views, []farm.View{{Name: "left", Suffix: "_lft/x"}, {Name: "right", Suffix: "_R"}}) {
		t.Errorf("multiview = %+v", s.Multiview)
	}
	if len(s.RenderPasses) != 1 || !slices.Equal(s.RenderPasses[0].Passes, []string{"Combined", "Depth", "Normal", "AO"}) {
		t.Errorf("renderPasses = %+v; want Combined, Depth, Normal, AO", s.RenderPasses)
	}
	if s.OutputPath != "//render/" || !s.UseFileExtension {
		t.Errorf("outputPath %q, useFileExtension %v", s.OutputPath, s.UseFileExtension)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestLayoutsTheFarmCannotFollowAreRefused: a layout is checked before a
// frame is taken by it: views written in a way the farm does not know, a
// format it does not store, a node without fed inputs, and a scene whose
// frames would each make more than MaxFilesPerFrame files are refused,
// saying why.
func TestLayoutsTheFarmCannotFollowAreRefused(t *testing.T) {
	stereo := &farm.Multiview{Mode: "STEREO_3D", ImageViews: "INDIVIDUAL", Views: []farm.View{{Name: "left", Suffix: "_L"}, {Name: "right", Suffix: "_R"}}}
	node := func(slots int) farm.FileOutputNode {
		n := farm.FileOutputNode{Name: "N", Format: "PNG", ImageViews: "INDIVIDUAL"}
		for range slots {
			n.Slots = append(n.Slots, farm.FileOutputSlot{Path: "s", Format: "PNG", ImageViews: "INDIVIDUAL"})
		}
		return n
	}
	// Two views, and 511 slots of two nodes make 2 + 2*511 = 1024 files.
	atLimit := outputLayout{Format: "PNG", Multiview: stereo, FileOutputNodes: []farm.FileOutputNode{node(256), node(255)}}
	if err := atLimit.check(); err != nil {
		t.Errorf("a layout of %d files a frame: %v", MaxFilesPerFrame, err)
	}
	for _, tt := range []struct {
		name   string
		layout outputLayout
		says   string
	}{
		{"one file too many", outputLayout{Format: "PNG", Multiview: stereo, FileOutputNodes: []farm.FileOutputNode{node(256), node(256)}},
			"would make 1026 files"},
		{"views written an unknown way", outputLayout{Format: "PNG", Multiview: &farm.Multiview{ImageViews: "ANAGLYPH", Views: stereo.Views}},
			`writes views as "ANAGLYPH"`},
		{"no views", outputLayout{Format: "PNG", Multiview: &farm.Multiview{ImageViews: "INDIVIDUAL"}}, "has 0 views"},
		{"a node fed by nothing", outputLayout{Format: "PNG", FileOutputNodes: []farm.FileOutputNode{node(0)}}, "has 0 fed inputs"},
		{"a node writing a movie", outputLayout{Format: "PNG", FileOutputNodes: []farm.FileOutputNode{{Name: "M", Format: "FFMPEG", ImageViews: "INDIVIDUAL",
			Slots: []farm.FileOutputSlot{{Path: "m", Format: "FFMPEG", ImageViews: "INDIVIDUAL"}}}}}, "writes FFMPEG images"},
		{"too many nodes", outputLayout{Format: "PNG", FileOutputNodes: make([]farm.FileOutputNode, maxLayoutNodes+1)}, "257 File Output nodes"},
	} {
		if err := tt.layout.check(); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%s: %v; want an error saying %q", tt.name, err, tt.says)
		}
	}
}

// TestReadLayoutTakesOnlyWhatTheScriptWrote: the layout is read from the
// run directory as a frame is taken (no link followed, within 4 MiB) and
// decoded strictly.
func TestReadLayoutTakesOnlyWhatTheScriptWrote(t *testing.T) {
	dir := t.TempDir()
	good := `{"format": "PNG", "codec": "", "outputPath": "//", "useFileExtension": true, "multiview": null, "fileOutputNodes": [], "proxy": false}`
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("good.json", good)
	write("unknown.json", strings.Replace(good, `"proxy"`, `"thumbnail"`, 1))
	write("big.json", good+strings.Repeat(" ", maxLayoutBytes))
	if err := os.Symlink(filepath.Join(dir, "good.json"), filepath.Join(dir, "link.json")); err != nil {
		t.Fatal(err)
	}
	d, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if l, err := readLayout(d, "good.json"); err != nil || l.Format != "PNG" {
		t.Errorf("readLayout(good) = %+v, %v", l, err)
	}
	for name, says := range map[string]string{"unknown.json": "thumbnail", "big.json": "more than", "link.json": "symbolic link", "none.json": "no output layout"} {
		if _, err := readLayout(d, name); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("readLayout(%s) = %v; want an error saying %q", name, err, says)
		}
	}
}

// TestAFrameIsTakenWithEveryFileItMakes: a frame's files are taken by the
// names the layout gives them when the script says the frame is saved; a
// node's image missing, or a link in its place, fails the frame naming the
// node, while a missing preview proxy leaves the frame whole.
func TestAFrameIsTakenWithEveryFileItMakes(t *testing.T) {
	const nonce = capturedNonce
	layout := &outputLayout{Format: "OPEN_EXR", Proxy: true, OutputPath: "//render/", UseFileExtension: true,
		FileOutputNodes: []farm.FileOutputNode{{Name: "AO", Format: "PNG", ImageViews: viewsIndividual,
			Slots: []farm.FileOutputSlot{{Path: "ao_", Format: "PNG", ImageViews: viewsIndividual}}}}}
	exr, err := formatOf("OPEN_EXR", "")
	if err != nil {
		t.Fatal(err)
	}
	dir, path := outputDirWith(t, map[string]string{
		"frame_0001.exr": "v/1\x01 one", "frame_0002.exr": "v/1\x01 two", "frame_0003.exr": "v/1\x01 three",
		"frame_0004.exr": "v/1\x01 four",
	})
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, sub := range []string{"nodes/0/0", "preview"} {
		must(os.MkdirAll(filepath.Join(path, sub), 0o755))
	}
	must(os.WriteFile(filepath.Join(path, "nodes/0/0/f_0001.png"), []byte(pngHead+"ao one"), 0o644))
	must(os.WriteFile(filepath.Join(path, "preview/frame_0001.jpg"), []byte("\xff\xd8\xff proxy"), 0o644))
	// Frame 4 has its node's image and no proxy.
	must(os.WriteFile(filepath.Join(path, "nodes/0/0/f_0004.png"), []byte(pngHead+"ao four"), 0o644))
	// Frame 2's node image is missing; frame 3's is a link to another file.
	must(os.Symlink(filepath.Join(path, "nodes/0/0/f_0001.png"), filepath.Join(path, "nodes/0/0/f_0003.png")))

	var saved []Event
	out := newChunkOutput(RenderJob{Frames: []int{1, 2, 3, 4}}, func(ev Event) {
		if ev.Kind == FrameSaved {
			saved = append(saved, ev)
		}
	}, nil)
	out.dir, out.outputDir, out.files = dir, path, newFrameFiles(layout, exr, farm.NamingScene)
	out.parser.Nonce = nonce
	for _, f := range []string{"1", "2", "3", "4"} {
		out.line("renderfarm-session " + nonce + " frame " + f)
		out.line("renderfarm-session " + nonce + " saved " + f + " 0.5")
	}
	if len(saved) != 2 || saved[0].Frame != 1 || len(saved[0].Outputs) != 2 || saved[1].Frame != 4 || len(saved[1].Outputs) != 1 {
		t.Fatalf("saved %+v; want frame 1 with its node's image and its proxy, and frame 4 with its node's image", saved)
	}
	if got := saved[0].Image.Output; got.FileName != "0001.exr" || got.RelativePath != "render/0001.exr" {
		t.Errorf("frame 1 is named %+v", got)
	}
	if node := saved[0].Outputs[0]; node.Name != "nodes/0/0/f_0001.png" || node.Output.FileName != "AO/ao_0001.png" || node.Output.CompositeNodeName != "AO" {
		t.Errorf("frame 1's node image = %s %+v", node.Name, node.Output)
	}
	if msg := out.frameErrors[2]; !strings.Contains(msg, `the File Output node "AO"'s image was never written (nodes/0/0/f_0002.png)`) {
		t.Errorf("frame 2's error = %q; want it to name the node's missing image", msg)
	}
	if msg := out.frameErrors[3]; !strings.Contains(msg, "symbolic link") {
		t.Errorf("frame 3's error = %q; want the link refused", msg)
	}
}

// TestEveryDownloadNameOfAJobIsItsOwn: whatever the scene's names, no two
// files of a job download under one name, in any case, and no frame
// takes the name of the job's preview video or zips. Here the scene's
// names would collide every way they can: an output path without
// extensions names frame 4 preview.mp4; a view's suffix of digits runs
// into the frame's number (frame 11 of one view and frame 1 of the other,
// whose suffix is "1", are both shot_11.png); views' suffixes, File Output
// nodes' names and two slots' paths differ only in case; and an output
// path is long enough to be cut.
func TestEveryDownloadNameOfAJobIsItsOwn(t *testing.T) {
	png, err := formatOf("PNG", "")
	if err != nil {
		t.Fatal(err)
	}
	slots := []farm.FileOutputSlot{{Path: "img_####", Format: "PNG", ImageViews: viewsIndividual}, {Path: "IMG_####", Format: "PNG", ImageViews: viewsIndividual}}
	nodes := []farm.FileOutputNode{
		{Name: "Pass", Format: "PNG", ImageViews: viewsIndividual, Slots: slots},
		{Name: "pass", Format: "PNG", ImageViews: viewsIndividual, Slots: slots},
	}
	views := func(suffixes ...string) *farm.Multiview {
		mv := &farm.Multiview{Mode: "MULTIVIEW", ImageViews: viewsIndividual}
		for i, s := range suffixes {
			mv.Views = append(mv.Views, farm.View{Name: "cam" + strconv.Itoa(i), Suffix: s})
		}
		return mv
	}
	for _, layout := range []*outputLayout{
		{Format: "PNG", OutputPath: "//preview.mp#", FileOutputNodes: nodes},
		{Format: "PNG", OutputPath: "//shot_#", UseFileExtension: true, Multiview: views("", "1")},
		{Format: "PNG", OutputPath: "//shot_####", UseFileExtension: true, Multiview: views("_L", "_l"), FileOutputNodes: nodes},
		{Format: "PNG", OutputPath: "//render/" + strings.Repeat("a", 118) + "_####", UseFileExtension: true},
	} {
		files := newFrameFiles(layout, png, farm.NamingScene)
		frames, nodes := map[string]int{}, map[string]int{}
		for frame := 1; frame <= 300; frame++ {
			for _, f := range files.of(frame) {
				o := f.output
				taken := frames
				if o.Kind == farm.OutputCompositeNode {
					taken = nodes
				} else if o.Kind != farm.OutputFrame {
					continue
				}
				key := strings.ToLower(o.FileName)
				if other, ok := taken[key]; ok {
					t.Errorf("%s: frames %d and %d both have a file named %q", layout.OutputPath, other, frame, o.FileName)
				}
				taken[key] = frame
			}
		}
		for _, own := range []string{"preview.mp4", "frames.zip", "compositenodes.zip"} {
			if frame, ok := frames[own]; ok {
				t.Errorf("%s: frame %d is named %s", layout.OutputPath, frame, own)
			}
		}
	}
}
