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

	// Slug is the upload the job was made from.
	Slug string `json:"slug"`
	// Files are the objects finalizing made; the API turns them into URLs.
	Files JobFiles `json:"-"`
}

// JobFiles names the objects that belong to a finished job.
type JobFiles struct {
	PreviewKey    string  `json:"previewKey,omitempty"`
	FramesZipKey  string  `json:"framesZipKey,omitempty"`
	FramesZipSize int64   `json:"framesZipSize,omitempty"`
	VideoKey      string  `json:"videoKey,omitempty"`
	VideoSize     int64   `json:"videoSize,omitempty"`
	VideoFPS      float64 `json:"videoFps,omitempty"`
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
	Warnings []Warning `json:"warnings"`
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
)

// Scene returns the scene with the given name, or the active one for "".
func (a *Analysis) Scene(name string) (Scene, bool) {
	if name == "" {
		name = a.ActiveScene
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
}

// Progress is the answer of GET /jobs/{id}/progress.
type Progress struct {
	JobID           string          `json:"jobId"`
	Status          Status          `json:"status"`
	FramesTotal     int             `json:"framesTotal"`
	FramesCompleted int             `json:"framesCompleted"`
	FramesRendering int             `json:"framesRendering"`
	FramesFailed    int             `json:"framesFailed"`
	PercentComplete float64         `json:"percentComplete"`
	EtaSeconds      *float64        `json:"etaSeconds"`
	Frames          []FrameProgress `json:"frames"`
	// WaitingFor is ours: what the job's work waits for while a part of
	// the farm is out ("the bucket", "the database", "disk space on
	// node-a"); empty, and left out, when it waits for nothing.
	WaitingFor string `json:"waitingFor,omitempty"`
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
}
