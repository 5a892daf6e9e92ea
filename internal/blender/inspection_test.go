package blender

import (
	"reflect"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestDecodeInspectionFillsTheDomainsInspection: every key the inspect
// script writes lands in the farm's own type.
func TestDecodeInspectionFillsTheDomainsInspection(t *testing.T) {
	body := `{"fileVersion": "3.4", "blenderVersion": "3.4.1", "denoiserAvailable": true,
		"viewTransforms": ["Standard", "Filmic"], "activeScene": "Scene",
		"scenes": [{"name": "Scene", "frameStart": 1, "frameEnd": 24, "frameStep": 2, "fps": 29.97,
			"resolutionX": 1920, "resolutionY": 1080, "resolutionPercentage": 50, "engine": "CYCLES",
			"samples": 64, "camera": "Camera", "outputFormat": "PNG", "colorMode": "RGBA", "colorDepth": "16",
			"denoisingEnabled": true, "denoiser": "OPENIMAGEDENOISE", "useCompositing": true,
			"viewLayers": ["ViewLayer"], "viewTransform": "Filmic", "isMovieOutput": false,
			"outputPath": "//render/shot_####", "useFileExtension": true,
			"multiview": {"mode": "STEREO_3D", "imageViews": "INDIVIDUAL", "views": [{"name": "left", "suffix": "_L"}, {"name": "right", "suffix": "_R"}]},
			"fileOutputNodes": [{"name": "Depth", "format": "OPEN_EXR", "codec": "", "imageViews": "INDIVIDUAL", "basePath": "//passes/",
				"slots": [{"path": "depth_####", "format": "OPEN_EXR", "codec": "", "imageViews": "INDIVIDUAL"}]}],
			"renderPasses": [{"viewLayer": "ViewLayer", "passes": ["Combined", "Depth"]}]}],
		"externalFiles": [{"type": "image", "name": "sky.hdr", "path": "//sky.hdr", "missing": true, "packed": false}],
		"externalFilesTruncated": true,
		"libraries": [{"name": "prop.blend", "path": "//assets/prop.blend", "parent": "", "missing": false}]}`
	got, err := decodeInspection([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := farm.Inspection{FileVersion: "3.4", BlenderVersion: "3.4.1", DenoiserAvailable: true,
		ViewTransforms: []string{"Standard", "Filmic"}, ActiveScene: "Scene",
		Scenes: []farm.Scene{{Name: "Scene", FrameStart: 1, FrameEnd: 24, FrameStep: 2, FPS: 29.97,
			ResolutionX: 1920, ResolutionY: 1080, ResolutionPercentage: 50, Engine: "CYCLES",
			Samples: 64, Camera: "Camera", OutputFormat: "PNG", ColorMode: "RGBA", ColorDepth: "16",
			DenoisingEnabled: true, Denoiser: "OPENIMAGEDENOISE", UseCompositing: true,
			ViewLayers: []string{"ViewLayer"}, ViewTransform: "Filmic",
			OutputPath: "//render/shot_####", UseFileExtension: true,
			Multiview: &farm.Multiview{Mode: "STEREO_3D", ImageViews: "INDIVIDUAL", Views: []farm.View{{Name: "left", Suffix: "_L"}, {Name: "right", Suffix: "_R"}}},
			FileOutputNodes: []farm.FileOutputNode{{Name: "Depth", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL", BasePath: "//passes/",
				Slots: []farm.FileOutputSlot{{Path: "depth_####", Format: "OPEN_EXR", ImageViews: "INDIVIDUAL"}}}},
			RenderPasses: []farm.ViewLayerPasses{{ViewLayer: "ViewLayer", Passes: []string{"Combined", "Depth"}}}}},
		ExternalFiles:          []farm.ExternalFile{{Type: "image", Name: "sky.hdr", Path: "//sky.hdr", Missing: true}},
		ExternalFilesTruncated: true,
		Libraries:              []farm.Library{{Name: "prop.blend", Path: "//assets/prop.blend"}}}
	if !reflect.DeepEqual(*got, want) {
		t.Errorf("decoded\n%+v\nwant\n%+v", *got, want)
	}
}

// TestDecodeInspectionRefusesKeysRenamedOnOneSide: a key renamed in the
// script, or in the domain, fails validation loudly instead of vanishing
// from the analysis; so does a key of a scene or an external file.
func TestDecodeInspectionRefusesKeysRenamedOnOneSide(t *testing.T) {
	whole := `{"fileVersion": "3.4", "blenderVersion": "3.4.1", "denoiserAvailable": false, "viewTransforms": [],
		"activeScene": "Scene", "scenes": [], "externalFiles": [], "externalFilesTruncated": false, "libraries": []}`
	if _, err := decodeInspection([]byte(whole)); err != nil {
		t.Fatalf("decodeInspection of every key: %v", err)
	}
	for _, tt := range []struct{ from, to, says string }{
		{`"blenderVersion"`, `"blenderRelease"`, "blenderRelease"},
		{`"blenderVersion": "3.4.1", `, ``, "blenderVersion"},
		{`"scenes": []`, `"scenes": [{"name": "Scene"}]`, "scenes[0]"},
		{`"externalFiles": []`, `"externalFiles": [{"type": "image", "name": "a", "path": "//a", "missing": true, "packed": false, "size": 1}]`, "size"},
		{`"libraries": []`, `"libraries": [{"name": "a.blend", "path": "//a.blend", "missing": false}]`, "libraries[0]"},
		// Objects nested deeper are held to their type too.
		{`"scenes": []`, `"scenes": [` + sceneWith(`"fileOutputNodes": [{"name": "N", "format": "PNG", "codec": "", "imageViews": "INDIVIDUAL", "basePath": "//", "slots": [{"path": "a", "format": "PNG", "codec": "", "views": "INDIVIDUAL"}]}]`) + `]`, "scenes[0].fileOutputNodes[0].slots[0]"},
		{`"scenes": []`, `"scenes": [` + sceneWith(`"multiview": {"mode": "STEREO_3D", "imageViews": "INDIVIDUAL", "views": [{"name": "left"}]}`) + `]`, "scenes[0].multiview.views[0]"},
	} {
		body := strings.Replace(whole, tt.from, tt.to, 1)
		if _, err := decodeInspection([]byte(body)); err == nil || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("decodeInspection(%s) = %v; want an error naming %s", body, err, tt.says)
		}
	}
}

// sceneWith is a scene of the inspection with every key, extra holding
// the value of one of multiview or fileOutputNodes.
func sceneWith(extra string) string {
	scene := `{"name": "Scene", "frameStart": 1, "frameEnd": 24, "frameStep": 1, "fps": 24,
		"resolutionX": 64, "resolutionY": 36, "resolutionPercentage": 100, "engine": "CYCLES",
		"samples": 4, "camera": "Camera", "outputFormat": "PNG", "colorMode": "RGBA", "colorDepth": "8",
		"denoisingEnabled": false, "denoiser": "", "useCompositing": true,
		"viewLayers": ["ViewLayer"], "viewTransform": "Filmic", "isMovieOutput": false,
		"outputPath": "//", "useFileExtension": true, "renderPasses": []`
	for _, key := range []string{`"multiview": null`, `"fileOutputNodes": []`} {
		if !strings.HasPrefix(extra, key[:strings.Index(key, ":")]) {
			scene += ", " + key
		}
	}
	return scene + ", " + extra + "}"
}
