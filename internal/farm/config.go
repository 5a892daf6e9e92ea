package farm

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"
)

// RenderConfig is requestedRenderConfig: what the client asks for. Every
// field left out falls back to what validation found in the file, which is
// why every field is a pointer or a nil-able slice.
type RenderConfig struct {
	ColorManagementPreset *string         `json:"colorManagementPreset,omitempty"`
	FrameRanges           []string        `json:"frameRanges,omitempty"`
	Notes                 *string         `json:"notes,omitempty"`
	RenderEngine          *string         `json:"renderEngine,omitempty"`
	CompositorDevice      *string         `json:"compositorDevice,omitempty"`
	ComputeDeviceType     *string         `json:"computeDeviceType,omitempty"`
	GPUCount              *int            `json:"gpuCount,omitempty"`
	SampleCount           *int            `json:"sampleCount,omitempty"`
	DenoisingEnabled      *bool           `json:"denoisingEnabled,omitempty"`
	DenoiserType          *string         `json:"denoiserType,omitempty"`
	Resolution            []int           `json:"resolution,omitempty"`
	ResolutionPercentage  *int            `json:"resolutionPercentage,omitempty"`
	OutputFormat          *string         `json:"outputFormat,omitempty"`
	FPS                   *int            `json:"fps,omitempty"`
	UseTiling             *bool           `json:"useTiling,omitempty"`
	TileSize              *int            `json:"tileSize,omitempty"`
	OutputSettings        *OutputSettings `json:"outputSettings,omitempty"`
	MinimumRAM            *int            `json:"minimumRam,omitempty"`

	// ChunkSize is ours: how many frames one Blender process renders.
	ChunkSize *int `json:"chunkSize,omitempty"`
	// Scene is ours: which scene of the file to render (default: the active one).
	Scene *string `json:"scene,omitempty"`
	// BlenderVersion is ours: the farm's Blender to render with, "4.3"
	// (its newest patch) or "4.3.2" (default: the one that validated the
	// file).
	BlenderVersion *string `json:"blenderVersion,omitempty"`
	// OutputNaming is ours: how the frames are named for download,
	// NamingFarm (default: frame_0001.png) or NamingScene (as the scene's
	// output path names them).
	OutputNaming *string `json:"outputNaming,omitempty"`
	// ScoutFrames is ours: frames rendered first, before the job is
	// suspended for a person to approve them (see ScoutFrames).
	ScoutFrames *ScoutFrames `json:"scoutFrames,omitempty"`
	// Priority is ours: the job's priority among its workspace's jobs,
	// MinPriority to MaxPriority (default: the job's, DefaultPriority
	// unless changed since it was made).
	Priority *int `json:"priority,omitempty"`
	// RequiredTags is ours: tags every worker that renders the job must
	// have (its --tags).
	RequiredTags []string `json:"requiredTags,omitempty"`
	// SplitFrame is ours: every frame split into parts that different
	// workers render, merged into the frame (docs/split-frame.md).
	SplitFrame *SplitFrame `json:"splitFrame,omitempty"`
}

// SplitFrame asks for every frame to be split into Parts parts, by Mode
// (SplitBySamples, the default, or SplitByTiles). Which splits the farm
// renders is blender.CheckSplit's to say; the service asks it.
type SplitFrame struct {
	Mode  string `json:"mode,omitempty"`
	Parts int    `json:"parts"`
}

// Split modes, as blender.SplitMode names them.
const (
	SplitBySamples = "samples"
	SplitByTiles   = "tiles"
)

// OutputSettings are the image format details of requestedRenderConfig.
type OutputSettings struct {
	ColorMode   *string `json:"colorMode,omitempty"`
	ColorDepth  *string `json:"colorDepth,omitempty"`
	ExrCodec    *string `json:"exrCodec,omitempty"`
	TiffCodec   *string `json:"tiffCodec,omitempty"`
	Compression *int    `json:"compression,omitempty"`
	Quality     *int    `json:"quality,omitempty"`
}

// FinalConfig is what the workers render: the request merged over the
// analysis, every value resolved.
type FinalConfig struct {
	Scene                 string              `json:"scene"`
	FrameRanges           []string            `json:"frameRanges"`
	FrameCount            int                 `json:"frameCount"`
	ColorManagementPreset string              `json:"colorManagementPreset"`
	RenderEngine          string              `json:"renderEngine"`
	ComputeDeviceType     string              `json:"computeDeviceType"`
	CompositorDevice      string              `json:"compositorDevice"`
	SampleCount           int                 `json:"sampleCount"`
	DenoisingEnabled      bool                `json:"denoisingEnabled"`
	DenoiserType          string              `json:"denoiserType,omitempty"`
	Resolution            []int               `json:"resolution"`
	ResolutionPercentage  int                 `json:"resolutionPercentage"`
	OutputFormat          string              `json:"outputFormat"`
	FPS                   float64             `json:"fps"`
	UseTiling             *bool               `json:"useTiling,omitempty"`
	TileSize              int                 `json:"tileSize,omitempty"`
	OutputSettings        FinalOutputSettings `json:"outputSettings"`
	ChunkSize             int                 `json:"chunkSize"`
	Notes                 string              `json:"notes,omitempty"`
	MinimumRAM            int                 `json:"minimumRam,omitempty"`
	// GPUCount is how many GPUs of ComputeDeviceType each chunk renders
	// with; 0 on the CPU.
	GPUCount int `json:"gpuCount,omitempty"`
	// RequiredTags is ours: the tags a worker must have to render the job.
	RequiredTags []string `json:"requiredTags,omitempty"`
	// BlenderVersion is ours: the full version of the farm's Blender that
	// renders every chunk, such as "4.3.2".
	BlenderVersion string `json:"blenderVersion"`
	// OutputNaming is NamingFarm or NamingScene; "" in jobs rendered
	// before it was asked for, which were named as NamingFarm names.
	OutputNaming string `json:"outputNaming,omitempty"`
	// ScoutFrames is ours: the frames rendered first, as compact ranges;
	// left out when the request asked for none.
	ScoutFrames []string `json:"scoutFrames,omitempty"`
	// SplitFrame is ours: how every frame is split, its mode resolved;
	// left out when frames are rendered whole.
	SplitFrame *SplitFrame `json:"splitFrame,omitempty"`
}

// PartsPerFrame is how many parts each frame is rendered in: 1 for a
// frame rendered whole.
func (fc *FinalConfig) PartsPerFrame() int {
	if fc == nil || fc.SplitFrame == nil {
		return 1
	}
	return fc.SplitFrame.Parts
}

// FinalOutputSettings are the resolved image format details; empty strings
// and zeros keep what the file has.
type FinalOutputSettings struct {
	ColorMode   string `json:"colorMode,omitempty"`
	ColorDepth  string `json:"colorDepth,omitempty"`
	ExrCodec    string `json:"exrCodec,omitempty"`
	TiffCodec   string `json:"tiffCodec,omitempty"`
	Compression *int   `json:"compression,omitempty"`
	Quality     *int   `json:"quality,omitempty"`
}

// Enumerations a render request may use: Blender's own identifiers.
var (
	RenderEngines = []string{"CYCLES", "BLENDER_EEVEE", "BLENDER_EEVEE_NEXT", "BLENDER_WORKBENCH"}
	// OutputFormats are still-image formats only: the farm makes the preview
	// video itself, and a movie cannot be split across workers.
	OutputFormats = []string{"PNG", "JPEG", "JPEG2000", "BMP", "TARGA", "TARGA_RAW", "TIFF",
		"OPEN_EXR", "OPEN_EXR_MULTILAYER", "HDR", "CINEON", "DPX", "IRIS", "WEBP"}
	MovieFormats = []string{"FFMPEG", "AVI_JPEG", "AVI_RAW"}
	ColorModes   = []string{"BW", "RGB", "RGBA"}
	ColorDepths  = []string{"8", "10", "12", "16", "32"}
	ExrCodecs    = []string{"NONE", "PXR24", "ZIP", "PIZ", "RLE", "ZIPS", "B44", "B44A", "DWAA", "DWAB"}
	TiffCodecs   = []string{"NONE", "DEFLATE", "LZW", "PACKBITS"}
	// ColorPresets are the colorManagementPreset values; "aces" needs an
	// ACES view transform, which Blender before 4.x does not ship.
	ColorPresets = []string{"default", "aces"}
)

// Limits on numeric fields of a render request.
const (
	MaxResolution  = 16384
	MaxSampleCount = 1 << 24
	MaxNotesLength = 10_000
	MaxFPS         = 1000
)

// WorkerCaps is what the farm's workers can do; a request for something
// beyond it is refused rather than silently changed.
type WorkerCaps struct {
	// Workers are the farm's registered workers, online or not: a request
	// none of them could ever render is refused, one they can render
	// waits for them.
	Workers         []WorkerOffer
	ACES            bool
	ExpectedWorkers int
	// BlenderVersions are the full versions the live render nodes offer,
	// which a request's blenderVersion must name.
	BlenderVersions []string
}

// ResolveConfig checks a render request field by field against the analysis
// and the workers, and merges it over what the file has. It returns the
// final configuration and the frames to render.
func ResolveConfig(req *RenderConfig, a *Analysis, caps WorkerCaps) (*FinalConfig, []int, error) {
	if req == nil {
		return nil, nil, Invalid(CodeInvalidConfig, "requestedRenderConfig is required; send at least {\"colorManagementPreset\": \"default\"}")
	}
	if a == nil {
		return nil, nil, Invalid(CodeInvalidState, "the job has no analysis; validate it first")
	}

	sceneName := a.ActiveScene
	if req.Scene != nil {
		sceneName = *req.Scene
	}
	scene, ok := a.Scene(sceneName)
	if !ok {
		names := make([]string, 0, len(a.Scenes))
		for _, s := range a.Scenes {
			names = append(names, s.Name)
		}
		if a.ScenesLeftOut > 0 {
			// The scene may be one the analysis could not list: say so,
			// rather than that the file has no such scene.
			which := fmt.Sprintf("no scene %q", sceneName)
			if sceneName == "" {
				which = "the file's active scene"
			}
			return nil, nil, InvalidField("scene", "this job's analysis lists %s: it lists %s, and leaves %d of the file's scenes out (too many, or named as Blender never names one; see its %s warnings); name a listed scene, or make the scene to render the active one in Blender, keep its name under %d bytes, and upload the file again",
				which, quotedNames(names), a.ScenesLeftOut, WarnAnalysisTruncated, MaxAnalysisNameBytes)
		}
		return nil, nil, InvalidField("scene", "the file has no scene %q; its scenes are %s", sceneName, strings.Join(names, ", "))
	}

	if scene.Camera == "" {
		return nil, nil, InvalidField("scene", "scene %q has no camera, so Blender cannot render it; add a camera to the scene and upload the file again", scene.Name)
	}

	fc := &FinalConfig{
		Scene:                scene.Name,
		RenderEngine:         scene.Engine,
		ComputeDeviceType:    "CPU",
		CompositorDevice:     "CPU",
		SampleCount:          scene.Samples,
		Resolution:           []int{scene.ResolutionX, scene.ResolutionY},
		ResolutionPercentage: scene.ResolutionPercentage,
		OutputFormat:         scene.OutputFormat,
		FPS:                  scene.FPS,
	}

	if req.ColorManagementPreset == nil {
		return nil, nil, InvalidField("colorManagementPreset", "is required: \"default\" keeps the file's color management")
	}
	preset := *req.ColorManagementPreset
	if !slices.Contains(ColorPresets, preset) {
		return nil, nil, InvalidField("colorManagementPreset", "must be one of %s, not %q", strings.Join(ColorPresets, ", "), preset)
	}
	if preset == "aces" && !slices.ContainsFunc(a.ViewTransforms, func(v string) bool { return strings.Contains(strings.ToUpper(v), "ACES") }) {
		return nil, nil, InvalidField("colorManagementPreset", "\"aces\" needs an ACES view transform, which this farm's Blender %s does not have; use \"default\"", a.BlenderVersion)
	}
	fc.ColorManagementPreset = preset

	step := max(scene.FrameStep, 1)
	var frames []int
	var err error
	if req.FrameRanges != nil {
		frames, err = ExpandFrames(req.FrameRanges, scene.FrameStart, scene.FrameEnd)
		if err != nil {
			return nil, nil, InvalidField("frameRanges", "%s", err)
		}
	} else {
		frames, err = ExpandFrames([]string{FrameRange{Start: scene.FrameStart, End: scene.FrameEnd, Step: step}.String()}, scene.FrameStart, scene.FrameEnd)
		if err != nil {
			return nil, nil, InvalidField("frameRanges", "the scene's own frames cannot be rendered: %s; give frameRanges", err)
		}
	}
	fc.FrameRanges = CompactRanges(frames)
	fc.FrameCount = len(frames)

	if req.Notes != nil {
		if n := utf8.RuneCountInString(*req.Notes); n > MaxNotesLength {
			return nil, nil, InvalidField("notes", "is %d characters; keep it under %d", n, MaxNotesLength)
		}
		fc.Notes = *req.Notes
	}
	if req.RenderEngine != nil {
		if !slices.Contains(RenderEngines, *req.RenderEngine) {
			return nil, nil, InvalidField("renderEngine", "must be one of %s, not %q", strings.Join(RenderEngines, ", "), *req.RenderEngine)
		}
		fc.RenderEngine = *req.RenderEngine
	}
	if req.ComputeDeviceType != nil {
		switch d := strings.ToUpper(*req.ComputeDeviceType); {
		case d == "CPU" || d == "NONE":
		case slices.Contains(GPUTypes, d):
			fc.ComputeDeviceType = d
			fc.GPUCount = 1
		default:
			return nil, nil, InvalidField("computeDeviceType", "must be CPU, %s, not %q", strings.Join(GPUTypes, ", "), *req.ComputeDeviceType)
		}
	}
	if req.CompositorDevice != nil {
		switch d := strings.ToUpper(*req.CompositorDevice); d {
		case "CPU":
		case "GPU":
			if !AnyGPU(caps.Workers) {
				return nil, nil, InvalidField("compositorDevice", "\"GPU\" needs a GPU and this farm's workers have none; use \"CPU\"")
			}
			fc.CompositorDevice = d
		default:
			return nil, nil, InvalidField("compositorDevice", "must be CPU or GPU, not %q", *req.CompositorDevice)
		}
	}
	if req.GPUCount != nil {
		n := *req.GPUCount
		switch {
		case n < 0 || n > MaxGPUCount:
			return nil, nil, InvalidField("gpuCount", "must be between 1 and %d GPUs, not %d", MaxGPUCount, n)
		case fc.GPUCount == 0 && n > 0:
			return nil, nil, InvalidField("gpuCount", "is %d, but the render runs on the CPU; set computeDeviceType to the GPUs' type (%s), or leave gpuCount out", n, strings.Join(GPUTypes, ", "))
		case fc.GPUCount > 0 && n == 0:
			return nil, nil, InvalidField("gpuCount", "must be at least 1 for a render on %s GPUs", fc.ComputeDeviceType)
		}
		fc.GPUCount = n
	}
	if req.SampleCount != nil {
		if *req.SampleCount < 1 || *req.SampleCount > MaxSampleCount {
			return nil, nil, InvalidField("sampleCount", "must be between 1 and %d, not %d", MaxSampleCount, *req.SampleCount)
		}
		if fc.RenderEngine == "BLENDER_WORKBENCH" {
			return nil, nil, InvalidField("sampleCount", "the Workbench engine has no samples; leave sampleCount out")
		}
		fc.SampleCount = *req.SampleCount
	}

	if err := resolveDenoising(req, a, scene.DenoisingEnabled, fc); err != nil {
		return nil, nil, err
	}

	if req.Resolution != nil {
		if len(req.Resolution) != 2 {
			return nil, nil, InvalidField("resolution", "must be [width, height], got %d numbers", len(req.Resolution))
		}
		for i, v := range req.Resolution {
			if v < 1 || v > MaxResolution {
				return nil, nil, InvalidField("resolution", "%s must be between 1 and %d, not %d", []string{"width", "height"}[i], MaxResolution, v)
			}
		}
		fc.Resolution = []int{req.Resolution[0], req.Resolution[1]}
	}
	if req.ResolutionPercentage != nil {
		if p := *req.ResolutionPercentage; p < 1 || p > 100 {
			return nil, nil, InvalidField("resolutionPercentage", "must be between 1 and 100, not %d", p)
		}
		fc.ResolutionPercentage = *req.ResolutionPercentage
	}
	if req.OutputFormat != nil {
		f := *req.OutputFormat
		if slices.Contains(MovieFormats, f) {
			return nil, nil, InvalidField("outputFormat", "%q is a movie format; the farm renders frames as images (for example PNG) and makes the preview video itself", f)
		}
		if !slices.Contains(OutputFormats, f) {
			return nil, nil, InvalidField("outputFormat", "must be one of %s, not %q", strings.Join(OutputFormats, ", "), f)
		}
		fc.OutputFormat = f
	} else if slices.Contains(MovieFormats, fc.OutputFormat) || fc.OutputFormat == "" {
		// The file writes a movie: render PNG frames instead, as the
		// analysis warned.
		fc.OutputFormat = "PNG"
	}
	if req.FPS != nil {
		if *req.FPS < 1 || *req.FPS > MaxFPS {
			return nil, nil, InvalidField("fps", "must be between 1 and %d, not %d", MaxFPS, *req.FPS)
		}
		fc.FPS = float64(*req.FPS)
	}
	if req.UseTiling != nil {
		fc.UseTiling = req.UseTiling
	}
	if req.TileSize != nil {
		if *req.TileSize < 8 || *req.TileSize > MaxResolution {
			return nil, nil, InvalidField("tileSize", "must be between 8 and %d, not %d", MaxResolution, *req.TileSize)
		}
		fc.TileSize = *req.TileSize
	}
	if err := resolveOutputSettings(req.OutputSettings, fc); err != nil {
		return nil, nil, err
	}
	if err := checkFormatSettings(fc); err != nil {
		return nil, nil, err
	}
	if req.MinimumRAM != nil {
		if *req.MinimumRAM < 0 || *req.MinimumRAM > MaxMinimumRAM {
			return nil, nil, InvalidField("minimumRam", "must be between 0 and %d (GiB of memory a worker must have), not %d", MaxMinimumRAM, *req.MinimumRAM)
		}
		fc.MinimumRAM = *req.MinimumRAM
	}
	if req.RequiredTags != nil {
		// Counted as sent: the request is kept so (the job's
		// requestedConfig), where a tag given 100,000 times is one tag
		// but not a small Job object; and NormalizeTags looks for each
		// tag among those before it, seconds for 100,000 of them.
		if len(req.RequiredTags) > MaxTags {
			return nil, nil, InvalidField("requiredTags", "%d tags; at most %d, each counted as often as it is given", len(req.RequiredTags), MaxTags)
		}
		tags, err := NormalizeTags(req.RequiredTags)
		if err != nil {
			return nil, nil, InvalidField("requiredTags", "%s", err)
		}
		if len(tags) > 0 {
			fc.RequiredTags = tags
		}
	}
	if req.Priority != nil {
		if err := CheckPriority("priority", *req.Priority); err != nil {
			return nil, nil, err
		}
	}

	// The Blender that validated the file renders it, unless the request
	// pins another; a job validated before the farm recorded which one did
	// has the version the inspecting Blender reported.
	fc.BlenderVersion = a.RenderBlenderVersion
	if fc.BlenderVersion == "" {
		fc.BlenderVersion = a.BlenderVersion
	}
	if req.BlenderVersion != nil {
		if fc.BlenderVersion, err = PinBlender(*req.BlenderVersion, a.FileVersion, caps.BlenderVersions); err != nil {
			return nil, nil, err
		}
	}

	fc.OutputNaming = NamingFarm
	if req.OutputNaming != nil {
		if !slices.Contains(OutputNamings, *req.OutputNaming) {
			return nil, nil, InvalidField("outputNaming", "must be %q (frame_0001.png) or %q (as the scene's output path %q names them), not %q",
				NamingFarm, NamingScene, scene.OutputPath, *req.OutputNaming)
		}
		fc.OutputNaming = *req.OutputNaming
	}

	fc.ChunkSize = DefaultChunkSize(len(frames), caps.ExpectedWorkers)
	if req.ChunkSize != nil {
		if *req.ChunkSize < 1 || *req.ChunkSize > MaxChunkSize {
			return nil, nil, InvalidField("chunkSize", "must be between 1 and %d, not %d", MaxChunkSize, *req.ChunkSize)
		}
		fc.ChunkSize = *req.ChunkSize
	}
	scout, err := ResolveScoutFrames(req.ScoutFrames, frames)
	if err != nil {
		return nil, nil, err
	}
	if scout != nil {
		fc.ScoutFrames = CompactRanges(scout)
	}
	if req.SplitFrame != nil {
		split := *req.SplitFrame
		if split.Mode == "" {
			split.Mode = SplitBySamples
		}
		// Divided rather than multiplied, so that a huge parts cannot
		// overflow; parts itself is checked where splits are known
		// (blender.CheckSplit).
		if split.Parts > 1 && len(frames) > MaxSplitPartsPerRender/split.Parts {
			return nil, nil, InvalidField("splitFrame.parts", "splitting each of the %d frames into %d parts makes more than %d parts, each a task of its own, and a render may make at most %d; render fewer frames at a time (at most %d in %d parts), or split them into fewer parts",
				len(frames), split.Parts, MaxSplitPartsPerRender, MaxSplitPartsPerRender, MaxSplitPartsPerRender/split.Parts, split.Parts)
		}
		fc.SplitFrame = &split
	}
	if fc.RenderEngine != "CYCLES" && fc.DenoisingEnabled {
		fc.DenoisingEnabled = false
		fc.DenoiserType = ""
	}
	if fc.GPUCount > 0 && fc.RenderEngine != "CYCLES" {
		return nil, nil, InvalidField("computeDeviceType", "%s renders on the GPUs of Cycles only, and the render engine is %s; use \"CPU\", or renderEngine \"CYCLES\"", fc.ComputeDeviceType, fc.RenderEngine)
	}
	// A render that no worker of the farm could ever take would wait for
	// ever: refused now, naming what none has.
	if err := CheckSomeWorkerMeets(RequirementsOf(fc), caps.Workers); err != nil {
		return nil, nil, err
	}
	return fc, frames, nil
}

// resolveDenoising applies the rule for a Blender without a denoiser: a
// scene that asks for one renders without it (the analysis said so), and
// only an explicit request for denoising is refused.
func resolveDenoising(req *RenderConfig, a *Analysis, sceneWants bool, fc *FinalConfig) error {
	fc.DenoisingEnabled = sceneWants && a.DenoiserAvailable
	if fc.DenoisingEnabled {
		// A scene saved for OptiX denoises with OpenImageDenoise on CPU
		// workers; OpenImageDenoise is the only denoiser they have.
		fc.DenoiserType = "OPENIMAGEDENOISE"
	}
	if req.DenoisingEnabled != nil {
		if *req.DenoisingEnabled && !a.DenoiserAvailable {
			return InvalidField("denoisingEnabled", "this farm's Blender %s was built without OpenImageDenoise; set it to false or leave it out", a.BlenderVersion)
		}
		fc.DenoisingEnabled = *req.DenoisingEnabled
	}
	if req.DenoiserType != nil {
		switch *req.DenoiserType {
		case "OPENIMAGEDENOISE":
			if !a.DenoiserAvailable {
				return InvalidField("denoiserType", "OPENIMAGEDENOISE is not available in this farm's Blender %s; leave denoiserType out", a.BlenderVersion)
			}
		case "OPTIX":
			return InvalidField("denoiserType", "OPTIX needs an NVIDIA GPU and this farm's workers have none")
		default:
			return InvalidField("denoiserType", "must be OPENIMAGEDENOISE or OPTIX, not %q", *req.DenoiserType)
		}
		fc.DenoiserType = *req.DenoiserType
	}
	return nil
}

func resolveOutputSettings(os *OutputSettings, fc *FinalConfig) error {
	if os == nil {
		return nil
	}
	check := func(field string, v *string, allowed []string, dst *string) error {
		if v == nil {
			return nil
		}
		if !slices.Contains(allowed, *v) {
			return InvalidField("outputSettings."+field, "must be one of %s, not %q", strings.Join(allowed, ", "), *v)
		}
		*dst = *v
		return nil
	}
	out := &fc.OutputSettings
	if err := check("colorMode", os.ColorMode, ColorModes, &out.ColorMode); err != nil {
		return err
	}
	if err := check("colorDepth", os.ColorDepth, ColorDepths, &out.ColorDepth); err != nil {
		return err
	}
	if err := check("exrCodec", os.ExrCodec, ExrCodecs, &out.ExrCodec); err != nil {
		return err
	}
	if err := check("tiffCodec", os.TiffCodec, TiffCodecs, &out.TiffCodec); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		v    *int
		dst  **int
	}{{"compression", os.Compression, &out.Compression}, {"quality", os.Quality, &out.Quality}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v > 100 {
			return InvalidField("outputSettings."+f.name, "must be between 0 and 100, not %d", *f.v)
		}
		*f.dst = f.v
	}
	return nil
}

// IsEmpty reports whether a request sets nothing at all, which the contract
// answers with 400.
func (c *RenderConfig) IsEmpty() bool {
	if c == nil {
		return true
	}
	b, err := json.Marshal(c)
	return err == nil && string(b) == "{}"
}

// formatDepths lists the color depths Blender offers for each still format,
// so that a request Blender would refuse at its first frame is refused at
// once instead.
var formatDepths = map[string][]string{
	"PNG": {"8", "16"}, "JPEG": {"8"}, "JPEG2000": {"8", "12", "16"}, "BMP": {"8"},
	"TARGA": {"8"}, "TARGA_RAW": {"8"}, "IRIS": {"8"}, "WEBP": {"8"}, "HDR": {"32"},
	"TIFF": {"8", "16"}, "OPEN_EXR": {"16", "32"}, "OPEN_EXR_MULTILAYER": {"16", "32"},
	"CINEON": {"10"}, "DPX": {"8", "10", "12", "16"},
}

// formatsWithoutAlpha cannot store an alpha channel.
var formatsWithoutAlpha = []string{"JPEG", "BMP", "CINEON", "HDR"}

func checkFormatSettings(fc *FinalConfig) error {
	out := fc.OutputSettings
	if depths, ok := formatDepths[fc.OutputFormat]; ok && out.ColorDepth != "" && !slices.Contains(depths, out.ColorDepth) {
		return InvalidField("outputSettings.colorDepth", "%s supports color depth %s, not %q", fc.OutputFormat, strings.Join(depths, " or "), out.ColorDepth)
	}
	if out.ColorMode == "RGBA" && slices.Contains(formatsWithoutAlpha, fc.OutputFormat) {
		return InvalidField("outputSettings.colorMode", "%s cannot store an alpha channel; use RGB, or a format such as PNG for RGBA", fc.OutputFormat)
	}
	return nil
}
