package farm_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The rules of Blender's own names are checked against Blender itself in
// internal/blender (TestBlenderPathIsBlendersFramePath); these tests hold
// what the farm adds: safe download names.

func TestBlenderPathPutsTheFrameWhereBlenderDoes(t *testing.T) {
	png := farm.ExtensionsOf("PNG", "")
	for _, tt := range []struct {
		template string
		frame    int
		useExt   bool
		suffix   string
		want     string
	}{
		{"//render/shot010_####", 1, true, "", "//render/shot010_0001.png"},
		{"//render/shot010_", 12345, true, "", "//render/shot010_12345.png"},
		{"//r/#_#", 7, true, "", "//r/#_7.png"},
		{"//a#b/c", 7, false, "", "//a#b/c0007"},
		{"//r/img_####.jpg", 7, true, "", "//r/img_0007.png"},
		{"//r/img_####.PNG", 7, true, "", "//r/img_0007.PNG"},
		{"//render/shot010_####", 1, true, "_L", "//render/shot010_0001_L.png"},
		{"//r/a.b", 7, true, "_L", "//r/a_L.b0007.png"},
	} {
		if got := farm.BlenderPath(tt.template, tt.frame, png, tt.useExt, tt.suffix); got != tt.want {
			t.Errorf("BlenderPath(%q, %d, ext %v, %q) = %q, want %q", tt.template, tt.frame, tt.useExt, tt.suffix, got, tt.want)
		}
	}
	if got := farm.ExtensionsOf("JPEG2000", "J2K"); !slices.Equal(got, []string{".j2c"}) {
		t.Errorf("a raw JPEG 2000 codestream's extension = %v, want .j2c", got)
	}
}

// TestRelativeNameIsSafeInAZip: whatever a scene's output path holds, its
// download name is relative, without "..", hidden files or characters a
// shell or another system would trip on, and bounded.
func TestRelativeNameIsSafeInAZip(t *testing.T) {
	for _, tt := range []struct{ path, want string }{
		{"//render/shot010_0001.png", "render/shot010_0001.png"},
		{"/mnt/show/shot010/render/shot010_0001.png", "shot010_0001.png"},
		{`C:\renders\shot010_0001.png`, "shot010_0001.png"},
		{"//../../etc/passwd0001.png", "etc/passwd0001.png"},
		{"//./render//x.png", "render/x.png"},
		{"//.hidden/.x.png", "_hidden/_x.png"},
		{"//render/shot 010 (final)ü.png", "render/shot_010__final__.png"},
		{"//", "_"},
		{"relative/dir/f_007.png", "relative/dir/f_007.png"},
		{"//a/b/c/d/e/f/g/h/x.png", "d/e/f/g/h/x.png"}, // the last six
	} {
		if got := farm.RelativeName(tt.path); got != tt.want {
			t.Errorf("RelativeName(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	long := "//" + strings.Repeat(strings.Repeat("a", 200)+"/", 5) + strings.Repeat("b", 300) + ".png"
	got := farm.RelativeName(long)
	if len(got) > farm.MaxRelativeNameBytes || strings.HasPrefix(got, "/") || strings.Contains(got, "..") {
		t.Errorf("RelativeName of a long path = %q (%d bytes)", got, len(got))
	}
	for _, c := range strings.Split(got, "/") {
		if len(c) > farm.MaxNameComponentBytes {
			t.Errorf("component %q is %d bytes, over %d", c, len(c), farm.MaxNameComponentBytes)
		}
	}
}

func TestFrameNamesByNaming(t *testing.T) {
	exr := farm.ExtensionsOf("OPEN_EXR", "")
	byFarm := farm.SceneNaming{Naming: farm.NamingFarm, OutputPath: "//render/shot010_####", UseFileExtension: false}
	byScene := byFarm
	byScene.Naming = farm.NamingScene
	for _, tt := range []struct {
		naming farm.SceneNaming
		suffix string
		want   farm.FrameFileNames
	}{
		{byFarm, "", farm.FrameFileNames{FileName: "frame_0003.exr", RelativePath: "frame_0003.exr"}},
		{byFarm, "_L", farm.FrameFileNames{FileName: "frame_0003_L.exr", RelativePath: "frame_0003_L.exr"}},
		// A suffix that is a path stays in the file's name.
		{byFarm, "/../x", farm.FrameFileNames{FileName: "frame_0003_.._x.exr", RelativePath: "frame_0003_.._x.exr"}},
		// The scene's own rules: no extension when it adds none.
		{byScene, "", farm.FrameFileNames{FileName: "shot010_0003", RelativePath: "render/shot010_0003"}},
		{byScene, "_R", farm.FrameFileNames{FileName: "shot010_0003_R", RelativePath: "render/shot010_0003_R"}},
	} {
		if got := tt.naming.FrameNames(3, exr, tt.suffix); got != tt.want {
			t.Errorf("%s naming, suffix %q: %+v, want %+v", tt.naming.Naming, tt.suffix, got, tt.want)
		}
	}
	// Node images always have their extension unless the scene's naming
	// says otherwise; a slot's folders stay, made safe.
	if got := byFarm.NodeFileName("passes/../depth_##", 3, exr, "_L"); got != "passes/depth_03_L.exr" {
		t.Errorf("NodeFileName = %q", got)
	}
	if got := byScene.NodeFileName("/abs/depth_", 3, exr, ""); got != "abs/depth_0003" {
		t.Errorf("NodeFileName of the scene's naming = %q", got)
	}
}

func TestNodeFoldersAndUniqueNames(t *testing.T) {
	got := farm.NodeFolders([]string{"Depth Out", "Depth_Out", "AO", "", ".."})
	// ".." is "_.", which Windows would keep as "_": see TestNamesWindowsKeeps.
	if want := []string{"Depth_Out", "Depth_Out_2", "AO", "_", "_._"}; !slices.Equal(got, want) {
		t.Errorf("NodeFolders = %q, want %q", got, want)
	}
	taken := map[string]bool{}
	var names []string
	for _, n := range []string{"a/x.png", "a/x.png", "a/x.png", "b", "b"} {
		names = append(names, farm.Unique(n, taken))
	}
	if want := []string{"a/x.png", "a/x_2.png", "a/x_3.png", "b", "b_2"}; !slices.Equal(names, want) {
		t.Errorf("Unique = %q, want %q", names, want)
	}
}

// TestALongNameKeepsItsEnd: a name longer than a component may be loses
// part of its middle, never its end, where a frame's number and extension
// are: the frames of a scene whose output path is long keep names of
// their own, each ending as Blender would end it.
func TestALongNameKeepsItsEnd(t *testing.T) {
	png := farm.ExtensionsOf("PNG", "")
	naming := farm.SceneNaming{Naming: farm.NamingScene, OutputPath: "//render/" + strings.Repeat("a", 118) + "_####", UseFileExtension: true}
	want := map[int]string{
		1:   strings.Repeat("a", 40) + "--" + strings.Repeat("a", 69) + "_0001.png",
		2:   strings.Repeat("a", 40) + "--" + strings.Repeat("a", 69) + "_0002.png",
		250: strings.Repeat("a", 40) + "--" + strings.Repeat("a", 69) + "_0250.png",
	}
	for frame, name := range want {
		got := naming.FrameNames(frame, png, "")
		if got.FileName != name || got.RelativePath != "render/"+name {
			t.Errorf("frame %d: %+v, want %q in render/", frame, got, name)
		}
		if len(got.FileName) != farm.MaxNameComponentBytes {
			t.Errorf("frame %d: %q is %d bytes, want %d", frame, got.FileName, len(got.FileName), farm.MaxNameComponentBytes)
		}
	}
	// A name within the limit is left as it is, and a shortened one is a
	// name SafeComponent keeps.
	for _, s := range []string{strings.Repeat("b", farm.MaxNameComponentBytes), want[1]} {
		if got := farm.SafeComponent(s); got != s {
			t.Errorf("SafeComponent(%q) = %q", s, got)
		}
	}
	// Text that is not ASCII is cut as its '_'s are: the same text, the
	// same name.
	long := strings.Repeat("ü", 200) + "_0001.exr"
	if got := farm.SafeComponent(long); got != strings.Repeat("_", 40)+"--"+strings.Repeat("_", 69)+"_0001.exr" || got != farm.SafeComponent(long) {
		t.Errorf("SafeComponent of a long name of ü = %q", got)
	}
}

// TestNamesDifferInAnyCase: on macOS and Windows "Pass" and "pass" are one
// folder, so File Output nodes so named get folders of their own, and
// names a zip or a frame holds twice in any case are told apart.
func TestNamesDifferInAnyCase(t *testing.T) {
	if got, want := farm.NodeFolders([]string{"Pass", "pass", "PASS", "pass_2"}), []string{"Pass", "pass_2", "PASS_3", "pass_2_2"}; !slices.Equal(got, want) {
		t.Errorf("NodeFolders = %q, want %q", got, want)
	}
	taken := map[string]bool{}
	var names []string
	for _, n := range []string{"Pass/img_0001.png", "pass/img_0001.png", "frame_0001_L.png", "frame_0001_l.png"} {
		names = append(names, farm.Unique(n, taken))
	}
	if want := []string{"Pass/img_0001.png", "pass/img_0001_2.png", "frame_0001_L.png", "frame_0001_l_2.png"}; !slices.Equal(names, want) {
		t.Errorf("Unique = %q, want %q", names, want)
	}
}

// TestNamesWindowsKeeps: a name Windows takes for a device, with an
// extension or without, in any case, and a name ending in a dot, which
// Windows would drop, get a '_'; names that only look like them stay.
func TestNamesWindowsKeeps(t *testing.T) {
	if got, want := farm.NodeFolders([]string{"CON", "aux", "nul.", "Com7", "lpt0.tar.gz", "prn"}), []string{"CON_", "aux_", "nul_._", "Com7_", "lpt0_.tar.gz", "prn_"}; !slices.Equal(got, want) {
		t.Errorf("NodeFolders = %q, want %q", got, want)
	}
	naming := farm.SceneNaming{Naming: farm.NamingFarm}
	for slot, want := range map[string]string{"NUL.#": "NUL_.1.png", "nul.": "nul_.0001.png", "passes/aux": "passes/aux0001.png", "Con/x_#": "Con_/x_1.png"} {
		if got := naming.NodeFileName(slot, 1, farm.ExtensionsOf("PNG", ""), ""); got != want {
			t.Errorf("NodeFileName(%q) = %q, want %q", slot, got, want)
		}
	}
	for _, s := range []string{"CONSOLE", "COM10", "LPT", "nul_", "x.con", "a.b", "COM_1"} {
		if got := farm.SafeComponent(s); got != s {
			t.Errorf("SafeComponent(%q) = %q, want it unchanged", s, got)
		}
	}
	// What SafeComponent makes, it keeps: a second pass changes nothing.
	for _, s := range []string{"CON", "nul.", "x.", strings.Repeat("a", 300) + ".", "AUX." + strings.Repeat("b", 300)} {
		once := farm.SafeComponent(s)
		if twice := farm.SafeComponent(once); twice != once || len(once) > farm.MaxNameComponentBytes {
			t.Errorf("SafeComponent(%q) = %q, and again %q", s, once, twice)
		}
	}
}
