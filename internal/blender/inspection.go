package blender

import (
	"bytes"
	"encoding/json"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// scriptInspection is what scripts/inspect.py (and the session script's
// inspect command) writes: the script's own format, which only this
// package reads. It is turned into the domain's farm.Inspection, whose
// JSON names are the API's, so the two can change apart; a key the
// script writes and this does not know is an error, never a field
// silently lost.
type scriptInspection struct {
	FileVersion            string               `json:"fileVersion"`
	BlenderVersion         string               `json:"blenderVersion"`
	DenoiserAvailable      bool                 `json:"denoiserAvailable"`
	ViewTransforms         []string             `json:"viewTransforms"`
	ActiveScene            string               `json:"activeScene"`
	Scenes                 []scriptScene        `json:"scenes"`
	ExternalFiles          []scriptExternalFile `json:"externalFiles"`
	ExternalFilesTruncated bool                 `json:"externalFilesTruncated"`
}

type scriptScene struct {
	Name                 string   `json:"name"`
	FrameStart           int      `json:"frameStart"`
	FrameEnd             int      `json:"frameEnd"`
	FrameStep            int      `json:"frameStep"`
	FPS                  float64  `json:"fps"`
	ResolutionX          int      `json:"resolutionX"`
	ResolutionY          int      `json:"resolutionY"`
	ResolutionPercentage int      `json:"resolutionPercentage"`
	Engine               string   `json:"engine"`
	Samples              int      `json:"samples"`
	Camera               string   `json:"camera"`
	OutputFormat         string   `json:"outputFormat"`
	ColorMode            string   `json:"colorMode"`
	ColorDepth           string   `json:"colorDepth"`
	DenoisingEnabled     bool     `json:"denoisingEnabled"`
	Denoiser             string   `json:"denoiser"`
	UseCompositing       bool     `json:"useCompositing"`
	ViewLayers           []string `json:"viewLayers"`
	ViewTransform        string   `json:"viewTransform"`
	IsMovieOutput        bool     `json:"isMovieOutput"`
}

type scriptExternalFile struct {
	Type    string `json:"type"`
	Name    string `json:"name"`
	Path    string `json:"path"`
	Missing bool   `json:"missing"`
	Packed  bool   `json:"packed"`
}

// decodeInspection reads the script's JSON into the domain's inspection.
func decodeInspection(body []byte) (*farm.Inspection, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var s scriptInspection
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	return s.inspection(), nil
}

func (s scriptInspection) inspection() *farm.Inspection {
	in := &farm.Inspection{
		FileVersion:            s.FileVersion,
		BlenderVersion:         s.BlenderVersion,
		DenoiserAvailable:      s.DenoiserAvailable,
		ViewTransforms:         s.ViewTransforms,
		ActiveScene:            s.ActiveScene,
		ExternalFilesTruncated: s.ExternalFilesTruncated,
	}
	for _, sc := range s.Scenes {
		in.Scenes = append(in.Scenes, farm.Scene{
			Name: sc.Name, FrameStart: sc.FrameStart, FrameEnd: sc.FrameEnd, FrameStep: sc.FrameStep, FPS: sc.FPS,
			ResolutionX: sc.ResolutionX, ResolutionY: sc.ResolutionY, ResolutionPercentage: sc.ResolutionPercentage,
			Engine: sc.Engine, Samples: sc.Samples, Camera: sc.Camera,
			OutputFormat: sc.OutputFormat, ColorMode: sc.ColorMode, ColorDepth: sc.ColorDepth,
			DenoisingEnabled: sc.DenoisingEnabled, Denoiser: sc.Denoiser, UseCompositing: sc.UseCompositing,
			ViewLayers: sc.ViewLayers, ViewTransform: sc.ViewTransform, IsMovieOutput: sc.IsMovieOutput,
		})
	}
	for _, f := range s.ExternalFiles {
		in.ExternalFiles = append(in.ExternalFiles, farm.ExternalFile{Type: f.Type, Name: f.Name, Path: f.Path, Missing: f.Missing, Packed: f.Packed})
	}
	return in
}
