package farm_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

var (
	png = farm.ExtensionsOf("PNG", "")
	exr = farm.ExtensionsOf("OPEN_EXR", "")
)

// TestFrameNamesTellEveryFrameApart: where the scene's names would not
// tell two frames apart, or would name a frame as the job's preview
// video, the frame is named the farm's way, in the scene's folder; every
// other frame keeps the scene's name.
func TestFrameNamesTellEveryFrameApart(t *testing.T) {
	for _, tt := range []struct {
		about  string
		naming farm.SceneNaming
		frame  int
		want   farm.FrameFileNames
	}{
		{"the preview video's name, without extensions",
			farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//preview.mp#"}, 4,
			farm.FrameFileNames{FileName: "frame_0004.png", RelativePath: "frame_0004.png"}},
		{"the frames before it keep theirs",
			farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//preview.mp#"}, 3,
			farm.FrameFileNames{FileName: "preview.mp3", RelativePath: "preview.mp3"}},
		{"in any case",
			farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//out/FRAMES.ZI#"}, 8,
			farm.FrameFileNames{FileName: "FRAMES.ZI8", RelativePath: "out/FRAMES.ZI8"}},
		{"Blender takes frame 2's number for the extension .jp2 and drops it",
			farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//render/x.jp#", UseFileExtension: true}, 2,
			farm.FrameFileNames{FileName: "frame_0002.png", RelativePath: "render/frame_0002.png"}},
		{"frame 3's stays",
			farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//render/x.jp#", UseFileExtension: true}, 3,
			farm.FrameFileNames{FileName: "x.jp3.png", RelativePath: "render/x.jp3.png"}},
	} {
		if got := tt.naming.FrameNames(tt.frame, png, ""); got != tt.want {
			t.Errorf("%s: %s frame %d = %+v, want %+v", tt.about, tt.naming.OutputPath, tt.frame, got, tt.want)
		}
	}
}

// TestViewsWhoseSuffixesAreAlike: two views whose suffixes differ only in
// case, or not at all, would write one file on macOS or Windows; the
// second is named with the farm's suffix for it.
func TestViewsWhoseSuffixesAreAlike(t *testing.T) {
	naming := farm.SceneNaming{Naming: farm.NamingFarm}
	namer := naming.FrameNamer(exr, []farm.ViewSuffix{{Scene: "_L", Farm: "_L"}, {Scene: "_l", Farm: "_R"}, {Scene: "_l", Farm: "_V2"}})
	var got []string
	for view := range 3 {
		got = append(got, namer.Names(1, view).FileName)
	}
	if want := []string{"frame_0001_L.exr", "frame_0001_R.exr", "frame_0001_V2.exr"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("views of frame 1: %q, want %q", got, want)
	}
	// Views told apart keep the scene's suffixes, whatever they are.
	namer = naming.FrameNamer(exr, []farm.ViewSuffix{{Scene: "_lft", Farm: "_L"}, {Scene: "_R", Farm: "_R"}})
	if got := namer.Names(1, 0).FileName + " " + namer.Names(1, 1).FileName; got != "frame_0001_lft.exr frame_0001_R.exr" {
		t.Errorf("views of frame 1: %s", got)
	}
}

// TestNodeFilesOfSlotsAlike: two slots of a node with one path, or paths
// that differ only in case, would write one file; the second is named by
// its slot.
func TestNodeFilesOfSlotsAlike(t *testing.T) {
	naming := farm.SceneNaming{Naming: farm.NamingFarm}
	namer := naming.NodeNamer([]farm.NodeFile{
		{Slot: 0, Template: "depth_####", Exts: exr},
		{Slot: 1, Template: "depth_####", Exts: exr},
		{Slot: 2, Template: "Depth_####", Exts: exr},
		{Slot: 3, Template: "passes/ao_", Exts: png},
	})
	var got []string
	for file := range 4 {
		got = append(got, namer.Name(7, file))
	}
	if want := []string{"depth_0007.exr", "slot2_0007.exr", "slot3_0007.exr", "passes/ao_0007.png"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("node files of frame 7: %q, want %q", got, want)
	}
}

// TestEveryFileOfAJobHasANameOfItsOwn: for output paths and views made to
// confuse names (frame digits beside a suffix's digits, suffixes alike in
// case, extensions a frame's number completes, names cut short, device
// names, the job's own files), the images of frames 0 to 120 and of
// frames with more digits than the template's '#'s all have names of
// their own, in any case, none of them the job's own files'; and a
// File Output node's files likewise.
func TestEveryFileOfAJobHasANameOfItsOwn(t *testing.T) {
	templates := []string{
		"//render/shot_####", "//preview.mp#", "//frames.zi#", "//x.jp#", "//x.j#c", "//a#", "//#", "//1#",
		"//render/" + strings.Repeat("a", 118) + "_####", "//" + strings.Repeat("b", 200) + "_##_" + strings.Repeat("c", 100),
		"//" + strings.Repeat("#", 150), "//NUL.#", "//a.#.", "//a_#_1", "//x#.png", "/abs/p_", "//r/a.b",
	}
	suffixSets := [][]farm.ViewSuffix{
		{{}},
		{{Scene: "_L", Farm: "_L"}, {Scene: "_R", Farm: "_R"}},
		{{Scene: "_L", Farm: "_L"}, {Scene: "_l", Farm: "_R"}},
		{{Scene: "", Farm: "_V0"}, {Scene: "0", Farm: "_V1"}, {Scene: "1", Farm: "_V2"}, {Scene: "01", Farm: "_V3"}},
		{{Scene: "_R", Farm: "_L"}, {Scene: "_L", Farm: "_R"}, {Scene: "_V2", Farm: "_V2"}},
		{{Scene: ".jp", Farm: "_L"}, {Scene: "/x", Farm: "_R"}, {Scene: "_x", Farm: "_V2"}},
	}
	frames := []int{999, 1000, 1001, 9999, 10000, 10001, 99999, 100000, 1048574}
	for f := range 121 {
		frames = append(frames, f)
	}
	for _, template := range templates {
		for _, useExt := range []bool{true, false} {
			for _, views := range suffixSets {
				naming := farm.SceneNaming{Naming: farm.NamingScene, OutputPath: template, UseFileExtension: useExt}
				namer := naming.FrameNamer(png, views)
				taken := map[string]string{}
				for _, f := range frames {
					for v := range views {
						names := namer.Names(f, v)
						who := fmt.Sprintf("frame %d view %d", f, v)
						key := strings.ToLower(names.FileName)
						if other, ok := taken[key]; ok {
							t.Fatalf("%s (extensions %v, views %+v): %s and %s are both %q", template, useExt, views, other, who, names.FileName)
						}
						taken[key] = who
						if key == "preview.mp4" || key == "frames.zip" || key == "compositenodes.zip" || len(names.FileName) > farm.MaxNameComponentBytes ||
							farm.SafeComponent(names.FileName) != names.FileName || names.FileName != names.RelativePath[strings.LastIndexByte(names.RelativePath, '/')+1:] {
							t.Fatalf("%s (extensions %v, views %+v): %s is %+v", template, useExt, views, who, names)
						}
					}
				}
				// A node whose slots are these templates and views.
				var files []farm.NodeFile
				for slot, tmpl := range []string{template, strings.ToUpper(template), template} {
					for _, v := range views {
						files = append(files, farm.NodeFile{Slot: slot, Template: strings.TrimPrefix(tmpl, "//"), Exts: png, View: v})
					}
				}
				nodes := naming.NodeNamer(files)
				taken = map[string]string{}
				for _, f := range frames[:40] {
					for i := range files {
						name := nodes.Name(f, i)
						who := fmt.Sprintf("frame %d file %d", f, i)
						if other, ok := taken[strings.ToLower(name)]; ok {
							t.Fatalf("node of %s (extensions %v, views %+v): %s and %s are both %q", template, useExt, views, other, who, name)
						}
						taken[strings.ToLower(name)] = who
					}
				}
			}
		}
	}
}

// TestRandomTemplatesGiveUniqueNames: the same for output paths and views
// of random characters, those that matter most ('#', '.', digits,
// letters of both cases, '/') more often.
func TestRandomTemplatesGiveUniqueNames(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "##..0123456789aAjJpPgG/_-x"
	word := func(n int) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	frames := []int{0, 1, 2, 3, 9, 10, 11, 12, 20, 22, 99, 100, 101, 111, 999, 1000, 1001, 9999, 10000, 10001, 1048574}
	for range 1000 {
		template := "//" + word(12)
		if rng.IntN(8) == 0 {
			template += strings.Repeat("y", 110+rng.IntN(20)) + word(4)
		}
		var views []farm.ViewSuffix
		for i := range 1 + rng.IntN(3) {
			views = append(views, farm.ViewSuffix{Scene: word(3), Farm: fmt.Sprintf("_V%d", i)})
		}
		naming := farm.SceneNaming{Naming: farm.NamingScene, OutputPath: template, UseFileExtension: rng.IntN(2) == 0}
		namer := naming.FrameNamer(png, views)
		taken := map[string]string{}
		for _, f := range frames {
			for v := range views {
				name := strings.ToLower(namer.Names(f, v).FileName)
				who := fmt.Sprintf("frame %d view %d", f, v)
				if other, ok := taken[name]; ok {
					t.Fatalf("%q (extensions %v, views %+v): %s and %s are both %q", template, naming.UseFileExtension, views, other, who, name)
				}
				taken[name] = who
			}
		}
	}
}
