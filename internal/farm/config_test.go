package farm_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func ptr[T any](v T) *T { return &v }

// twoScenes is the analysis of a file with a Cycles scene (the active
// one) that asks for denoising, and an EEVEE title scene that writes a
// movie every third frame. The farm's Blender has no denoiser and no ACES.
func twoScenes() *farm.Analysis {
	return &farm.Analysis{Inspection: farm.Inspection{
		FileVersion:       "3.4",
		BlenderVersion:    "3.4.1",
		DenoiserAvailable: false,
		ViewTransforms:    []string{"Standard", "Filmic", "Raw"},
		ActiveScene:       "Shot",
		Scenes: []farm.Scene{
			{
				Name: "Shot", FrameStart: 1, FrameEnd: 24, FrameStep: 1, FPS: 24,
				ResolutionX: 1920, ResolutionY: 1080, ResolutionPercentage: 50,
				Engine: "CYCLES", Samples: 128, Camera: "Camera", OutputFormat: "PNG",
				DenoisingEnabled: true, Denoiser: "OPENIMAGEDENOISE", OutputPath: "//render/shot_####",
			},
			{
				Name: "Titles", FrameStart: 10, FrameEnd: 19, FrameStep: 3, FPS: 29.97,
				ResolutionX: 640, ResolutionY: 360, ResolutionPercentage: 100,
				Engine: "BLENDER_EEVEE", Samples: 64, Camera: "TitleCam", OutputFormat: "FFMPEG",
				IsMovieOutput: true,
			},
		},
	}}
}

// cpuFarm is two workers without GPUs, running Blender 3.4.1 and 4.3.2,
// with 16 GiB of memory each (15.6 GiB as their kernel reports it), one
// of them tagged "fast".
var cpuFarm = farm.WorkerCaps{ExpectedWorkers: 2, BlenderVersions: []string{"3.4.1", "4.3.2"}, Workers: []farm.WorkerOffer{
	{Name: "cpu-a", BlenderVersions: []string{"3.4.1", "4.3.2"}, MemoryBytes: 15_600 << 20},
	{Name: "cpu-b", BlenderVersions: []string{"3.4.1", "4.3.2"}, MemoryBytes: 15_600 << 20, Tags: []string{"fast"}},
}}

// gpuFarm is two workers with two CUDA GPUs each (OptiX on the same
// cards), running Blender 3.4.1 and 4.3.2, with 64 GiB of memory.
var gpuFarm = farm.WorkerCaps{ExpectedWorkers: 2, BlenderVersions: []string{"3.4.1", "4.3.2"}, Workers: []farm.WorkerOffer{
	{Name: "gpu-a", BlenderVersions: []string{"3.4.1", "4.3.2"}, MemoryBytes: 64 << 30, GPUs: []farm.GPU{{Type: "CUDA", Count: 2}, {Type: "OPTIX", Count: 2}}, Tags: []string{"gpu"}},
	{Name: "gpu-b", BlenderVersions: []string{"3.4.1", "4.3.2"}, MemoryBytes: 64 << 30, GPUs: []farm.GPU{{Type: "CUDA", Count: 2}, {Type: "OPTIX", Count: 2}}, Tags: []string{"gpu"}},
}}

func minimalRequest() *farm.RenderConfig {
	return &farm.RenderConfig{ColorManagementPreset: ptr("default")}
}

// shotFallback is what the minimal request resolves to on the Shot scene:
// everything from the file, denoising off because the farm has no
// denoiser, and 24 frames split over two workers.
func shotFallback() *farm.FinalConfig {
	return &farm.FinalConfig{
		Scene:                 "Shot",
		FrameRanges:           []string{"1-24"},
		FrameCount:            24,
		ColorManagementPreset: "default",
		RenderEngine:          "CYCLES",
		ComputeDeviceType:     "CPU",
		CompositorDevice:      "CPU",
		SampleCount:           128,
		DenoisingEnabled:      false,
		Resolution:            []int{1920, 1080},
		ResolutionPercentage:  50,
		OutputFormat:          "PNG",
		FPS:                   24,
		ChunkSize:             12,
		BlenderVersion:        "3.4.1",
		OutputNaming:          farm.NamingFarm,
	}
}

func seq(first, last int) []int {
	var out []int
	for f := first; f <= last; f++ {
		out = append(out, f)
	}
	return out
}

func TestResolveConfigFallsBackToTheSceneForEveryFieldLeftOut(t *testing.T) {
	got, frames, err := farm.ResolveConfig(minimalRequest(), twoScenes(), cpuFarm)
	if err != nil {
		t.Fatal(err)
	}
	if want := shotFallback(); !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveConfig =\n%+v\nwant\n%+v", got, want)
	}
	if want := seq(1, 24); !slices.Equal(frames, want) {
		t.Errorf("frames = %v, want %v", frames, want)
	}
}

func TestResolveConfigOfAnotherSceneUsesThatScene(t *testing.T) {
	req := minimalRequest()
	req.Scene = ptr("Titles")
	got, frames, err := farm.ResolveConfig(req, twoScenes(), cpuFarm)
	if err != nil {
		t.Fatal(err)
	}
	want := &farm.FinalConfig{
		Scene:                 "Titles",
		FrameRanges:           []string{"10-19x3"}, // the scene's frame step
		FrameCount:            4,
		ColorManagementPreset: "default",
		RenderEngine:          "BLENDER_EEVEE",
		ComputeDeviceType:     "CPU",
		CompositorDevice:      "CPU",
		SampleCount:           64,
		Resolution:            []int{640, 360},
		ResolutionPercentage:  100,
		OutputFormat:          "PNG", // the scene writes a movie; the farm renders frames
		FPS:                   29.97,
		ChunkSize:             2,
		BlenderVersion:        "3.4.1",
		OutputNaming:          farm.NamingFarm,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ResolveConfig =\n%+v\nwant\n%+v", got, want)
	}
	if !slices.Equal(frames, []int{10, 13, 16, 19}) {
		t.Errorf("frames = %v, want [10 13 16 19]", frames)
	}
}

func TestResolveConfigAppliesEachOverride(t *testing.T) {
	tests := []struct {
		name       string
		caps       farm.WorkerCaps
		analysis   func(*farm.Analysis)
		request    func(*farm.RenderConfig)
		want       func(*farm.FinalConfig) // the change from shotFallback
		wantFrames []int
	}{
		{
			name:    "frameRanges pick frames, recorded as compact ranges, and the chunk size follows the frame count",
			request: func(r *farm.RenderConfig) { r.FrameRanges = []string{"1-10x3", "20", "11-12"} },
			want: func(c *farm.FinalConfig) {
				c.FrameRanges = []string{"1-10x3", "11-12", "20"}
				c.FrameCount = 7
				c.ChunkSize = 4
			},
			wantFrames: []int{1, 4, 7, 10, 11, 12, 20},
		},
		{
			name:     "colorManagementPreset aces with an ACES view transform",
			analysis: func(a *farm.Analysis) { a.ViewTransforms = append(a.ViewTransforms, "ACES 1.3 sRGB") },
			request:  func(r *farm.RenderConfig) { r.ColorManagementPreset = ptr("aces") },
			want:     func(c *farm.FinalConfig) { c.ColorManagementPreset = "aces" },
		},
		{
			name:     "the Blender that validated the file renders it",
			analysis: func(a *farm.Analysis) { a.FileVersion, a.RenderBlenderVersion = "4.3", "4.3.2" },
			request:  func(r *farm.RenderConfig) {},
			want:     func(c *farm.FinalConfig) { c.BlenderVersion = "4.3.2" },
		},
		{
			name:    "blenderVersion pinned to a major.minor takes its newest patch offered",
			caps:    farm.WorkerCaps{ExpectedWorkers: 2, BlenderVersions: []string{"3.4.1", "4.3.1", "4.3.2", "4.4.0"}},
			request: func(r *farm.RenderConfig) { r.BlenderVersion = ptr("4.3") },
			want:    func(c *farm.FinalConfig) { c.BlenderVersion = "4.3.2" },
		},
		{
			name:    "blenderVersion pinned to a full version",
			caps:    farm.WorkerCaps{ExpectedWorkers: 2, BlenderVersions: []string{"3.4.1", "4.3.1", "4.3.2"}},
			request: func(r *farm.RenderConfig) { r.BlenderVersion = ptr("4.3.1") },
			want:    func(c *farm.FinalConfig) { c.BlenderVersion = "4.3.1" },
		},
		{
			name:    "notes are kept",
			request: func(r *farm.RenderConfig) { r.Notes = ptr("final grade, v3") },
			want:    func(c *farm.FinalConfig) { c.Notes = "final grade, v3" },
		},
		{
			name:    "notes at the length limit",
			request: func(r *farm.RenderConfig) { r.Notes = ptr(strings.Repeat("n", farm.MaxNotesLength)) },
			want:    func(c *farm.FinalConfig) { c.Notes = strings.Repeat("n", farm.MaxNotesLength) },
		},
		{
			name:    "notes are counted in characters, not bytes",
			request: func(r *farm.RenderConfig) { r.Notes = ptr(strings.Repeat("é", farm.MaxNotesLength)) },
			want:    func(c *farm.FinalConfig) { c.Notes = strings.Repeat("é", farm.MaxNotesLength) },
		},
		{
			name:    "renderEngine",
			request: func(r *farm.RenderConfig) { r.RenderEngine = ptr("BLENDER_EEVEE") },
			want:    func(c *farm.FinalConfig) { c.RenderEngine = "BLENDER_EEVEE" },
		},
		{
			name:    "computeDeviceType CPU",
			request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("CPU") },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:    "computeDeviceType NONE renders on the CPU",
			request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("NONE") },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:    "computeDeviceType on a farm with GPUs, in any case",
			caps:    gpuFarm,
			request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("cuda") },
			want:    func(c *farm.FinalConfig) { c.ComputeDeviceType, c.GPUCount = "CUDA", 1 },
		},
		{
			name:    "compositorDevice GPU on a farm with GPUs",
			caps:    gpuFarm,
			request: func(r *farm.RenderConfig) { r.CompositorDevice = ptr("gpu") },
			want:    func(c *farm.FinalConfig) { c.CompositorDevice = "GPU" },
		},
		{
			name:    "gpuCount zero on a farm without GPUs",
			request: func(r *farm.RenderConfig) { r.GPUCount = ptr(0) },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name: "gpuCount up to the GPUs the workers have",
			caps: gpuFarm,
			request: func(r *farm.RenderConfig) {
				r.ComputeDeviceType, r.GPUCount = ptr("OPTIX"), ptr(2)
			},
			want: func(c *farm.FinalConfig) { c.ComputeDeviceType, c.GPUCount = "OPTIX", 2 },
		},
		{
			name:    "minimumRam that a worker's memory rounds up to",
			request: func(r *farm.RenderConfig) { r.MinimumRAM = ptr(16) },
			want:    func(c *farm.FinalConfig) { c.MinimumRAM = 16 },
		},
		{
			name:    "requiredTags a worker has, sorted and each once",
			caps:    gpuFarm,
			request: func(r *farm.RenderConfig) { r.RequiredTags = []string{"gpu", "gpu"} },
			want:    func(c *farm.FinalConfig) { c.RequiredTags = []string{"gpu"} },
		},
		{
			name:    "requiredTags empty asks for nothing",
			request: func(r *farm.RenderConfig) { r.RequiredTags = []string{} },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:    "a render on the CPU on a farm where no worker ran yet waits for one",
			caps:    farm.WorkerCaps{ExpectedWorkers: 1},
			request: func(r *farm.RenderConfig) { r.Priority = ptr(farm.MaxPriority) },
			want:    func(c *farm.FinalConfig) { c.ChunkSize = 24 },
		},
		{
			name:    "sampleCount",
			request: func(r *farm.RenderConfig) { r.SampleCount = ptr(16) },
			want:    func(c *farm.FinalConfig) { c.SampleCount = 16 },
		},
		{
			name:    "denoisingEnabled false",
			request: func(r *farm.RenderConfig) { r.DenoisingEnabled = ptr(false) },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:     "denoisingEnabled with OPENIMAGEDENOISE where the denoiser exists",
			analysis: func(a *farm.Analysis) { a.DenoiserAvailable = true },
			request: func(r *farm.RenderConfig) {
				r.DenoisingEnabled = ptr(true)
				r.DenoiserType = ptr("OPENIMAGEDENOISE")
			},
			want: func(c *farm.FinalConfig) {
				c.DenoisingEnabled = true
				c.DenoiserType = "OPENIMAGEDENOISE"
			},
		},
		{
			name:    "resolution",
			request: func(r *farm.RenderConfig) { r.Resolution = []int{1280, 720} },
			want:    func(c *farm.FinalConfig) { c.Resolution = []int{1280, 720} },
		},
		{
			name:    "resolution at its limits",
			request: func(r *farm.RenderConfig) { r.Resolution = []int{1, farm.MaxResolution} },
			want:    func(c *farm.FinalConfig) { c.Resolution = []int{1, farm.MaxResolution} },
		},
		{
			name:    "resolutionPercentage",
			request: func(r *farm.RenderConfig) { r.ResolutionPercentage = ptr(100) },
			want:    func(c *farm.FinalConfig) { c.ResolutionPercentage = 100 },
		},
		{
			name:    "outputFormat",
			request: func(r *farm.RenderConfig) { r.OutputFormat = ptr("OPEN_EXR") },
			want:    func(c *farm.FinalConfig) { c.OutputFormat = "OPEN_EXR" },
		},
		{
			name:    "fps",
			request: func(r *farm.RenderConfig) { r.FPS = ptr(30) },
			want:    func(c *farm.FinalConfig) { c.FPS = 30 },
		},
		{
			name:    "useTiling and tileSize",
			request: func(r *farm.RenderConfig) { r.UseTiling = ptr(false); r.TileSize = ptr(256) },
			want:    func(c *farm.FinalConfig) { c.UseTiling = ptr(false); c.TileSize = 256 },
		},
		{
			name: "outputSettings",
			request: func(r *farm.RenderConfig) {
				r.OutputSettings = &farm.OutputSettings{ColorMode: ptr("RGBA"), ColorDepth: ptr("16"),
					ExrCodec: ptr("DWAA"), TiffCodec: ptr("LZW"), Compression: ptr(0), Quality: ptr(100)}
			},
			want: func(c *farm.FinalConfig) {
				c.OutputSettings = farm.FinalOutputSettings{ColorMode: "RGBA", ColorDepth: "16",
					ExrCodec: "DWAA", TiffCodec: "LZW", Compression: ptr(0), Quality: ptr(100)}
			},
		},
		{
			name:    "outputSettings left empty keep the file's",
			request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{} },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:    "minimumRam",
			request: func(r *farm.RenderConfig) { r.MinimumRAM = ptr(16) },
			want:    func(c *farm.FinalConfig) { c.MinimumRAM = 16 },
		},
		{
			name:    "chunkSize",
			request: func(r *farm.RenderConfig) { r.ChunkSize = ptr(5) },
			want:    func(c *farm.FinalConfig) { c.ChunkSize = 5 },
		},
		{
			name:    "chunkSize at its limits",
			request: func(r *farm.RenderConfig) { r.ChunkSize = ptr(farm.MaxChunkSize) },
			want:    func(c *farm.FinalConfig) { c.ChunkSize = farm.MaxChunkSize },
		},
		{
			name:    "outputNaming scene",
			request: func(r *farm.RenderConfig) { r.OutputNaming = ptr(farm.NamingScene) },
			want:    func(c *farm.FinalConfig) { c.OutputNaming = farm.NamingScene },
		},
		{
			name:    "outputNaming farm",
			request: func(r *farm.RenderConfig) { r.OutputNaming = ptr(farm.NamingFarm) },
			want:    func(c *farm.FinalConfig) {},
		},
		{
			name:    "scene named explicitly as the active one",
			request: func(r *farm.RenderConfig) { r.Scene = ptr("Shot") },
			want:    func(c *farm.FinalConfig) {},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := twoScenes()
			if tt.analysis != nil {
				tt.analysis(a)
			}
			caps := cpuFarm
			if !reflect.DeepEqual(tt.caps, farm.WorkerCaps{}) {
				caps = tt.caps
			}
			req := minimalRequest()
			tt.request(req)
			got, frames, err := farm.ResolveConfig(req, a, caps)
			if err != nil {
				t.Fatalf("ResolveConfig: %v", err)
			}
			want := shotFallback()
			tt.want(want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("ResolveConfig =\n%+v\nwant\n%+v", got, want)
			}
			wantFrames := tt.wantFrames
			if wantFrames == nil {
				wantFrames = seq(1, 24)
			}
			if !slices.Equal(frames, wantFrames) {
				t.Errorf("frames = %v, want %v", frames, wantFrames)
			}
		})
	}
}

func TestResolveConfigRefusesNamingTheField(t *testing.T) {
	tests := []struct {
		name        string
		caps        farm.WorkerCaps
		analysis    func(*farm.Analysis)
		request     func(*farm.RenderConfig)
		wantField   string
		wantMessage string
	}{
		{name: "colorManagementPreset left out", request: func(r *farm.RenderConfig) { r.ColorManagementPreset = nil },
			wantField: "colorManagementPreset", wantMessage: `is required: "default" keeps the file's color management`},
		{name: "colorManagementPreset unknown", request: func(r *farm.RenderConfig) { r.ColorManagementPreset = ptr("srgb") },
			wantField: "colorManagementPreset", wantMessage: `must be one of default, aces, not "srgb"`},
		{name: "colorManagementPreset in another case", request: func(r *farm.RenderConfig) { r.ColorManagementPreset = ptr("Default") },
			wantField: "colorManagementPreset", wantMessage: "must be one of default, aces"},
		{name: "aces without an ACES view transform, naming the farm's Blender",
			request:   func(r *farm.RenderConfig) { r.ColorManagementPreset = ptr("aces") },
			wantField: "colorManagementPreset", wantMessage: `"aces" needs an ACES view transform, which this farm's Blender 3.4.1 does not have`},

		{name: "a scene the file does not have, listing the scenes it has", request: func(r *farm.RenderConfig) { r.Scene = ptr("Shot 2") },
			wantField: "scene", wantMessage: `the file has no scene "Shot 2"; its scenes are Shot, Titles`},
		{name: "a scene without a camera", analysis: func(a *farm.Analysis) { a.Scenes[0].Camera = "" },
			wantField: "scene", wantMessage: `scene "Shot" has no camera`},
		{name: "an active scene that is not in the file", analysis: func(a *farm.Analysis) { a.ActiveScene = "Gone" },
			wantField: "scene", wantMessage: `no scene "Gone"`},

		{name: "frameRanges outside the scene", request: func(r *farm.RenderConfig) { r.FrameRanges = []string{"20-30"} },
			wantField: "frameRanges", wantMessage: `frame range "20-30" is outside the scene's frames 1-24`},
		{name: "frameRanges malformed", request: func(r *farm.RenderConfig) { r.FrameRanges = []string{"24-1"} },
			wantField: "frameRanges", wantMessage: `write it as "1-24"`},
		{name: "a split into more parts than a render may make, frames times parts",
			analysis: func(a *farm.Analysis) { a.Scenes[0].FrameEnd = 100_000 },
			request: func(r *farm.RenderConfig) {
				r.FrameRanges = []string{"1-2000"}
				r.SplitFrame = &farm.SplitFrame{Parts: 64}
			},
			wantField: "splitFrame.parts", wantMessage: "splitting each of the 2000 frames into 64 parts makes more than 100000 parts, each a task of its own, and a render may make at most 100000; render fewer frames at a time (at most 1562 in 64 parts)"},
		{name: "frameRanges empty", request: func(r *farm.RenderConfig) { r.FrameRanges = []string{} },
			wantField: "frameRanges", wantMessage: "no frames to render"},
		{name: "a scene range too long to render without frameRanges",
			analysis:  func(a *farm.Analysis) { a.Scenes[0].FrameEnd = farm.MaxFramesPerJob + 1 },
			wantField: "frameRanges", wantMessage: "the scene's own frames cannot be rendered"},

		{name: "notes too long", request: func(r *farm.RenderConfig) { r.Notes = ptr(strings.Repeat("n", farm.MaxNotesLength+1)) },
			wantField: "notes", wantMessage: "is 10001 characters; keep it under 10000"},
		{name: "notes too long in characters of several bytes", request: func(r *farm.RenderConfig) { r.Notes = ptr(strings.Repeat("é", farm.MaxNotesLength+1)) },
			wantField: "notes", wantMessage: "is 10001 characters"},

		{name: "renderEngine unknown", request: func(r *farm.RenderConfig) { r.RenderEngine = ptr("LUXCORE") },
			wantField: "renderEngine", wantMessage: `must be one of CYCLES, BLENDER_EEVEE, BLENDER_EEVEE_NEXT, BLENDER_WORKBENCH, not "LUXCORE"`},
		{name: "renderEngine in lower case", request: func(r *farm.RenderConfig) { r.RenderEngine = ptr("cycles") },
			wantField: "renderEngine", wantMessage: `not "cycles"`},

		{name: "computeDeviceType a GPU on a farm without GPUs", request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("CUDA") },
			wantField: "computeDeviceType", wantMessage: `no worker of this farm has a CUDA GPU (its workers have none); use "CPU", or start a worker with --gpu CUDA:1`},
		{name: "computeDeviceType OPTIX on a farm without GPUs", request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("OPTIX") },
			wantField: "computeDeviceType", wantMessage: "no worker of this farm has a OPTIX GPU"},
		{name: "computeDeviceType HIP on a farm of CUDA GPUs", caps: gpuFarm, request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("HIP") },
			wantField: "computeDeviceType", wantMessage: "(it has CUDA:2, OPTIX:2)"},
		{name: "computeDeviceType on a farm where no worker runs yet", caps: farm.WorkerCaps{ExpectedWorkers: 1}, request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("CUDA") },
			wantField: "computeDeviceType", wantMessage: "no worker of this farm has a CUDA GPU"},
		{name: "computeDeviceType a GPU with EEVEE", caps: gpuFarm, request: func(r *farm.RenderConfig) {
			r.ComputeDeviceType, r.RenderEngine = ptr("CUDA"), ptr("BLENDER_EEVEE")
		}, wantField: "computeDeviceType", wantMessage: "renders on the GPUs of Cycles only"},
		{name: "computeDeviceType unknown", request: func(r *farm.RenderConfig) { r.ComputeDeviceType = ptr("TPU") },
			wantField: "computeDeviceType", wantMessage: `must be CPU, CUDA, OPTIX, HIP, ONEAPI, METAL, not "TPU"`},

		{name: "compositorDevice GPU on a farm without GPUs", request: func(r *farm.RenderConfig) { r.CompositorDevice = ptr("GPU") },
			wantField: "compositorDevice", wantMessage: `"GPU" needs a GPU`},
		{name: "compositorDevice unknown", request: func(r *farm.RenderConfig) { r.CompositorDevice = ptr("CUDA") },
			wantField: "compositorDevice", wantMessage: `must be CPU or GPU, not "CUDA"`},

		{name: "gpuCount on the CPU", request: func(r *farm.RenderConfig) { r.GPUCount = ptr(1) },
			wantField: "gpuCount", wantMessage: "is 1, but the render runs on the CPU"},
		{name: "gpuCount beyond the workers' GPUs", caps: gpuFarm, request: func(r *farm.RenderConfig) {
			r.ComputeDeviceType, r.GPUCount = ptr("CUDA"), ptr(3)
		}, wantField: "gpuCount", wantMessage: "is 3, and no worker of this farm has that many CUDA GPUs (it has CUDA:2, OPTIX:2)"},
		{name: "gpuCount zero on GPUs", caps: gpuFarm, request: func(r *farm.RenderConfig) {
			r.ComputeDeviceType, r.GPUCount = ptr("CUDA"), ptr(0)
		}, wantField: "gpuCount", wantMessage: "must be at least 1 for a render on CUDA GPUs"},
		{name: "gpuCount negative", caps: gpuFarm, request: func(r *farm.RenderConfig) { r.GPUCount = ptr(-1) },
			wantField: "gpuCount", wantMessage: "not -1"},
		{name: "gpuCount over the limit", caps: gpuFarm, request: func(r *farm.RenderConfig) {
			r.ComputeDeviceType, r.GPUCount = ptr("CUDA"), ptr(farm.MaxGPUCount+1)
		}, wantField: "gpuCount", wantMessage: "must be between 1 and 64 GPUs, not 65"},

		{name: "minimumRam above every worker's memory", request: func(r *farm.RenderConfig) { r.MinimumRAM = ptr(17) },
			wantField: "minimumRam", wantMessage: "is 17 GiB, and no worker of this farm has that much memory (the most is 16 GiB)"},
		{name: "minimumRam negative", request: func(r *farm.RenderConfig) { r.MinimumRAM = ptr(-1) },
			wantField: "minimumRam", wantMessage: "must be between 0 and 65536"},
		{name: "minimumRam over the limit", request: func(r *farm.RenderConfig) { r.MinimumRAM = ptr(farm.MaxMinimumRAM + 1) },
			wantField: "minimumRam", wantMessage: "not 65537"},
		{name: "minimumRam of the GPU workers and a tag of the CPU ones", caps: farm.WorkerCaps{ExpectedWorkers: 3, Workers: append(slices.Clone(cpuFarm.Workers), gpuFarm.Workers[0])},
			request:   func(r *farm.RenderConfig) { r.MinimumRAM, r.RequiredTags = ptr(32), []string{"fast"} },
			wantField: "requiredTags", wantMessage: "no worker of this farm has the tags fast as well as the memory asked for (workers have the tags fast, gpu)"},
		{name: "minimumRam beyond the GPU workers'", caps: gpuFarm, request: func(r *farm.RenderConfig) {
			r.ComputeDeviceType, r.MinimumRAM = ptr("CUDA"), ptr(65)
		}, wantField: "minimumRam", wantMessage: "is 65 GiB, and no worker of this farm with the GPUs asked for has that much memory (the most is 64 GiB)"},

		{name: "requiredTags no worker has", request: func(r *farm.RenderConfig) { r.RequiredTags = []string{"gpu"} },
			wantField: "requiredTags", wantMessage: "no worker of this farm has the tags gpu (workers have the tags fast); start one with --tags"},
		{name: "requiredTags of two workers, not of one", request: func(r *farm.RenderConfig) { r.RequiredTags = []string{"fast", "gpu"} },
			wantField: "requiredTags", wantMessage: "has the tags fast, gpu"},
		{name: "requiredTags with a capital", request: func(r *farm.RenderConfig) { r.RequiredTags = []string{"GPU"} },
			wantField: "requiredTags", wantMessage: `tag "GPU" may hold only lower-case letters`},
		{name: "requiredTags with a comma", request: func(r *farm.RenderConfig) { r.RequiredTags = []string{"a,b"} },
			wantField: "requiredTags", wantMessage: `tag "a,b" may hold only`},
		{name: "requiredTags empty tag", request: func(r *farm.RenderConfig) { r.RequiredTags = []string{""} },
			wantField: "requiredTags", wantMessage: "must be 1 to 64 characters"},
		{name: "requiredTags too many", request: func(r *farm.RenderConfig) {
			for i := range farm.MaxTags + 1 {
				r.RequiredTags = append(r.RequiredTags, fmt.Sprintf("t%d", i))
			}
		}, wantField: "requiredTags", wantMessage: "17 tags; at most 16"},
		// The request is kept as sent (the Job's requestedConfig): a tag
		// a worker has, given 100,000 times, made every Job object of it
		// half a megabyte.
		{name: "requiredTags of one tag given past the bound", request: func(r *farm.RenderConfig) {
			r.RequiredTags = slices.Repeat([]string{"fast"}, 100_000)
		}, wantField: "requiredTags", wantMessage: "100000 tags; at most 16"},
		// Each tag was looked for among those before it: 100,000 took
		// seconds of the request's transaction.
		{name: "requiredTags of 100,000 tags", request: func(r *farm.RenderConfig) {
			for i := range 100_000 {
				r.RequiredTags = append(r.RequiredTags, fmt.Sprintf("t%d", i))
			}
		}, wantField: "requiredTags", wantMessage: "100000 tags; at most 16"},

		{name: "priority below the lowest", request: func(r *farm.RenderConfig) { r.Priority = ptr(-1) },
			wantField: "priority", wantMessage: "must be between 0 (lowest) and 100 (highest), not -1; the default is 50"},
		{name: "priority above the highest", request: func(r *farm.RenderConfig) { r.Priority = ptr(101) },
			wantField: "priority", wantMessage: "not 101"},

		{name: "sampleCount zero", request: func(r *farm.RenderConfig) { r.SampleCount = ptr(0) },
			wantField: "sampleCount", wantMessage: "must be between 1 and 16777216, not 0"},
		{name: "sampleCount too high", request: func(r *farm.RenderConfig) { r.SampleCount = ptr(farm.MaxSampleCount + 1) },
			wantField: "sampleCount", wantMessage: "must be between 1 and 16777216"},
		{name: "sampleCount with the Workbench engine",
			request: func(r *farm.RenderConfig) {
				r.RenderEngine = ptr("BLENDER_WORKBENCH")
				r.SampleCount = ptr(16)
			},
			wantField: "sampleCount", wantMessage: "the Workbench engine has no samples"},

		{name: "denoisingEnabled where the farm's Blender has no denoiser", request: func(r *farm.RenderConfig) { r.DenoisingEnabled = ptr(true) },
			wantField: "denoisingEnabled", wantMessage: "Blender 3.4.1 was built without OpenImageDenoise; set it to false or leave it out"},
		{name: "denoiserType OPENIMAGEDENOISE where the farm's Blender has no denoiser", request: func(r *farm.RenderConfig) { r.DenoiserType = ptr("OPENIMAGEDENOISE") },
			wantField: "denoiserType", wantMessage: "OPENIMAGEDENOISE is not available in this farm's Blender 3.4.1"},
		{name: "denoiserType OPTIX", request: func(r *farm.RenderConfig) { r.DenoiserType = ptr("OPTIX") },
			wantField: "denoiserType", wantMessage: "OPTIX needs an NVIDIA GPU"},
		{name: "denoiserType unknown", analysis: func(a *farm.Analysis) { a.DenoiserAvailable = true },
			request:   func(r *farm.RenderConfig) { r.DenoiserType = ptr("NLM") },
			wantField: "denoiserType", wantMessage: `must be OPENIMAGEDENOISE or OPTIX, not "NLM"`},

		{name: "resolution with one number", request: func(r *farm.RenderConfig) { r.Resolution = []int{1920} },
			wantField: "resolution", wantMessage: "must be [width, height], got 1 numbers"},
		{name: "resolution with three numbers", request: func(r *farm.RenderConfig) { r.Resolution = []int{1920, 1080, 1} },
			wantField: "resolution", wantMessage: "got 3 numbers"},
		{name: "resolution empty", request: func(r *farm.RenderConfig) { r.Resolution = []int{} },
			wantField: "resolution", wantMessage: "got 0 numbers"},
		{name: "resolution width zero", request: func(r *farm.RenderConfig) { r.Resolution = []int{0, 1080} },
			wantField: "resolution", wantMessage: "width must be between 1 and 16384, not 0"},
		{name: "resolution height too large", request: func(r *farm.RenderConfig) { r.Resolution = []int{1920, farm.MaxResolution + 1} },
			wantField: "resolution", wantMessage: "height must be between 1 and 16384, not 16385"},

		{name: "resolutionPercentage zero", request: func(r *farm.RenderConfig) { r.ResolutionPercentage = ptr(0) },
			wantField: "resolutionPercentage", wantMessage: "must be between 1 and 100, not 0"},
		{name: "resolutionPercentage over 100", request: func(r *farm.RenderConfig) { r.ResolutionPercentage = ptr(101) },
			wantField: "resolutionPercentage", wantMessage: "not 101"},

		{name: "outputFormat a movie", request: func(r *farm.RenderConfig) { r.OutputFormat = ptr("FFMPEG") },
			wantField: "outputFormat", wantMessage: `"FFMPEG" is a movie format; the farm renders frames as images`},
		{name: "outputFormat an AVI movie", request: func(r *farm.RenderConfig) { r.OutputFormat = ptr("AVI_JPEG") },
			wantField: "outputFormat", wantMessage: "is a movie format"},
		{name: "outputFormat unknown", request: func(r *farm.RenderConfig) { r.OutputFormat = ptr("GIF") },
			wantField: "outputFormat", wantMessage: `not "GIF"`},

		{name: "fps zero", request: func(r *farm.RenderConfig) { r.FPS = ptr(0) },
			wantField: "fps", wantMessage: "must be between 1 and 1000, not 0"},
		{name: "fps too high", request: func(r *farm.RenderConfig) { r.FPS = ptr(farm.MaxFPS + 1) },
			wantField: "fps", wantMessage: "not 1001"},

		{name: "tileSize too small", request: func(r *farm.RenderConfig) { r.TileSize = ptr(7) },
			wantField: "tileSize", wantMessage: "must be between 8 and 16384, not 7"},
		{name: "tileSize too large", request: func(r *farm.RenderConfig) { r.TileSize = ptr(farm.MaxResolution + 1) },
			wantField: "tileSize", wantMessage: "not 16385"},

		{name: "outputSettings.colorMode unknown", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{ColorMode: ptr("CMYK")} },
			wantField: "outputSettings.colorMode", wantMessage: `must be one of BW, RGB, RGBA, not "CMYK"`},
		{name: "outputSettings.colorDepth unknown", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{ColorDepth: ptr("24")} },
			wantField: "outputSettings.colorDepth", wantMessage: `not "24"`},
		{name: "outputSettings.exrCodec unknown", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{ExrCodec: ptr("LZW")} },
			wantField: "outputSettings.exrCodec", wantMessage: `not "LZW"`},
		{name: "outputSettings.tiffCodec unknown", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{TiffCodec: ptr("ZIP")} },
			wantField: "outputSettings.tiffCodec", wantMessage: `not "ZIP"`},
		{name: "outputSettings.compression negative", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{Compression: ptr(-1)} },
			wantField: "outputSettings.compression", wantMessage: "must be between 0 and 100, not -1"},
		{name: "outputSettings.compression over 100", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{Compression: ptr(101)} },
			wantField: "outputSettings.compression", wantMessage: "not 101"},
		{name: "outputSettings.quality over 100", request: func(r *farm.RenderConfig) { r.OutputSettings = &farm.OutputSettings{Quality: ptr(101)} },
			wantField: "outputSettings.quality", wantMessage: "must be between 0 and 100, not 101"},

		{name: "chunkSize zero", request: func(r *farm.RenderConfig) { r.ChunkSize = ptr(0) },
			wantField: "chunkSize", wantMessage: "must be between 1 and 1000, not 0"},
		{name: "chunkSize too large", request: func(r *farm.RenderConfig) { r.ChunkSize = ptr(farm.MaxChunkSize + 1) },
			wantField: "chunkSize", wantMessage: "not 1001"},

		{name: "blenderVersion that is not a version", request: func(r *farm.RenderConfig) { r.BlenderVersion = ptr("latest") },
			wantField: "blenderVersion", wantMessage: `must be a Blender version such as "4.3" or "4.3.2", not "latest"`},
		{name: "blenderVersion no live render node offers, listing those offered", request: func(r *farm.RenderConfig) { r.BlenderVersion = ptr("9.9") },
			wantField: "blenderVersion", wantMessage: "no live render node offers Blender 9.9; the farm offers 3.4.1, 4.3.2"},
		{name: "blenderVersion older than the file", analysis: func(a *farm.Analysis) { a.FileVersion = "4.3" },
			request:   func(r *farm.RenderConfig) { r.BlenderVersion = ptr("3.4") },
			wantField: "blenderVersion", wantMessage: "the file was saved with Blender 4.3, which Blender 3.4.1 cannot open; pin 4.3 or newer"},
		{name: "outputNaming unknown, naming the scene's output path", request: func(r *farm.RenderConfig) { r.OutputNaming = ptr("blender") },
			wantField: "outputNaming", wantMessage: `must be "farm" (frame_0001.png) or "scene" (as the scene's output path "//render/shot_####" names them), not "blender"`},
		{name: "outputNaming in another case", request: func(r *farm.RenderConfig) { r.OutputNaming = ptr("Scene") },
			wantField: "outputNaming", wantMessage: `not "Scene"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := twoScenes()
			if tt.analysis != nil {
				tt.analysis(a)
			}
			caps := cpuFarm
			if !reflect.DeepEqual(tt.caps, farm.WorkerCaps{}) {
				caps = tt.caps
			}
			req := minimalRequest()
			if tt.request != nil {
				tt.request(req)
			}
			fc, frames, err := farm.ResolveConfig(req, a, caps)
			if err == nil {
				t.Fatalf("ResolveConfig accepted the request: %+v", fc)
			}
			if fc != nil || frames != nil {
				t.Errorf("ResolveConfig returned a config or frames with its error")
			}
			var fe *farm.Error
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a *farm.Error", err)
			}
			if fe.Kind != farm.KindInvalid || fe.Code != farm.CodeInvalidConfig {
				t.Errorf("kind, code = %v, %s; want KindInvalid, %s", fe.Kind, fe.Code, farm.CodeInvalidConfig)
			}
			if fe.Field != tt.wantField {
				t.Errorf("Field = %q, want %q", fe.Field, tt.wantField)
			}
			if !strings.HasPrefix(fe.Message, tt.wantField+": ") {
				t.Errorf("message %q does not start with the field name %q", fe.Message, tt.wantField)
			}
			if !strings.Contains(fe.Message, tt.wantMessage) {
				t.Errorf("message %q does not say %q", fe.Message, tt.wantMessage)
			}
		})
	}
}

func TestResolveConfigNeedsARequestAndAnAnalysis(t *testing.T) {
	_, _, err := farm.ResolveConfig(nil, twoScenes(), cpuFarm)
	var fe *farm.Error
	if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Code != farm.CodeInvalidConfig ||
		!strings.Contains(fe.Message, "requestedRenderConfig is required") {
		t.Errorf("nil request: error %v, want %s saying requestedRenderConfig is required", err, farm.CodeInvalidConfig)
	}
	_, _, err = farm.ResolveConfig(minimalRequest(), nil, cpuFarm)
	if !errors.As(err, &fe) || fe.Kind != farm.KindInvalid || fe.Code != farm.CodeInvalidState ||
		!strings.Contains(fe.Message, "validate it first") {
		t.Errorf("nil analysis: error %v, want %s saying to validate first", err, farm.CodeInvalidState)
	}
}

func TestResolveConfigAcceptsAnyACESViewTransform(t *testing.T) {
	for _, transform := range []string{"ACES", "ACEScg", "aces 2.0 srgb", "ACES 1.3 sRGB"} {
		a := twoScenes()
		a.ViewTransforms = []string{"Standard", transform}
		req := minimalRequest()
		req.ColorManagementPreset = ptr("aces")
		fc, _, err := farm.ResolveConfig(req, a, cpuFarm)
		if err != nil {
			t.Errorf("with view transform %q: %v", transform, err)
			continue
		}
		if fc.ColorManagementPreset != "aces" {
			t.Errorf("with view transform %q: preset = %q, want aces", transform, fc.ColorManagementPreset)
		}
	}
}

func TestResolveConfigDenoisingDefaults(t *testing.T) {
	tests := []struct {
		name              string
		sceneWants        bool
		denoiserAvailable bool
		engine            *string
		requested         *bool
		wantEnabled       bool
	}{
		{name: "the scene wants it but the farm has no denoiser: rendered without, as the analysis warned",
			sceneWants: true, denoiserAvailable: false, wantEnabled: false},
		{name: "the scene wants it and the denoiser is there: on",
			sceneWants: true, denoiserAvailable: true, wantEnabled: true},
		{name: "the scene does not want it: off",
			sceneWants: false, denoiserAvailable: true, wantEnabled: false},
		{name: "turned off explicitly although the scene wants it",
			sceneWants: true, denoiserAvailable: true, requested: ptr(false), wantEnabled: false},
		{name: "turned on explicitly although the scene does not want it",
			sceneWants: false, denoiserAvailable: true, requested: ptr(true), wantEnabled: true},
		{name: "turned off explicitly where there is no denoiser",
			sceneWants: true, denoiserAvailable: false, requested: ptr(false), wantEnabled: false},
		{name: "engines other than Cycles never denoise",
			sceneWants: true, denoiserAvailable: true, engine: ptr("BLENDER_EEVEE"), requested: ptr(true), wantEnabled: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := twoScenes()
			a.Scenes[0].DenoisingEnabled = tt.sceneWants
			a.DenoiserAvailable = tt.denoiserAvailable
			req := minimalRequest()
			req.DenoisingEnabled = tt.requested
			req.RenderEngine = tt.engine
			fc, _, err := farm.ResolveConfig(req, a, cpuFarm)
			if err != nil {
				t.Fatal(err)
			}
			if fc.DenoisingEnabled != tt.wantEnabled {
				t.Errorf("DenoisingEnabled = %v, want %v", fc.DenoisingEnabled, tt.wantEnabled)
			}
		})
	}
}

func TestResolveConfigClearsTheDenoiserForEnginesOtherThanCycles(t *testing.T) {
	a := twoScenes()
	a.DenoiserAvailable = true
	req := minimalRequest()
	req.RenderEngine = ptr("BLENDER_EEVEE")
	req.DenoisingEnabled = ptr(true)
	req.DenoiserType = ptr("OPENIMAGEDENOISE")
	fc, _, err := farm.ResolveConfig(req, a, cpuFarm)
	if err != nil {
		t.Fatal(err)
	}
	if fc.DenoisingEnabled || fc.DenoiserType != "" {
		t.Errorf("DenoisingEnabled, DenoiserType = %v, %q; want false, \"\"", fc.DenoisingEnabled, fc.DenoiserType)
	}
}

func TestResolveConfigOutputFormatOfTheScene(t *testing.T) {
	tests := []struct {
		name        string
		sceneFormat string
		want        string
	}{
		{"an image format is kept", "OPEN_EXR", "OPEN_EXR"},
		{"an FFMPEG movie becomes PNG frames", "FFMPEG", "PNG"},
		{"an AVI movie becomes PNG frames", "AVI_RAW", "PNG"},
		{"no format at all becomes PNG", "", "PNG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := twoScenes()
			a.Scenes[0].OutputFormat = tt.sceneFormat
			fc, _, err := farm.ResolveConfig(minimalRequest(), a, cpuFarm)
			if err != nil {
				t.Fatal(err)
			}
			if fc.OutputFormat != tt.want {
				t.Errorf("OutputFormat = %q, want %q", fc.OutputFormat, tt.want)
			}
		})
	}
}

func TestResolveConfigDefaultChunkSizeFollowsExpectedWorkers(t *testing.T) {
	tests := []struct {
		name    string
		workers int
		want    int
	}{
		{"no workers known: the whole job in one chunk", 0, 24},
		{"one worker: the whole job in one chunk", 1, 24},
		{"four workers: a quarter each", 4, 6},
		{"more workers than frames: a frame each", 50, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fc, _, err := farm.ResolveConfig(minimalRequest(), twoScenes(), farm.WorkerCaps{ExpectedWorkers: tt.workers})
			if err != nil {
				t.Fatal(err)
			}
			if fc.ChunkSize != tt.want {
				t.Errorf("ChunkSize = %d, want %d", fc.ChunkSize, tt.want)
			}
		})
	}
}

func TestRenderConfigIsEmpty(t *testing.T) {
	tests := []struct {
		name string
		cfg  *farm.RenderConfig
		want bool
	}{
		{"no config at all", nil, true},
		{"an empty object", &farm.RenderConfig{}, true},
		{"an empty list of frame ranges sets nothing", &farm.RenderConfig{FrameRanges: []string{}}, true},
		{"an empty resolution sets nothing", &farm.RenderConfig{Resolution: []int{}}, true},
		{"the required preset", minimalRequest(), false},
		{"only frame ranges", &farm.RenderConfig{FrameRanges: []string{"1-5"}}, false},
		{"a false flag is still a setting", &farm.RenderConfig{DenoisingEnabled: ptr(false)}, false},
		{"a zero number is still a setting", &farm.RenderConfig{SampleCount: ptr(0)}, false},
		{"an empty string is still a setting", &farm.RenderConfig{Notes: ptr("")}, false},
		{"empty outputSettings are still a setting", &farm.RenderConfig{OutputSettings: &farm.OutputSettings{}}, false},
		{"only our own chunkSize", &farm.RenderConfig{ChunkSize: ptr(4)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.IsEmpty(); got != tt.want {
				t.Errorf("IsEmpty() = %v, want %v", got, tt.want)
			}
		})
	}
}

// Format details Blender would refuse at its first frame are refused when
// the render is requested.
func TestResolveConfigRefusesSettingsTheFormatLacks(t *testing.T) {
	a := &farm.Analysis{Inspection: farm.Inspection{BlenderVersion: "3.4.1", ActiveScene: "S", Scenes: []farm.Scene{{
		Name: "S", FrameStart: 1, FrameEnd: 2, FrameStep: 1, ResolutionX: 64, ResolutionY: 36, ResolutionPercentage: 100,
		Engine: "CYCLES", Samples: 4, Camera: "Camera", OutputFormat: "PNG",
	}}}}
	preset := "default"
	cases := []struct {
		name   string
		format string
		out    farm.OutputSettings
		field  string
	}{
		{"JPEG has no 16-bit", "JPEG", farm.OutputSettings{ColorDepth: ptr("16")}, "outputSettings.colorDepth"},
		{"EXR has no 8-bit", "OPEN_EXR", farm.OutputSettings{ColorDepth: ptr("8")}, "outputSettings.colorDepth"},
		{"JPEG has no alpha", "JPEG", farm.OutputSettings{ColorMode: ptr("RGBA")}, "outputSettings.colorMode"},
		{"PNG 16-bit RGBA is fine", "PNG", farm.OutputSettings{ColorDepth: ptr("16"), ColorMode: ptr("RGBA")}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.out
			_, _, err := farm.ResolveConfig(&farm.RenderConfig{ColorManagementPreset: &preset, OutputFormat: &tc.format, OutputSettings: &out}, a, farm.WorkerCaps{})
			var fe *farm.Error
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("err = %v, want a refusal naming %s", err, tc.field)
			}
		})
	}
}

func TestResolveConfigTakesASplitOfAsManyPartsAsARenderMayMake(t *testing.T) {
	a := twoScenes()
	a.Scenes[0].FrameEnd = 100_000
	req := minimalRequest()
	last := farm.MaxSplitPartsPerRender / 64
	req.FrameRanges = []string{fmt.Sprintf("1-%d", last)}
	req.SplitFrame = &farm.SplitFrame{Parts: 64}

	fc, frames, err := farm.ResolveConfig(req, a, cpuFarm)

	if err != nil || len(frames) != last || fc.PartsPerFrame() != 64 {
		t.Errorf("ResolveConfig of %d frames in 64 parts = %d frames, %v; want them taken", last, len(frames), err)
	}
}
