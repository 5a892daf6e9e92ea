package farm_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// cleanInspection is a file that renders on this farm exactly as on the
// artist's machine: nothing to warn about.
func cleanInspection() farm.Inspection {
	return farm.Inspection{
		FileVersion:       "3.4",
		BlenderVersion:    "3.4.1",
		DenoiserAvailable: false,
		ActiveScene:       "Shot",
		Scenes: []farm.Scene{{
			Name: "Shot", FrameStart: 1, FrameEnd: 24, FrameStep: 1, FPS: 24,
			ResolutionX: 1920, ResolutionY: 1080, ResolutionPercentage: 100,
			Engine: "CYCLES", Samples: 64, Camera: "Camera", OutputFormat: "PNG",
		}},
		ExternalFiles: []farm.ExternalFile{
			{Type: "image", Name: "wood.png", Path: "//textures/wood.png"},
			{Type: "image", Name: "logo.png", Path: "logo.png", Packed: true},
		},
	}
}

func TestAnalyzeInspectionOfACleanFileHasNoWarnings(t *testing.T) {
	a := farm.AnalyzeInspection(cleanInspection())
	if len(a.Warnings) != 0 {
		t.Errorf("warnings = %+v, want none", a.Warnings)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"warnings":[]`) {
		t.Errorf("JSON %s: want \"warnings\":[] so clients see a list, not null", b)
	}
	if a.ActiveScene != "Shot" || len(a.Scenes) != 1 {
		t.Errorf("the analysis does not carry the inspection: %+v", a.Inspection)
	}
}

func TestAnalyzeInspectionWarnings(t *testing.T) {
	tests := []struct {
		name        string
		change      func(*farm.Inspection)
		wantCodes   []string
		wantMessage []string // parts of the one warning's message
		wantPath    string
	}{
		{
			name: "a missing external file, naming it and saying how to fix it",
			change: func(in *farm.Inspection) {
				in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: "image", Name: "sky.hdr", Path: "/home/ann/hdri/sky.hdr", Missing: true})
			},
			wantCodes:   []string{farm.WarnMissingFile},
			wantMessage: []string{`image "sky.hdr"`, "/home/ann/hdri/sky.hdr", "Upload a .zip", "Pack Resources"},
			wantPath:    "/home/ann/hdri/sky.hdr",
		},
		{
			name: "a Cycles scene that asks for denoising on a farm without a denoiser",
			change: func(in *farm.Inspection) {
				in.Scenes[0].DenoisingEnabled = true
			},
			wantCodes:   []string{farm.WarnDenoiserUnavailable},
			wantMessage: []string{`scene "Shot" asks for denoising`, "Blender 3.4.1 has no OpenImageDenoise", "render without denoising"},
		},
		{
			name: "denoising asked for where the denoiser exists",
			change: func(in *farm.Inspection) {
				in.Scenes[0].DenoisingEnabled = true
				in.DenoiserAvailable = true
			},
			wantCodes: nil,
		},
		{
			name: "denoising flag on a scene of another engine",
			change: func(in *farm.Inspection) {
				in.Scenes[0].Engine = "BLENDER_EEVEE"
				in.Scenes[0].DenoisingEnabled = true
			},
			wantCodes: nil,
		},
		{
			name:        "a scene without a camera",
			change:      func(in *farm.Inspection) { in.Scenes[0].Camera = "" },
			wantCodes:   []string{farm.WarnNoCamera},
			wantMessage: []string{`scene "Shot" has no camera`, "add a camera"},
		},
		{
			name: "a scene that writes a movie, naming its format",
			change: func(in *farm.Inspection) {
				in.Scenes[0].OutputFormat = "FFMPEG"
				in.Scenes[0].IsMovieOutput = true
			},
			wantCodes:   []string{farm.WarnMovieOutput},
			wantMessage: []string{`scene "Shot" writes a movie (FFMPEG)`, "PNG frames"},
		},
		{
			name:        "a file saved by a newer Blender",
			change:      func(in *farm.Inspection) { in.FileVersion = "4.2" },
			wantCodes:   []string{farm.WarnNewerFile},
			wantMessage: []string{"saved with Blender 4.2, newer than this farm's 3.4.1"},
		},
		{
			name:        "a newer minor release",
			change:      func(in *farm.Inspection) { in.FileVersion = "3.5" },
			wantCodes:   []string{farm.WarnNewerFile},
			wantMessage: []string{"Blender 3.5"},
		},
		{
			name: "versions compare as numbers, not text",
			change: func(in *farm.Inspection) {
				in.FileVersion = "3.10"
				in.BlenderVersion = "3.9.2"
			},
			wantCodes: []string{farm.WarnNewerFile},
		},
		{
			name:      "a file saved by the same release",
			change:    func(in *farm.Inspection) { in.FileVersion = "3.4" },
			wantCodes: nil,
		},
		{
			name: "a file saved by a later patch of the same release",
			change: func(in *farm.Inspection) {
				in.FileVersion = "3.4.3"
				in.BlenderVersion = "3.4.1"
			},
			wantCodes: nil,
		},
		{
			name:      "a file saved by an older Blender",
			change:    func(in *farm.Inspection) { in.FileVersion = "2.93" },
			wantCodes: nil,
		},
		{
			name:      "an unreadable file version is not guessed at",
			change:    func(in *farm.Inspection) { in.FileVersion = "" },
			wantCodes: nil,
		},
		{
			name:      "an unreadable Blender version is not guessed at",
			change:    func(in *farm.Inspection) { in.BlenderVersion = "unknown" },
			wantCodes: nil,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := cleanInspection()
			tt.change(&in)
			a := farm.AnalyzeInspection(in)
			var codes []string
			for _, w := range a.Warnings {
				codes = append(codes, w.Code)
			}
			if !slices.Equal(codes, tt.wantCodes) {
				t.Fatalf("warning codes = %q, want %q (warnings: %+v)", codes, tt.wantCodes, a.Warnings)
			}
			if len(tt.wantCodes) != 1 {
				return
			}
			w := a.Warnings[0]
			for _, part := range tt.wantMessage {
				if !strings.Contains(w.Message, part) {
					t.Errorf("message %q does not say %q", w.Message, part)
				}
			}
			if w.Path != tt.wantPath {
				t.Errorf("Path = %q, want %q", w.Path, tt.wantPath)
			}
		})
	}
}

func TestAnalyzeInspectionWarnsOncePerProblem(t *testing.T) {
	in := cleanInspection()
	in.FileVersion = "4.1"
	in.ExternalFiles = []farm.ExternalFile{
		{Type: "image", Name: "a.png", Path: "//a.png", Missing: true},
		{Type: "image", Name: "b.png", Path: "//b.png"},
		{Type: "sound", Name: "c.wav", Path: "//c.wav", Missing: true},
	}
	in.Scenes[0].DenoisingEnabled = true
	in.Scenes = append(in.Scenes, farm.Scene{Name: "Edit", Engine: "BLENDER_EEVEE", OutputFormat: "FFMPEG", IsMovieOutput: true})

	a := farm.AnalyzeInspection(in)
	var got []string
	for _, w := range a.Warnings {
		got = append(got, w.Code+" "+w.Path)
	}
	want := []string{
		farm.WarnMissingFile + " //a.png",
		farm.WarnMissingFile + " //c.wav",
		farm.WarnDenoiserUnavailable + " ",
		farm.WarnNoCamera + " ",
		farm.WarnMovieOutput + " ",
		farm.WarnNewerFile + " ",
	}
	if !slices.Equal(got, want) {
		t.Errorf("warnings =\n%q\nwant\n%q", got, want)
	}
}
