package farm

import "time"

// Job is a render job as the API shows it. Field names and shapes follow the
// Renderjuice Job object; the fields it leaves undocumented (analysis,
// sceneFile, requestedConfig, finalConfig) are ours to define.
type Job struct {
	ID                string        `json:"id"`
	Status            Status        `json:"status"`
	WorkspaceID       string        `json:"workspaceId"`
	UserID            string        `json:"userId"` // the id of the API key that created the job
	CreatedAt         time.Time     `json:"createdAt"`
	UpdatedAt         time.Time     `json:"updatedAt"`
	RootFolderID      *string       `json:"rootFolderId"`
	NormalizedSeconds float64       `json:"normalizedSeconds"`
	PreviewURL        *string       `json:"previewUrl"`
	FailedReason      *FailedReason `json:"failedReason"`
	RequestedConfig   *RenderConfig `json:"requestedConfig"`
	FinalConfig       *FinalConfig  `json:"finalConfig"`
	Output            JobOutput     `json:"output"`
	IsAnalysisSkipped bool          `json:"isAnalysisSkipped"`
	AnalysisID        *string       `json:"analysisId"`
	Analysis          *Analysis     `json:"analysis"`
	SceneFile         *SceneFile    `json:"sceneFile"`
	// Priority is ours: the job's priority among its workspace's jobs,
	// MinPriority to MaxPriority. A waiting chunk of a job of higher
	// priority starts before one of lower priority; it can be changed at
	// any time (PATCH /jobs/{id}).
	Priority int `json:"priority"`

	// Slug is the upload the job was made from.
	Slug string `json:"slug"`
	// SuspendedReason is ours: why a suspended job waits
	// (SuspendedOnRequest, SuspendedScoutFramesReady); empty, and left
	// out, in every other status.
	SuspendedReason string `json:"suspendedReason,omitempty"`
	// Files are the objects finalizing made; the API turns them into URLs.
	Files JobFiles `json:"-"`
}

// JobFiles names the objects that belong to a finished job.
type JobFiles struct {
	PreviewKey    string `json:"previewKey,omitempty"`
	FramesZipKey  string `json:"framesZipKey,omitempty"`
	FramesZipSize int64  `json:"framesZipSize,omitempty"`
	// CompositeNodesZipKey is the zip of the File Output nodes' images,
	// made when the frames made any.
	CompositeNodesZipKey  string  `json:"compositeNodesZipKey,omitempty"`
	CompositeNodesZipSize int64   `json:"compositeNodesZipSize,omitempty"`
	VideoKey              string  `json:"videoKey,omitempty"`
	VideoSize             int64   `json:"videoSize,omitempty"`
	VideoFPS              float64 `json:"videoFps,omitempty"`
}

// JobOutput says whether the job's files are still kept for the client.
type JobOutput struct {
	IsDeletedForClient bool `json:"isDeletedForClient"`
}

// FailedReason says why a job failed: Name is a short title, Type the stage
// (validation, render, finalize), Message what happened and what to do.
type FailedReason struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Message string `json:"message"`
}

// The stages a job can fail in, as FailedReason.Type.
const (
	FailValidation = "validation"
	FailRender     = "render"
	FailFinalize   = "finalize"
)

// SceneFile describes the uploaded file the job renders.
type SceneFile struct {
	FileName  string `json:"fileName"`
	FileType  string `json:"fileType"` // blend or zip
	SizeBytes int64  `json:"sizeBytes"`
	SHA256    string `json:"sha256"`
	// BlendPath is the .blend inside a project zip, relative to its root;
	// for a plain .blend it is the file name.
	BlendPath string `json:"blendPath"`
	// Compression of the .blend itself: none, gzip or zstd.
	Compression string `json:"compression"`
	// Version is the Blender version written in the .blend header, e.g. "3.4".
	Version string `json:"version"`
	// ProjectEntries and ProjectBytes describe a project zip's contents.
	ProjectEntries int   `json:"projectEntries,omitempty"`
	ProjectBytes   int64 `json:"projectBytes,omitempty"`
}

// Analysis is what validation found in the file: Blender's own view of it,
// plus the warnings a person should read before rendering.
type Analysis struct {
	Inspection
	// RenderBlenderVersion is the farm's Blender that validated the file
	// and that renders it unless the render request pins another, such as
	// "4.3.2": of the farm's versions, the one that opens the file (see
	// ChooseBlender). Inspection.BlenderVersion is the same Blender as it
	// reported itself.
	RenderBlenderVersion string `json:"renderBlenderVersion,omitempty"`
	// FarmBlenderVersions are the versions the farm's live render nodes
	// offered at validation, oldest first.
	FarmBlenderVersions []string `json:"farmBlenderVersions,omitempty"`
	// ScenesLeftOut counts the file's scenes this analysis does not list
	// (see MaxAnalysisScenes): past its bounds, or named as Blender never
	// names one. A render cannot pick them; an ANALYSIS_TRUNCATED warning
	// says why. Left out when every scene is listed.
	ScenesLeftOut int       `json:"scenesLeftOut,omitempty"`
	Warnings      []Warning `json:"warnings"`
}

// Warning is something validation found that does not stop a render but
// may make it come out differently than the artist expects.
type Warning struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Path is the external file the warning is about, if any.
	Path string `json:"path,omitempty"`
}

// Warning codes in an analysis.
const (
	WarnMissingFile         = "MISSING_FILE"
	WarnDenoiserUnavailable = "DENOISER_UNAVAILABLE"
	WarnNoCamera            = "NO_CAMERA"
	WarnMovieOutput         = "MOVIE_OUTPUT"
	WarnNewerFile           = "SAVED_WITH_NEWER_BLENDER"
	// WarnAnalysisTruncated says the analysis lists less than the file
	// holds: a list past its bound, a name cut (see MaxAnalysisBytes).
	WarnAnalysisTruncated = "ANALYSIS_TRUNCATED"
)

// Scene returns the scene with the given name, or the active one for "".
func (a *Analysis) Scene(name string) (Scene, bool) {
	if name == "" {
		name = a.ActiveScene
	}
	if name == "" {
		// The active scene was left out (see MaxAnalysisScenes).
		return Scene{}, false
	}
	for _, s := range a.Scenes {
		if s.Name == name {
			return s, true
		}
	}
	return Scene{}, false
}

// FrameProgress is one frame's line in a progress report.
type FrameProgress struct {
	Frame         int         `json:"frame"`
	Status        FrameStatus `json:"status"`
	Worker        string      `json:"worker"`
	RenderSeconds float64     `json:"renderSeconds"`
	Attempts      int         `json:"attempts"`
	// Parts is ours: a split frame's parts stored so far, of how many;
	// nil for a frame rendered whole.
	Parts *PartsProgress `json:"parts,omitempty"`
}

// PartsProgress counts a split frame's parts: Completed of Total stored.
// The frame itself completes when they are merged.
type PartsProgress struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
}

// Progress is the answer of GET /jobs/{id}/progress.
type Progress struct {
	JobID           string   `json:"jobId"`
	Status          Status   `json:"status"`
	FramesTotal     int      `json:"framesTotal"`
	FramesCompleted int      `json:"framesCompleted"`
	FramesRendering int      `json:"framesRendering"`
	FramesFailed    int      `json:"framesFailed"`
	PercentComplete float64  `json:"percentComplete"`
	EtaSeconds      *float64 `json:"etaSeconds"`
	// RenderSeconds is ours: Blender's seconds on the completed frames,
	// summed, whichever of them the report lists.
	RenderSeconds float64 `json:"renderSeconds,omitempty"`
	// Frames lists every frame, or those the query asked for; left out
	// when asked without them (ProgressQuery.WithoutFrames), nil then.
	Frames []FrameProgress `json:"frames,omitzero"`
	// WaitingFor is ours: what the job's work waits for, empty (and left
	// out) when it waits for nothing: a part of the farm that is out ("the
	// bucket", "the database", "disk space on node-a"), a render node
	// with the job's Blender while none runs it, or one that may take the
	// job's chunks while every live one is blocked or sick.
	WaitingFor string `json:"waitingFor,omitempty"`
	// SuspendedReason is ours: the job's, while it is suspended.
	SuspendedReason string `json:"suspendedReason,omitempty"`
	// BlockedWorkers is ours: the render nodes, by name, that take no
	// more of the job's chunks because two of them failed there; left out
	// when there are none.
	BlockedWorkers []string `json:"blockedWorkers,omitempty"`
}

// FileOutput is one downloadable file in a downloads answer.
type FileOutput struct {
	URL               string  `json:"url"`
	FileName          string  `json:"fileName"`
	View              *string `json:"view"`
	Legacy            bool    `json:"legacy"`
	RelativePath      string  `json:"relativePath"`
	CompositeNodeName *string `json:"compositeNodeName"`
	// Frame is ours: the frame number the file shows, for frame outputs.
	Frame *int `json:"frame,omitempty"`
	// SizeBytes is ours: so a client can check what it fetched.
	SizeBytes int64 `json:"sizeBytes,omitempty"`
}

// VideoOutput is the preview video in a downloads answer.
type VideoOutput struct {
	URL       string  `json:"url"`
	FileName  string  `json:"fileName"`
	Codec     string  `json:"codec"`
	FPS       float64 `json:"fps"`
	SizeBytes int64   `json:"sizeBytes"`
}

// Transforms are the files made from the frames after rendering.
type Transforms struct {
	FramesZip                *string      `json:"framesZip"`
	CompositeNodesZip        *string      `json:"compositeNodesZip"`
	Video                    *VideoOutput `json:"video"`
	FramesZipOutputs         *FileOutput  `json:"framesZipOutputs"`
	CompositeNodesZipOutputs *FileOutput  `json:"compositeNodesZipOutputs"`
}

// Downloads is the answer of GET /jobs/{id}/downloads. Before output is
// ready it has the same shape with empty arrays and no URLs.
type Downloads struct {
	Frames               []string     `json:"frames"`
	CompositeNodes       []string     `json:"compositeNodes"`
	Transforms           Transforms   `json:"transforms"`
	FrameOutputs         []FileOutput `json:"frameOutputs"`
	CompositeNodeOutputs []FileOutput `json:"compositeNodeOutputs"`
	// Pagination (ours) says which of the job's files the answer lists,
	// when the request asked for a page of them (DownloadsQuery).
	Pagination *Pagination `json:"pagination,omitempty"`
}

// ProgressQuery says what a progress report lists (ours). The zero query
// lists every frame, as Renderjuice's clients expect; WithoutFrames
// leaves the frames out and answers their counts only: what a list of
// jobs with a meter each needs, a few hundred bytes a job rather than
// some 77 bytes a frame (7.7 MB for a job of 100,000 frames), read by
// the database as counts.
type ProgressQuery struct {
	WithoutFrames bool
	// Frames, when set, lists only the job's frames numbered from its
	// Start to its End, both included, and still counts them all: a page
	// of a large job's frames, as a grid of them shows one (ours). Its
	// Step is 1.
	Frames *FrameRange
}

// DownloadsQuery asks for one page of a job's downloads (ours): the files
// its frames made, in frame order and each frame's own order, frames and
// compositor outputs together, PageSize a page. The zero query asks for
// all of them, which a job of at most MaxDownloadFiles files answers.
type DownloadsQuery struct {
	Page     int // 1-based; 0: every file
	PageSize int
	// Frames, when set, lists only the files of the frames numbered from
	// its Start to its End, both included (the pages, if asked for, are
	// of those): the files of a page of a large job's frames (ours). Its
	// Step is 1.
	Frames *FrameRange
}

// Paging limits of a job's downloads. Each file listed is a URL signed
// for it (about 50 µs and 1.2 KB of JSON each on S3, twice listed): a
// job's 100,000 frames are a 120 MB answer of several seconds. A job may
// make more files than that (1,024 a frame), so past MaxDownloadFiles the
// answer comes a page at a time, or not at all.
const (
	MaxDownloadFiles         = 100_000
	DefaultDownloadsPageSize = 1_000
)

// OutputKind says what a file a frame made is.
type OutputKind string

// The kinds of files a frame makes.
const (
	// OutputFrame is the frame's image, or one view's image of it.
	OutputFrame OutputKind = "frame"
	// OutputCompositeNode is an image a compositor File Output node wrote.
	OutputCompositeNode OutputKind = "compositeNode"
	// OutputPreview is a JPEG made for the preview video only (of an
	// OpenEXR frame, through the scene's view transform); never listed
	// for download.
	OutputPreview OutputKind = "preview"
)

// FrameOutput is one file a frame made, as the farm stores it and lists it
// for download.
type FrameOutput struct {
	Kind OutputKind
	// View is the view the file shows: a view's name, "stereo" for both
	// views of a stereo pair in one image, nil for a scene of one view (or
	// every view in one OpenEXR).
	View *string
	// CompositeNodeName is the File Output node's name, for its images.
	CompositeNodeName string
	// FileName is unique within the job, letter case aside too
	// (FrameNamer, NodeNamer; a job an older farm rendered may repeat
	// one). RelativePath is where the file goes in a zip or a download
	// folder (for a node's images, below the node's folder, and then the
	// same as FileName).
	FileName     string
	RelativePath string
	ObjectKey    string
	SizeBytes    int64
}
