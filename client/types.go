package client

import (
	"encoding/json"
	"fmt"
	"time"
)

// Status is where a job stands in its life. A job normally passes through
// created, validating, validated, booting, rendering, finalizing and
// completed; any stage may end in failed, and a job may be canceled while it
// is in progress.
type Status string

// The eleven job statuses of the Renderjuice API. Debugging and suspended are
// part of that API and can appear in answers, although renderfarm never
// moves a job there by itself; a client that handles statuses should expect
// all eleven.
const (
	StatusCreated    Status = "created"    // uploaded and made a job; nothing checked yet
	StatusValidating Status = "validating" // the farm is inspecting the file
	StatusValidated  Status = "validated"  // inspected; ready for a render request
	StatusDebugging  Status = "debugging"  // held for inspection by the operator
	StatusBooting    Status = "booting"    // render accepted; workers are being given frames
	StatusRendering  Status = "rendering"  // frames are being rendered
	StatusFinalizing Status = "finalizing" // frames done; zip and preview video being made
	StatusCompleted  Status = "completed"  // final: output ready for download
	StatusFailed     Status = "failed"     // final: see Job.FailedReason
	StatusCanceled   Status = "canceled"   // final: stopped on request
	StatusSuspended  Status = "suspended"  // paused: see Job.SuspendedReason; Client.Resume goes on
)

// Statuses returns every status a job can have, in the order a job normally
// meets them, for validating user input or building status filters.
func Statuses() []Status {
	return []Status{
		StatusCreated, StatusValidating, StatusValidated, StatusDebugging,
		StatusBooting, StatusRendering, StatusFinalizing, StatusCompleted,
		StatusFailed, StatusCanceled, StatusSuspended,
	}
}

// IsFinal reports whether nothing will happen to a job any more, which is
// when a waiting pipeline should stop polling.
func (s Status) IsFinal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// String returns the status as it appears on the wire.
func (s Status) String() string { return string(s) }

// Job is a render job as the server shows it. The first block of fields is
// the Renderjuice Job object; the rest are renderfarm's additions, which a
// Renderjuice server leaves at their zero values.
type Job struct {
	ID          string    `json:"id"`
	Status      Status    `json:"status"`
	WorkspaceID string    `json:"workspaceId"`
	UserID      string    `json:"userId"` // on renderfarm, the id of the API key that created the job
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
	// RootFolderID is Renderjuice's project folder; renderfarm leaves it nil.
	RootFolderID *string `json:"rootFolderId"`
	// NormalizedSeconds is the render time spent on the job so far.
	NormalizedSeconds float64 `json:"normalizedSeconds"`
	// PreviewURL is a presigned link to a preview image or video, once there is one.
	PreviewURL *string `json:"previewUrl"`
	// FailedReason says why the job failed; nil unless Status is failed.
	FailedReason *FailedReason `json:"failedReason"`
	// RequestedConfig is the render request as it was sent; nil before Render.
	RequestedConfig *RenderConfig `json:"requestedConfig"`
	// FinalConfig is what the workers render: the request merged over what
	// validation found, every value resolved. Nil before Render.
	FinalConfig *FinalConfig `json:"finalConfig"`
	Output      JobOutput    `json:"output"`
	// IsAnalysisSkipped is true when the job was rendered without validation.
	IsAnalysisSkipped bool    `json:"isAnalysisSkipped"`
	AnalysisID        *string `json:"analysisId"`
	// Analysis is what validation found in the file; nil before validation.
	Analysis *Analysis `json:"analysis"`
	// SceneFile describes the uploaded file.
	SceneFile *SceneFile `json:"sceneFile"`
	// Priority is renderfarm's: the job's priority among its workspace's
	// jobs, 0 (lowest) to 100 (highest), 50 by default. A waiting chunk of
	// a job of higher priority starts before one of lower priority; change
	// it with [Client.SetPriority].
	Priority int `json:"priority"`

	// Slug is the upload the job was made from.
	Slug string `json:"slug,omitempty"`
	// SuspendedReason is renderfarm's: why a suspended job waits,
	// [SuspendedOnRequest] or [SuspendedScoutFramesReady]; empty in every
	// other status.
	SuspendedReason string `json:"suspendedReason,omitempty"`
}

// The values of [Job.SuspendedReason].
const (
	// SuspendedOnRequest: the job was suspended by [Client.Suspend].
	SuspendedOnRequest = "REQUESTED"
	// SuspendedScoutFramesReady: the job's scout frames are rendered and
	// wait to be looked at; [Client.Resume] renders the rest.
	SuspendedScoutFramesReady = "SCOUT_FRAMES_READY"
)

// JobOutput says whether the job's files are still kept for the client.
type JobOutput struct {
	IsDeletedForClient bool `json:"isDeletedForClient"`
}

// FailedReason says why a job failed, in words meant to be shown to the
// person who submitted it.
type FailedReason struct {
	// Name is a short title of the failure.
	Name string `json:"name"`
	// Type is the stage that failed: one of the Fail constants.
	Type string `json:"type"`
	// Message says what happened and, where possible, what to change.
	Message string `json:"message"`
}

// The stages a job can fail in, as [FailedReason.Type]. They tell a pipeline
// whether the file (validation), the settings or a worker (render) or the
// packaging of the output (finalize) is to blame.
const (
	FailValidation = "validation"
	FailRender     = "render"
	FailFinalize   = "finalize"
)

// SceneFile describes the uploaded file a job renders, so that a pipeline
// can check the farm got the file it meant to send.
type SceneFile struct {
	FileName  string `json:"fileName"`
	FileType  string `json:"fileType"` // FileTypeBlend or FileTypeZip
	SizeBytes int64  `json:"sizeBytes"`
	SHA256    string `json:"sha256"` // hex
	// BlendPath is the .blend inside a project zip, relative to its root;
	// for a plain .blend it is the file name.
	BlendPath string `json:"blendPath"`
	// Compression of the .blend itself: "none", "gzip" or "zstd".
	Compression string `json:"compression"`
	// Version is the Blender version written in the .blend header, e.g. "3.4".
	Version string `json:"version"`
	// ProjectEntries and ProjectBytes describe a project zip's contents.
	ProjectEntries int   `json:"projectEntries,omitempty"`
	ProjectBytes   int64 `json:"projectBytes,omitempty"`
}

// Analysis is what validation found in the file: Blender's own view of its
// scenes and of the external files they read, and the warnings a person
// should read before rendering. Every scene setting here is what a render
// falls back to for a field the request leaves out.
type Analysis struct {
	// FileVersion is the Blender release the file was saved with, as
	// "major.minor" ("3.4"): a .blend does not record the patch release.
	FileVersion string `json:"fileVersion"`
	// BlenderVersion is the farm's Blender that inspected the file, such
	// as "3.4.1", as it reports itself.
	BlenderVersion string `json:"blenderVersion"`
	// RenderBlenderVersion is renderfarm's: the full version of the
	// farm's Blender that validated the file and renders it unless the
	// render request pins another (see [RenderConfig.BlenderVersion]): of
	// the farm's Blenders, the file's own major.minor, else the oldest
	// newer one.
	RenderBlenderVersion string `json:"renderBlenderVersion,omitempty"`
	// FarmBlenderVersions is renderfarm's: the Blender versions the
	// farm's live render nodes offered at validation, oldest first.
	FarmBlenderVersions []string `json:"farmBlenderVersions,omitempty"`
	// DenoiserAvailable says whether the farm's Blender can denoise; a
	// request for denoising is refused when it cannot.
	DenoiserAvailable bool `json:"denoiserAvailable"`
	// ViewTransforms are the color management view transforms the farm's
	// Blender offers, which decide whether the "aces" preset can be used.
	ViewTransforms []string `json:"viewTransforms"`
	// ActiveScene is the scene rendered when the request names none.
	ActiveScene string  `json:"activeScene"`
	Scenes      []Scene `json:"scenes"`
	// ExternalFiles are the files the scenes read besides the .blend;
	// a missing one renders differently (pink textures, absent objects).
	ExternalFiles []ExternalFile `json:"externalFiles"`
	// ExternalFilesTruncated is set when the file names more external
	// files than the analysis lists.
	ExternalFilesTruncated bool `json:"externalFilesTruncated,omitempty"`
	// Libraries are the .blend files the scenes link data from, directly
	// or through another library (they are among ExternalFiles too); a
	// missing one drops whole objects from the render.
	Libraries []Library `json:"libraries,omitempty"`
	// ScenesLeftOut is renderfarm's: how many of the file's scenes the
	// analysis does not list (too many, or named as Blender never names
	// one); a render cannot pick them. An ANALYSIS_TRUNCATED warning says
	// why.
	ScenesLeftOut int       `json:"scenesLeftOut,omitempty"`
	Warnings      []Warning `json:"warnings"`
}

// Scene is one scene of the file as validation saw it.
type Scene struct {
	Name                 string  `json:"name"`
	FrameStart           int     `json:"frameStart"`
	FrameEnd             int     `json:"frameEnd"`
	FrameStep            int     `json:"frameStep"`
	FPS                  float64 `json:"fps"` // e.g. 29.97
	ResolutionX          int     `json:"resolutionX"`
	ResolutionY          int     `json:"resolutionY"`
	ResolutionPercentage int     `json:"resolutionPercentage"`
	Engine               string  `json:"engine"`  // e.g. "CYCLES", "BLENDER_EEVEE"
	Samples              int     `json:"samples"` // 0 for Workbench
	// Camera is "" when the scene has no camera, which cannot be rendered.
	Camera       string `json:"camera"`
	OutputFormat string `json:"outputFormat"` // e.g. "PNG", "OPEN_EXR", "FFMPEG"
	ColorMode    string `json:"colorMode"`
	ColorDepth   string `json:"colorDepth"`
	// DenoisingEnabled says whether the file asks Cycles to denoise.
	DenoisingEnabled bool `json:"denoisingEnabled"`
	// Denoiser is Cycles' denoiser ("OPENIMAGEDENOISE", "OPTIX"), "" for
	// other engines.
	Denoiser       string   `json:"denoiser"`
	UseCompositing bool     `json:"useCompositing"`
	ViewLayers     []string `json:"viewLayers"`
	ViewTransform  string   `json:"viewTransform"`
	// IsMovieOutput is set when the file writes a movie; the farm renders
	// still frames instead and makes the preview video itself.
	IsMovieOutput bool `json:"isMovieOutput"`
	// OutputPath is the scene's output path template as saved
	// ("//render/shot010_####"); [NamingScene] names frames after it.
	OutputPath string `json:"outputPath"`
	// UseFileExtension says whether Blender adds extensions to the names
	// it makes.
	UseFileExtension bool `json:"useFileExtension"`
	// Multiview is set for a scene that renders several views (stereo 3D);
	// its frames then come as one file per view, or one of both.
	Multiview *Multiview `json:"multiview,omitempty"`
	// FileOutputNodes are the compositor's File Output nodes that write
	// files (not muted, fed by a link): the farm stores their images, and
	// [Downloads.CompositeNodeOutputs] lists them.
	FileOutputNodes []FileOutputNode `json:"fileOutputNodes,omitempty"`
	// RenderPasses are the passes each view layer renders, as an
	// OPEN_EXR_MULTILAYER frame names its layers.
	RenderPasses []ViewLayerPasses `json:"renderPasses,omitempty"`
}

// Multiview is how a scene renders several views of each frame.
type Multiview struct {
	// Mode is "STEREO_3D" or "MULTIVIEW" (views of cameras of their own).
	Mode string `json:"mode"`
	// ImageViews is "INDIVIDUAL" (an image per view, frame_0001_L.png),
	// "STEREO_3D" (one image of both) or "MULTIVIEW" (one OpenEXR of all).
	ImageViews string `json:"imageViews"`
	Views      []View `json:"views"`
}

// View is one view of a multiview scene.
type View struct {
	Name   string `json:"name"`   // "left" and "right" for stereo 3D
	Suffix string `json:"suffix"` // added to its images' names, e.g. "_L"
}

// FileOutputNode is a compositor File Output node, which writes passes
// (depth, normals, cryptomatte, AOVs) as image sequences of their own.
type FileOutputNode struct {
	Name       string `json:"name"`
	Format     string `json:"format"` // e.g. "OPEN_EXR", "PNG", "OPEN_EXR_MULTILAYER"
	Codec      string `json:"codec"`  // JPEG2000's codec; "" for other formats
	ImageViews string `json:"imageViews"`
	// BasePath is as saved; on the farm the node writes elsewhere.
	BasePath string `json:"basePath"`
	// Slots are the node's fed inputs, in order.
	Slots []FileOutputSlot `json:"slots"`
}

// FileOutputSlot is one input of a File Output node.
type FileOutputSlot struct {
	// Path is the slot's path template below the base path ("depth_####"),
	// or the layer's name in a multilayer node.
	Path       string `json:"path"`
	Format     string `json:"format"`
	Codec      string `json:"codec"`
	ImageViews string `json:"imageViews"`
}

// ViewLayerPasses lists the passes of one view layer.
type ViewLayerPasses struct {
	ViewLayer string   `json:"viewLayer"`
	Passes    []string `json:"passes"` // "Combined", "Depth", "AO", …
}

// ExternalFile is a file the .blend refers to, listed so that a pipeline can
// tell before rendering whether the upload carried everything.
type ExternalFile struct {
	// Type is image, sound, movieclip, movie, library, font, volume or cache.
	Type string `json:"type"`
	Name string `json:"name"`
	// Path is as stored in the file; "//" means the .blend's folder.
	Path string `json:"path"`
	// Missing is set when the file is neither packed nor in the upload.
	Missing bool `json:"missing"`
	Packed  bool `json:"packed"`
}

// Library is a .blend file whose data the file links, such as a character
// or a prop kept apart from the shot.
type Library struct {
	Name string `json:"name"`
	// Path is relative ("//") to the file validated, also for a library
	// linked through another one.
	Path string `json:"path"`
	// Parent is the name of the library that links this one; "" when the
	// file links it itself.
	Parent string `json:"parent,omitempty"`
	// Missing is set when the library is not in the upload.
	Missing bool `json:"missing"`
}

// Warning is something validation found that does not stop a render but may
// make it come out differently than the artist expects, such as a missing
// texture.
type Warning struct {
	Code    string `json:"code"` // one of the Warn constants
	Message string `json:"message"`
	// Path is the external file the warning is about, if any.
	Path string `json:"path,omitempty"`
}

// Warning codes in an analysis, for pipelines that want to stop on some of
// them rather than render anyway.
const (
	WarnMissingFile         = "MISSING_FILE"
	WarnDenoiserUnavailable = "DENOISER_UNAVAILABLE"
	WarnNoCamera            = "NO_CAMERA"
	WarnMovieOutput         = "MOVIE_OUTPUT"
	WarnNewerFile           = "SAVED_WITH_NEWER_BLENDER"
	// WarnAnalysisTruncated: the analysis lists less than the file holds
	// (a list past its bound, a name cut); the file renders all the same.
	WarnAnalysisTruncated = "ANALYSIS_TRUNCATED"
)

// RenderConfig is a render request (requestedRenderConfig on the wire).
// Every field left nil falls back to what validation found in the file, so
// a request says only what it wants changed. ColorManagementPreset is the
// one field the server requires: "default" keeps the file's own color
// management. Enumerated values are Blender's own identifiers.
type RenderConfig struct {
	// ColorManagementPreset is "default" or "aces". Required.
	ColorManagementPreset *string `json:"colorManagementPreset,omitempty"`
	// FrameRanges are strings such as "1-250", "7" or "1-250x5" (every
	// fifth frame); nil renders the scene's own range.
	FrameRanges []string `json:"frameRanges,omitempty"`
	Notes       *string  `json:"notes,omitempty"`
	// RenderEngine is e.g. "CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH".
	RenderEngine      *string `json:"renderEngine,omitempty"`
	CompositorDevice  *string `json:"compositorDevice,omitempty"`  // "CPU" or "GPU"
	ComputeDeviceType *string `json:"computeDeviceType,omitempty"` // "CPU", "CUDA", "OPTIX", …
	GPUCount          *int    `json:"gpuCount,omitempty"`
	SampleCount       *int    `json:"sampleCount,omitempty"`
	DenoisingEnabled  *bool   `json:"denoisingEnabled,omitempty"`
	DenoiserType      *string `json:"denoiserType,omitempty"` // "OPTIX", "OPENIMAGEDENOISE"
	// Resolution is [width, height] in pixels.
	Resolution           []int `json:"resolution,omitempty"`
	ResolutionPercentage *int  `json:"resolutionPercentage,omitempty"`
	// OutputFormat is a still-image format such as "PNG" or "OPEN_EXR":
	// frames are rendered apart, so movie formats are refused.
	OutputFormat   *string         `json:"outputFormat,omitempty"`
	FPS            *int            `json:"fps,omitempty"`
	UseTiling      *bool           `json:"useTiling,omitempty"`
	TileSize       *int            `json:"tileSize,omitempty"`
	OutputSettings *OutputSettings `json:"outputSettings,omitempty"`
	// MinimumRAM asks for workers with at least this much memory (a
	// Renderjuice field); renderfarm records it in FinalConfig.
	MinimumRAM *int `json:"minimumRam,omitempty"`

	// Priority is renderfarm's: the job's priority among its workspace's
	// jobs, 0 to 100 (nil: 50).
	Priority *int `json:"priority,omitempty"`
	// RequiredTags is renderfarm's: tags every worker that renders the job
	// must have (the workers' --tags). Tags no worker has are refused.
	RequiredTags []string `json:"requiredTags,omitempty"`
	// ChunkSize is renderfarm's: how many frames one Blender process
	// renders (1 to 1000). Larger chunks pay Blender's start-up once for
	// more frames; smaller ones spread a short job over more workers. Nil
	// lets the server spread the frames evenly over its workers.
	ChunkSize *int `json:"chunkSize,omitempty"`
	// Scene is renderfarm's: which scene of the file to render; nil renders
	// the active one.
	Scene *string `json:"scene,omitempty"`
	// BlenderVersion is renderfarm's: the farm's Blender to render with,
	// "4.3" (its newest patch) or "4.3.2"; nil renders with the one that
	// validated the file. It must be one [Client.BlenderVersions] lists,
	// and not older than the file.
	BlenderVersion *string `json:"blenderVersion,omitempty"`
	// OutputNaming is renderfarm's: how frames are named for download,
	// [NamingFarm] (the default: frame_0001.png) or [NamingScene] (as the
	// scene's output path names them: render/shot010_0001.png).
	OutputNaming *string `json:"outputNaming,omitempty"`
	// ScoutFrames is renderfarm's: frames rendered before the rest, after
	// which the job is suspended with [SuspendedScoutFramesReady] until
	// [Client.Resume]; nil renders every frame at once.
	ScoutFrames *ScoutFrames `json:"scoutFrames,omitempty"`
	// SplitFrame is renderfarm's: every frame split into parts that
	// different workers render, then merged (Cycles only); nil renders
	// each frame whole.
	SplitFrame *SplitFrame `json:"splitFrame,omitempty"`
}

// SplitFrame is [RenderConfig.SplitFrame]: Parts parts (2 to 64) per
// frame, by Mode: [SplitSamples] (the default when empty), each part the
// whole image with a share of the samples, or [SplitTiles], each part a
// region.
type SplitFrame struct {
	Mode  string `json:"mode,omitempty"`
	Parts int    `json:"parts"`
}

// Split modes of [SplitFrame].
const (
	SplitSamples = "samples"
	SplitTiles   = "tiles"
)

// ScoutFrames are [RenderConfig.ScoutFrames]: [ScoutAuto], or frame
// ranges of the job's frames.
type ScoutFrames struct {
	// Auto picks the first, middle and last frame.
	Auto bool
	// Ranges are frame ranges such as "1" or "50-52", when Auto is false.
	Ranges []string
}

// ScoutAuto asks for the first, middle and last frame as scout frames.
var ScoutAuto = &ScoutFrames{Auto: true}

// MarshalJSON writes "auto" or the list of ranges.
func (s ScoutFrames) MarshalJSON() ([]byte, error) {
	if s.Auto {
		return json.Marshal("auto")
	}
	return json.Marshal(s.Ranges)
}

// UnmarshalJSON reads "auto" or a list of ranges.
func (s *ScoutFrames) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		if text != "auto" {
			return fmt.Errorf("scoutFrames: %q is neither \"auto\" nor a list of frame ranges", text)
		}
		*s = ScoutFrames{Auto: true}
		return nil
	}
	*s = ScoutFrames{}
	return json.Unmarshal(b, &s.Ranges)
}

// The values of [RenderConfig.OutputNaming].
const (
	NamingFarm  = "farm"
	NamingScene = "scene"
)

// OutputSettings are the image format details of a render request; nil
// fields keep what the file has.
type OutputSettings struct {
	ColorMode   *string `json:"colorMode,omitempty"`  // "BW", "RGB", "RGBA"
	ColorDepth  *string `json:"colorDepth,omitempty"` // "8", "16", "32", …
	ExrCodec    *string `json:"exrCodec,omitempty"`   // "ZIP", "PIZ", "DWAA", …
	TiffCodec   *string `json:"tiffCodec,omitempty"`  // "DEFLATE", "LZW", …
	Compression *int    `json:"compression,omitempty"`
	Quality     *int    `json:"quality,omitempty"`
}

// Int returns a pointer to v, for filling optional fields of [RenderConfig]
// in a struct literal.
func Int(v int) *int { return &v }

// String returns a pointer to v, for filling optional fields of
// [RenderConfig] in a struct literal.
func String(v string) *string { return &v }

// Bool returns a pointer to v, for filling optional fields of
// [RenderConfig] in a struct literal.
func Bool(v bool) *bool { return &v }

// FinalConfig is what the workers actually render: the request merged over
// the analysis, with every value resolved. Reading it tells a pipeline what
// it got without repeating the server's fallback rules.
type FinalConfig struct {
	Scene                 string              `json:"scene"`
	FrameRanges           []string            `json:"frameRanges"` // compacted, e.g. ["1-24"]
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
	// GPUCount is renderfarm's: how many GPUs of ComputeDeviceType each
	// chunk renders with; 0 on the CPU.
	GPUCount int `json:"gpuCount,omitempty"`
	// RequiredTags is renderfarm's: the tags a worker must have.
	RequiredTags []string `json:"requiredTags,omitempty"`
	// BlenderVersion is renderfarm's: the full version of the farm's
	// Blender that renders every chunk, such as "4.3.2".
	BlenderVersion string `json:"blenderVersion"`
	OutputNaming   string `json:"outputNaming,omitempty"`
	// ScoutFrames is renderfarm's: the scout frames, rendered first, as
	// compact ranges; empty when none were asked for.
	ScoutFrames []string `json:"scoutFrames,omitempty"`
	// SplitFrame is renderfarm's: how every frame is split, its mode
	// resolved; nil when frames are rendered whole.
	SplitFrame *SplitFrame `json:"splitFrame,omitempty"`
}

// FinalOutputSettings are the resolved image format details; empty strings
// and nil numbers mean the file's own setting is kept.
type FinalOutputSettings struct {
	ColorMode   string `json:"colorMode,omitempty"`
	ColorDepth  string `json:"colorDepth,omitempty"`
	ExrCodec    string `json:"exrCodec,omitempty"`
	TiffCodec   string `json:"tiffCodec,omitempty"`
	Compression *int   `json:"compression,omitempty"`
	Quality     *int   `json:"quality,omitempty"`
}

// Frame statuses in [FrameProgress.Status].
const (
	FrameQueued    = "queued"
	FrameRendering = "rendering"
	FrameCompleted = "completed"
	FrameFailed    = "failed"
	FrameCanceled  = "canceled"
)

// Progress is a job's render counters at one moment, for progress bars and
// for spotting frames that keep failing.
type Progress struct {
	JobID           string `json:"jobId"`
	Status          Status `json:"status"`
	FramesTotal     int    `json:"framesTotal"`
	FramesCompleted int    `json:"framesCompleted"`
	FramesRendering int    `json:"framesRendering"`
	FramesFailed    int    `json:"framesFailed"`
	// PercentComplete goes from 0 to 100.
	PercentComplete float64 `json:"percentComplete"`
	// EtaSeconds is the server's estimate of the time left; nil until it
	// has seen enough frames to guess.
	EtaSeconds *float64 `json:"etaSeconds"`
	// RenderSeconds is renderfarm's: Blender's seconds on the completed
	// frames, summed, whichever of them Frames lists.
	RenderSeconds float64 `json:"renderSeconds,omitempty"`
	// Frames is each frame's state, in frame order; empty in the answers
	// of [Client.ProgressCounts] and [Client.RunningProgressCounts], only
	// those asked for in [Client.ProgressOfFrames].
	Frames []FrameProgress `json:"frames"`
	// WaitingFor is renderfarm's: what the job's work waits for, empty
	// when it waits for nothing: a part of the farm that is out ("the
	// bucket", "the database", "disk space on NODE"), or a render node
	// with the job's Blender. The work resumes by itself.
	WaitingFor string `json:"waitingFor,omitempty"`
	// SuspendedReason is renderfarm's: the job's, while it is suspended.
	SuspendedReason string `json:"suspendedReason,omitempty"`
	// BlockedWorkers is renderfarm's: the render nodes, by name, that
	// take no more of the job's chunks because two of them failed there.
	BlockedWorkers []string `json:"blockedWorkers,omitempty"`
}

// FrameProgress is one frame's line in a [Progress].
type FrameProgress struct {
	Frame         int     `json:"frame"`
	Status        string  `json:"status"` // one of the Frame constants
	Worker        string  `json:"worker"` // the render node holding the frame, if any
	RenderSeconds float64 `json:"renderSeconds"`
	// Attempts counts tries; more than one means a worker failed or was
	// lost while rendering the frame.
	Attempts int `json:"attempts"`
	// Parts is renderfarm's: a split frame's parts stored so far, of how
	// many; nil for a frame rendered whole. The frame completes when they
	// are merged.
	Parts *PartsProgress `json:"parts,omitempty"`
}

// PartsProgress counts a split frame's parts: Completed of Total stored.
type PartsProgress struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
}

// Downloads lists a job's output files. Before the output is ready it has
// the same shape with empty lists and no URLs, so a caller never needs to
// check for nil before ranging. Every URL is presigned: it works without
// the API key, until it expires (an hour by default on renderfarm), so
// fetch it soon or ask for Downloads again.
type Downloads struct {
	// Frames is the legacy list of frame URLs; prefer FrameOutputs.
	Frames []string `json:"frames"`
	// CompositeNodes is the legacy list of compositor output URLs; prefer
	// CompositeNodeOutputs.
	CompositeNodes       []string     `json:"compositeNodes"`
	Transforms           Transforms   `json:"transforms"`
	FrameOutputs         []FileOutput `json:"frameOutputs"` // in frame order
	CompositeNodeOutputs []FileOutput `json:"compositeNodeOutputs"`
	// Pagination says which page of the job's files this is, when one was
	// asked for ([Client.DownloadsPage]).
	Pagination *Pagination `json:"pagination,omitempty"`
}

// Transforms are the files the farm makes from the frames after rendering.
type Transforms struct {
	FramesZip                *string      `json:"framesZip"`
	CompositeNodesZip        *string      `json:"compositeNodesZip"`
	Video                    *VideoOutput `json:"video"` // the preview video, if one was made
	FramesZipOutputs         *FileOutput  `json:"framesZipOutputs"`
	CompositeNodesZipOutputs *FileOutput  `json:"compositeNodesZipOutputs"`
}

// FileOutput is one downloadable file.
type FileOutput struct {
	URL string `json:"url"`
	// FileName is unique within a job on renderfarm, letter case aside
	// too (a job an older farm rendered may repeat one). It comes from the
	// server: pass it through filepath.Base before using it as a local
	// path (see [LocalPath] for RelativePath).
	FileName string `json:"fileName"`
	// View is the view the file shows in a multiview render ("left",
	// "right"), "stereo" for both in one image; nil for a scene of one view.
	View   *string `json:"view"`
	Legacy bool    `json:"legacy"`
	// RelativePath is where the file goes in the job's zip; for a File
	// Output node's image, below the node's folder ("Depth_Out/depth_0001.exr").
	RelativePath string `json:"relativePath"`
	// CompositeNodeName is the File Output node that wrote the file.
	CompositeNodeName *string `json:"compositeNodeName"`
	// Frame is renderfarm's: the frame number the file shows.
	Frame *int `json:"frame,omitempty"`
	// SizeBytes is renderfarm's, so that a download can be checked; zero
	// when the server does not say.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}

// VideoOutput is the preview video made from the frames.
type VideoOutput struct {
	URL       string  `json:"url"`
	FileName  string  `json:"fileName"`
	Codec     string  `json:"codec"`
	FPS       float64 `json:"fps"`
	SizeBytes int64   `json:"sizeBytes"`
}

// File types an upload may declare; they must match the file's extension.
const (
	FileTypeBlend = "blend"
	FileTypeZip   = "zip"
)

// UploadTicket is the answer of [Client.CreateUpload]: where to PUT the
// file, and the slug that names the upload when the job is created.
type UploadTicket struct {
	// UploadURL is presigned: it takes one plain PUT of the whole file,
	// without the API key, until ExpiresAt.
	UploadURL string    `json:"uploadUrl"`
	Slug      string    `json:"slug"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// ListOptions selects a page of jobs. Zero values leave the choice to the
// server: page 1, its default page size, every status.
type ListOptions struct {
	Page     int    // 1-based
	PageSize int    // renderfarm allows up to 100
	Status   Status // only jobs with this status; "" for all
}

// JobList is one page of jobs.
type JobList struct {
	Jobs       []Job      `json:"jobs"`
	Pagination Pagination `json:"pagination"`
}

// Pagination says where a page sits in the whole list, so that a caller
// knows when to stop asking for the next one.
type Pagination struct {
	Page       int `json:"page"`
	PageSize   int `json:"pageSize"`
	Total      int `json:"total"`
	TotalPages int `json:"totalPages"`
}

// BlenderVersions are the Blender versions the farm's live render nodes
// run, oldest first: what [RenderConfig.BlenderVersion] may pin.
type BlenderVersions struct {
	Versions []BlenderVersion `json:"versions"`
}

// BlenderVersion is one Blender version the farm offers.
type BlenderVersion struct {
	// Version is a full version, such as "4.3.2".
	Version string `json:"version"`
	// Workers is how many live render nodes run it.
	Workers int `json:"workers"`
}
