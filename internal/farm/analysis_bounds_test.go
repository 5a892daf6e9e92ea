package farm_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// apiSize is the size of v's JSON as the API writes it.
func apiSize(t *testing.T, v any) int {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Len()
}

// honestInspection is a large production file: several scenes of several
// view layers and passes, a stereo scene, File Output nodes, linked
// libraries and hundreds of textures, a few of them missing.
func honestInspection() farm.Inspection {
	in := cleanInspection()
	in.ViewTransforms = []string{"Standard", "Khronos PBR Neutral", "AgX", "Filmic", "Filmic Log", "False Color", "Raw"}
	passes := []string{"Combined", "Depth", "Mist", "Normal", "Vector", "DiffDir", "DiffInd", "DiffCol", "GlossDir", "GlossInd", "GlossCol",
		"Emit", "Env", "AO", "CryptoObject00", "CryptoObject01", "CryptoMaterial00", "CryptoMaterial01", "Denoising Normal", "Denoising Albedo"}
	in.Scenes = nil
	for i := range 12 {
		s := farm.Scene{
			Name: fmt.Sprintf("sq%02d_sh%03d_lighting", i/4, i*10), FrameStart: 1001, FrameEnd: 1240, FrameStep: 1, FPS: 24,
			ResolutionX: 4096, ResolutionY: 1716, ResolutionPercentage: 100, Engine: "CYCLES", Samples: 1024,
			Camera: fmt.Sprintf("CAM-sh%03d.002", i*10), OutputFormat: "OPEN_EXR_MULTILAYER", ColorMode: "RGBA", ColorDepth: "32",
			Denoiser: "OPENIMAGEDENOISE", UseCompositing: true, ViewTransform: "AgX",
			OutputPath: fmt.Sprintf("//../../render/sq%02d/sh%03d/lighting/v012/sh%03d_lighting_v012.####", i/4, i*10, i*10),
			ViewLayers: []string{"BG", "CHR_main", "CHR_crowd", "FX_smoke", "holdout_ground"},
			FileOutputNodes: []farm.FileOutputNode{{Name: "Comp/AOVs", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL", BasePath: "//../../render/aovs/",
				Slots: []farm.FileOutputSlot{{Path: "depth_####", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL"}, {Path: "normal_####", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL"}}}},
		}
		for _, l := range s.ViewLayers {
			s.RenderPasses = append(s.RenderPasses, farm.ViewLayerPasses{ViewLayer: l, Passes: passes})
		}
		if i == 3 {
			s.Multiview = &farm.Multiview{Mode: "STEREO_3D", ImageViews: "INDIVIDUAL", Views: []farm.View{{Name: "left", Suffix: "_L"}, {Name: "right", Suffix: "_R"}}}
		}
		in.Scenes = append(in.Scenes, s)
	}
	in.ActiveScene = in.Scenes[4].Name
	in.ExternalFiles = nil
	for i := range 400 {
		in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "image", Name: fmt.Sprintf("tex_%04d_diffuse.png", i),
			Path: fmt.Sprintf("//../../assets/props/prop_%03d/textures/tex_%04d_diffuse.png", i/8, i), Missing: i%97 == 0})
	}
	for i := range 20 {
		lib := farm.Library{Name: fmt.Sprintf("char_%02d.blend", i), Path: fmt.Sprintf("//../../assets/chars/char_%02d/char_%02d.blend", i, i)}
		in.Libraries = append(in.Libraries, lib)
		in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "library", Name: lib.Name, Path: lib.Path})
	}
	return in
}

func TestAnHonestAnalysisIsUnchangedByItsBounds(t *testing.T) {
	in := honestInspection()
	want := honestInspection()
	a := farm.AnalyzeInspection(in)
	if !reflect.DeepEqual(a.Inspection, want) {
		t.Errorf("the analysis of an honest file differs from its inspection")
	}
	if !reflect.DeepEqual(in, want) {
		t.Errorf("analyzing changed the inspection handed in")
	}
	if a.ScenesLeftOut != 0 {
		t.Errorf("scenesLeftOut = %d, want 0", a.ScenesLeftOut)
	}
	for _, w := range a.Warnings {
		if w.Code == farm.WarnAnalysisTruncated {
			t.Errorf("an honest file's analysis is cut: %s", w.Message)
		}
	}
	if got := countCode(a.Warnings, farm.WarnMissingFile); got != 5 {
		t.Errorf("%d MISSING_FILE warnings, want 5", got)
	}
	t.Logf("an honest analysis of 12 scenes and 420 files: %d bytes", apiSize(t, a))
	// Bounding again changes nothing.
	b := *a
	b.Warnings = append([]farm.Warning(nil), a.Warnings...)
	farm.BoundAnalysis(&b)
	if !reflect.DeepEqual(&b, a) {
		t.Errorf("BoundAnalysis changed a bounded analysis")
	}
}

func countCode(ws []farm.Warning, code string) int {
	n := 0
	for _, w := range ws {
		if w.Code == code {
			n++
		}
	}
	return n
}

// truncation is the ANALYSIS_TRUNCATED warnings' messages, joined.
func truncation(a *farm.Analysis) string {
	var parts []string
	for _, w := range a.Warnings {
		if w.Code == farm.WarnAnalysisTruncated {
			parts = append(parts, w.Message)
		}
	}
	return strings.Join(parts, "\n")
}

func TestAHostileInspectionMakesABoundedAnalysis(t *testing.T) {
	mib := strings.Repeat("x", 1<<20)
	tests := []struct {
		name   string
		change func(*farm.Inspection)
		check  func(*testing.T, *farm.Analysis)
		want   []string // parts of the ANALYSIS_TRUNCATED warnings
	}{
		{
			name: "200,000 scenes, the active one last",
			change: func(in *farm.Inspection) {
				base := in.Scenes[0]
				in.Scenes = nil
				for i := range 200_000 {
					s := base
					s.Name = fmt.Sprintf("Scene.%06d", i)
					in.Scenes = append(in.Scenes, s)
				}
				in.ActiveScene = "Scene.199999"
			},
			check: func(t *testing.T, a *farm.Analysis) {
				if len(a.Scenes) != farm.MaxAnalysisScenes {
					t.Errorf("%d scenes listed, want %d", len(a.Scenes), farm.MaxAnalysisScenes)
				}
				if _, ok := a.Scene(""); !ok {
					t.Errorf("the active scene is not listed")
				}
				if a.ScenesLeftOut != 200_000-farm.MaxAnalysisScenes {
					t.Errorf("scenesLeftOut = %d", a.ScenesLeftOut)
				}
			},
			want: []string{"the file has 200000 scenes; this analysis lists 64 of them (the active scene first", "make the scene to render the active one"},
		},
		{
			name: "scenes, cameras, view layers and paths named with a MiB each",
			change: func(in *farm.Inspection) {
				in.Scenes = append(in.Scenes, in.Scenes[0])
				in.Scenes[1].Name = "Long" + mib
				in.Scenes[0].Camera = mib
				in.Scenes[0].ViewLayers = []string{mib, "ViewLayer"}
				in.Scenes[0].OutputPath = "//" + mib
				in.ExternalFiles[0].Name, in.ExternalFiles[0].Path = mib, mib
			},
			check: func(t *testing.T, a *farm.Analysis) {
				if len(a.Scenes) != 1 || a.Scenes[0].Name != "Shot" || a.ScenesLeftOut != 1 {
					t.Errorf("scenes = %d, the first %q, %d left out; want only Shot, one left out", len(a.Scenes), a.Scenes[0].Name, a.ScenesLeftOut)
				}
				s := a.Scenes[0]
				if len(s.Camera) > farm.MaxAnalysisNameBytes || !strings.HasSuffix(s.Camera, "…") || s.ViewLayers[1] != "ViewLayer" || len(s.OutputPath) > farm.MaxAnalysisPathBytes {
					t.Errorf("names not cut to their bounds: camera %d bytes, view layers %q, output path %d bytes", len(s.Camera), s.ViewLayers, len(s.OutputPath))
				}
				if len(a.ExternalFiles[0].Path) != farm.MaxAnalysisPathBytes {
					t.Errorf("an external file's path is %d bytes", len(a.ExternalFiles[0].Path))
				}
			},
			want: []string{"1 scene(s) are left out of this analysis, and a render cannot pick them, because their names are over 256 bytes", `"Longxxx`, "rename them in Blender", "6 name(s), path(s) or identifier(s) of the file were cut"},
		},
		{
			name: "the active scene named with a MiB",
			change: func(in *farm.Inspection) {
				in.Scenes = append(in.Scenes, in.Scenes[0])
				in.Scenes[1].Name = mib
				in.ActiveScene = mib
			},
			check: func(t *testing.T, a *farm.Analysis) {
				if _, ok := a.Scene(""); ok {
					t.Errorf("a scene is listed under the active scene's cut name")
				}
			},
			want: []string{"the active scene among them, so a render must name another scene"},
		},
		{
			name: "names with a NUL, newlines, right-to-left marks and bytes that are not UTF-8",
			change: func(in *farm.Inspection) {
				in.Scenes = append(in.Scenes, in.Scenes[0], in.Scenes[0])
				in.Scenes[1].Name = "Sh\x00ot"
				in.Scenes[2].Name = "Shot\n2 \u202egnp.exe"
				in.Scenes[0].Camera = "Cam\xff\xfe"
				in.ExternalFiles[0].Path = "//tex\x00/\nwood\u200f.png"
			},
			check: func(t *testing.T, a *farm.Analysis) {
				if len(a.Scenes) != 2 || a.Scenes[1].Name != "Shot\n2 \u202egnp.exe" {
					t.Errorf("scenes %+v: want Shot and the one whose name Blender could hold, as it is", a.Scenes)
				}
				if a.Scenes[0].Camera != "Cam\uFFFD" || a.ExternalFiles[0].Path != "//tex\uFFFD/\nwood\u200f.png" {
					t.Errorf("camera %q, path %q: want bad bytes and the NUL as U+FFFD, the rest kept", a.Scenes[0].Camera, a.ExternalFiles[0].Path)
				}
			},
			want: []string{`1 scene(s) are left out`, "\"Sh\uFFFDot\"", "hold a NUL", "3 name(s), path(s) or identifier(s)"},
		},
		{
			name: "a scene of 100,000 view layers, views, File Output nodes and passes",
			change: func(in *farm.Inspection) {
				s := &in.Scenes[0]
				slots := make([]farm.FileOutputSlot, 100_000)
				passes := make([]string, 100_000)
				for i := range 100_000 {
					s.ViewLayers = append(s.ViewLayers, fmt.Sprintf("Layer%d", i))
					slots[i] = farm.FileOutputSlot{Path: fmt.Sprintf("slot%d_####", i), Format: "PNG"}
					passes[i] = fmt.Sprintf("AOV%d", i)
				}
				s.Multiview = &farm.Multiview{Mode: "MULTIVIEW", ImageViews: "INDIVIDUAL"}
				for i := range 1000 {
					s.Multiview.Views = append(s.Multiview.Views, farm.View{Name: fmt.Sprintf("view%d", i), Suffix: fmt.Sprintf("_%d", i)})
					s.FileOutputNodes = append(s.FileOutputNodes, farm.FileOutputNode{Name: fmt.Sprintf("Out%d", i), Format: "PNG", Slots: slots})
					s.RenderPasses = append(s.RenderPasses, farm.ViewLayerPasses{ViewLayer: fmt.Sprintf("Layer%d", i), Passes: passes})
				}
			},
			check: func(t *testing.T, a *farm.Analysis) {
				s := a.Scenes[0]
				if len(s.ViewLayers) != farm.MaxSceneViewLayers || len(s.Multiview.Views) != farm.MaxSceneViews {
					t.Errorf("%d view layers, %d views listed", len(s.ViewLayers), len(s.Multiview.Views))
				}
				if len(s.FileOutputNodes) == 0 || len(s.FileOutputNodes) >= farm.MaxSceneFileOutputNodes || len(s.FileOutputNodes[0].Slots) != farm.MaxSceneFileOutputSlots {
					t.Errorf("%d nodes listed, the first of %d slots", len(s.FileOutputNodes), len(s.FileOutputNodes[0].Slots))
				}
				if len(s.RenderPasses) == 0 || len(s.RenderPasses) >= farm.MaxSceneRenderPassLayers || len(s.RenderPasses[0].Passes) != farm.MaxSceneRenderPasses {
					t.Errorf("%d layers' passes listed, the first of %d", len(s.RenderPasses), len(s.RenderPasses[0].Passes))
				}
				if size := apiSize(t, s); size > 90<<10 {
					t.Errorf("the scene takes %d bytes", size)
				}
			},
			want: []string{`of 1 scene(s) are listed only in part`, `"Shot"`, "they render all the same"},
		},
		{
			name: "100,000 external files and libraries, some missing at the end",
			change: func(in *farm.Inspection) {
				in.ExternalFiles, in.Libraries = nil, nil
				for i := range 100_000 {
					path := fmt.Sprintf("//textures/%06d.png", i)
					missing := i >= 99_990
					in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "image", Name: path[11:], Path: path, Missing: missing})
					in.Libraries = append(in.Libraries, farm.Library{Name: path[11:], Path: path, Missing: missing})
				}
			},
			check: func(t *testing.T, a *farm.Analysis) {
				if !a.ExternalFilesTruncated || len(a.ExternalFiles) == 0 || len(a.ExternalFiles) >= 5000 {
					t.Errorf("%d external files listed, truncated %v", len(a.ExternalFiles), a.ExternalFilesTruncated)
				}
				for i := range 10 {
					if !a.ExternalFiles[i].Missing || !a.Libraries[i].Missing {
						t.Fatalf("external file %d, library %d not missing: the missing ones go first", i, i)
					}
				}
				if got := countCode(a.Warnings, farm.WarnMissingFile); got != 10 {
					t.Errorf("%d MISSING_FILE warnings, want one for each of the 10 missing files", got)
				}
			},
			want: []string{"the file names 100000 external files", "are not listed here (all of them present; the missing ones are listed first", "of its 100000 linked libraries"},
		},
		{
			name: "100,000 missing files",
			change: func(in *farm.Inspection) {
				in.ExternalFiles = nil
				for i := range 100_000 {
					in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "image", Name: "tex", Path: fmt.Sprintf("/nowhere/%06d.png", i), Missing: true})
				}
			},
			check: func(t *testing.T, a *farm.Analysis) {
				n := countCode(a.Warnings, farm.WarnMissingFile)
				if n == 0 || n >= farm.MaxAnalysisWarnings || n > len(a.ExternalFiles) {
					t.Errorf("%d MISSING_FILE warnings for %d files listed", n, len(a.ExternalFiles))
				}
			},
			want: []string{"of them missing", "more warnings are not listed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := cleanInspection()
			tt.change(&in)
			a := farm.AnalyzeInspection(in)
			size := apiSize(t, a)
			if size > farm.MaxAnalysisBytes {
				t.Errorf("the analysis takes %d bytes, over its bound of %d", size, farm.MaxAnalysisBytes)
			}
			t.Logf("%d bytes", size)
			checkTexts(t, a)
			tt.check(t, a)
			got := truncation(a)
			for _, part := range tt.want {
				if !strings.Contains(got, part) {
					t.Errorf("ANALYSIS_TRUNCATED warnings\n%s\nsay nothing of %q", got, part)
				}
			}
			// Bounding again changes nothing.
			b := *a
			b.Warnings = append([]farm.Warning(nil), a.Warnings...)
			farm.BoundAnalysis(&b)
			if !reflect.DeepEqual(&b, a) {
				t.Errorf("BoundAnalysis changed a bounded analysis")
			}
		})
	}
}

// checkTexts checks every string of the analysis: valid UTF-8, no NUL,
// within the largest bound (a warning's message).
func checkTexts(t *testing.T, a *farm.Analysis) {
	t.Helper()
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			s := v.String()
			if !utf8.ValidString(s) || strings.Contains(s, "\x00") || len(s) > 4*farm.MaxAnalysisPathBytes {
				t.Errorf("a string of %d bytes is not bounded text: %.80q", len(s), s)
			}
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				walk(v.Field(i))
			}
		case reflect.Slice:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		}
	}
	walk(reflect.ValueOf(a))
}

// worstInspection fills every list of an inspection far past its bounds
// with names at their bounds, each made of c, and every scene cut in
// some way, so that every ANALYSIS_TRUNCATED warning is given.
func worstInspection(c string) farm.Inspection {
	text := func(n int) string { return strings.Repeat(c, n/len(c)) }
	name, path, word := text(farm.MaxAnalysisNameBytes), text(farm.MaxAnalysisPathBytes), text(farm.MaxAnalysisWordBytes)
	short := text(farm.MaxAnalysisNameBytes - 1)
	in := farm.Inspection{FileVersion: word + "x", BlenderVersion: word, DenoiserAvailable: false, ActiveScene: "A" + short}
	for range 200 {
		in.ViewTransforms = append(in.ViewTransforms, name)
	}
	slots := make([]farm.FileOutputSlot, farm.MaxSceneFileOutputSlots+1)
	for i := range slots {
		slots[i] = farm.FileOutputSlot{Path: path, Format: word, Codec: word, ImageViews: word}
	}
	passes := make([]string, farm.MaxSceneRenderPasses+1)
	for i := range passes {
		passes[i] = name
	}
	for i := range 300 {
		s := farm.Scene{Name: fmt.Sprintf("%c%s", 'A'+i%26, short), FrameStart: -1 << 31, FrameEnd: 1<<31 - 1, FrameStep: -1 << 31, FPS: -1.2345678901234567e-300,
			ResolutionX: -1 << 31, ResolutionY: -1 << 31, ResolutionPercentage: -1 << 31, Engine: word, Samples: -1 << 31, Camera: name,
			OutputFormat: word, ColorMode: word, ColorDepth: word, DenoisingEnabled: true, Denoiser: word, UseCompositing: true,
			ViewTransform: name, IsMovieOutput: true, OutputPath: path, UseFileExtension: true,
			Multiview: &farm.Multiview{Mode: word, ImageViews: word}}
		if i%3 == 0 {
			s.Name += name // over its bound: left out
		}
		for range 100 {
			s.ViewLayers = append(s.ViewLayers, name)
			s.Multiview.Views = append(s.Multiview.Views, farm.View{Name: name, Suffix: name})
			s.FileOutputNodes = append(s.FileOutputNodes, farm.FileOutputNode{Name: name, Format: word, Codec: word, ImageViews: word, BasePath: path, Slots: slots[:i%4+1]})
			s.RenderPasses = append(s.RenderPasses, farm.ViewLayerPasses{ViewLayer: name, Passes: passes[:i%8+1]})
		}
		in.Scenes = append(in.Scenes, s)
	}
	for range 6000 {
		in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: word, Name: name, Path: path, Missing: true, Packed: true})
		in.Libraries = append(in.Libraries, farm.Library{Name: name, Path: path, Parent: name, Missing: true})
	}
	return in
}

func TestAWorstCaseAnalysisIsWithinItsBound(t *testing.T) {
	largest := 0
	// Characters as the API's JSON writes them: itself, two bytes for
	// one, six for one, six for three, three for one mended.
	for _, c := range []string{"a", `"`, "\x01", "\u2028", "\xff", "é", "<"} {
		a := farm.AnalyzeInspection(worstInspection(c))
		a.RenderBlenderVersion = strings.Repeat(c, farm.MaxAnalysisWordBytes)
		for range 16 {
			a.FarmBlenderVersions = append(a.FarmBlenderVersions, "4.3.2")
		}
		size := apiSize(t, a)
		t.Logf("made of %q: %d bytes (%d KiB), %d scenes, %d external files, %d warnings", c, size, size>>10, len(a.Scenes), len(a.ExternalFiles), len(a.Warnings))
		if got := countCode(a.Warnings, farm.WarnAnalysisTruncated); got < 6 && utf8.ValidString(c) {
			t.Errorf("made of %q: %d ANALYSIS_TRUNCATED warnings, want every kind", c, got)
		}
		largest = max(largest, size)
		if size > farm.MaxAnalysisBytes {
			t.Errorf("made of %q: %d bytes, over MaxAnalysisBytes (%d)", c, size, farm.MaxAnalysisBytes)
		}
		// And as the store writes it (the same encoder).
		if _, err := json.Marshal(a); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the largest: %d KiB of %d KiB; a page of %d such jobs: %.1f MiB of analyses", largest>>10, farm.MaxAnalysisBytes>>10, farm.MaxPageSize, float64(farm.MaxPageSize*largest)/(1<<20))
}

func TestARenderCannotPickASceneTheAnalysisLeftOut(t *testing.T) {
	in := cleanInspection()
	in.Scenes = append(in.Scenes, in.Scenes[0])
	long := "Shot" + strings.Repeat("x", farm.MaxAnalysisNameBytes)
	in.Scenes[1].Name = long
	a := farm.AnalyzeInspection(in)
	preset := "default"
	for _, scene := range []string{long, long[:farm.MaxAnalysisNameBytes-3] + "…"} {
		_, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset, Scene: &scene}, a, farm.WorkerCaps{})
		var fe *farm.Error
		if !errors.As(err, &fe) || fe.Field != "scene" || fe.Code != farm.CodeInvalidConfig {
			t.Fatalf("err = %v, want a 400 naming scene", err)
		}
		for _, part := range []string{`lists "Shot"`, "leaves 1 of the file's scenes out", "ANALYSIS_TRUNCATED", "under 256 bytes"} {
			if !strings.Contains(fe.Message, part) {
				t.Errorf("message %q says nothing of %q", fe.Message, part)
			}
		}
	}
	// The active scene left out: a render that names no scene is refused
	// the same way.
	in.ActiveScene = long
	a = farm.AnalyzeInspection(in)
	_, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset}, a, farm.WorkerCaps{})
	if err == nil || !strings.Contains(err.Error(), "leaves 1 of the file's scenes out") {
		t.Errorf("err = %v, want the scene left out named", err)
	}
	scene := "Shot"
	if _, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset, Scene: &scene}, a, farm.WorkerCaps{}); err != nil {
		t.Errorf("the listed scene: %v", err)
	}
}

// TestARenderNamingNoSceneIsRefusedWhenTheActiveOneIsLeftOutUnderAnotherScenesName:
// the active scene's name is over the bound, and cut it is the name of
// another scene of the file (one Blender allows, of exactly 256 bytes, or
// a name with U+FFFD where the active one has a NUL). A render that names
// no scene must not render that other scene in the active one's stead.
func TestARenderNamingNoSceneIsRefusedWhenTheActiveOneIsLeftOutUnderAnotherScenesName(t *testing.T) {
	long := "Shot" + strings.Repeat("x", farm.MaxAnalysisNameBytes)
	for _, names := range [][2]string{
		{long, long[:farm.MaxAnalysisNameBytes-len("…")] + "…"},
		{"Shot\x00", "Shot\uFFFD"},
	} {
		in := cleanInspection()
		in.Scenes = append(in.Scenes, in.Scenes[0])
		in.Scenes[0].Name, in.Scenes[1].Name = names[0], names[1]
		in.ActiveScene = names[0]
		a := farm.AnalyzeInspection(in)
		if len(a.Scenes) != 1 || a.Scenes[0].Name != names[1] {
			t.Fatalf("scenes %+v: want the other scene alone, under its own name", a.Scenes)
		}
		if s, ok := a.Scene(""); ok {
			t.Errorf("active %q: the analysis's active scene is %q, another scene of the file", names[0], s.Name)
		}
		preset := "default"
		_, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset}, a, farm.WorkerCaps{})
		if err == nil || !strings.Contains(err.Error(), "leaves 1 of the file's scenes out") {
			t.Errorf("active %q: a render naming no scene: err = %v, want it refused, the active scene left out", names[0], err)
		}
		// The other scene, named, renders.
		other := names[1]
		if _, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset, Scene: &other}, a, farm.WorkerCaps{}); err != nil {
			t.Errorf("the listed scene %q: %v", other, err)
		}
	}
}
