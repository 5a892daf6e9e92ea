package farm

// Inspection is what validation learns about a .blend file on a worker. It is
// shown to users as the job's analysis, and the farm decides from it which
// settings the workers can honour. Its JSON names are the API's and the
// stored analysis's: package blender reads its own script's output and
// fills this in, so renaming a key in that script changes neither.
type Inspection struct {
	// FileVersion is the Blender release the file was saved with, as
	// "major.minor" ("3.4"): a .blend does not record the patch release.
	FileVersion string `json:"fileVersion"`
	// BlenderVersion is the worker's Blender, such as "3.4.1".
	BlenderVersion string `json:"blenderVersion"`
	// DenoiserAvailable says whether this Blender has OpenImageDenoise.
	// Debian's build has not, and a Cycles scene that asks for denoising then
	// fails every frame.
	DenoiserAvailable bool `json:"denoiserAvailable"`
	// ViewTransforms are the color management view transforms this Blender
	// offers, to tell whether a requested preset (such as "aces") can be
	// honoured.
	ViewTransforms []string `json:"viewTransforms"`
	// ActiveScene is the scene Blender renders when none is named.
	ActiveScene string  `json:"activeScene"`
	Scenes      []Scene `json:"scenes"`
	// ExternalFiles are the files the scene reads besides the .blend.
	ExternalFiles []ExternalFile `json:"externalFiles"`
	// ExternalFilesTruncated is set when the file names more external files
	// than the inspection lists.
	ExternalFilesTruncated bool `json:"externalFilesTruncated,omitempty"`
	// Libraries are the .blend files the file links data from, directly or
	// through another library; they are among ExternalFiles too. A missing
	// one drops whole objects from the render.
	Libraries []Library `json:"libraries,omitempty"`
}

// Library is a .blend file whose data the file links: characters, props,
// materials kept apart from the shot.
type Library struct {
	Name string `json:"name"`
	// Path is as Blender holds it: relative ("//") to the file inspected,
	// also for a library linked through another one.
	Path string `json:"path"`
	// Parent is the name of the library that links this one; "" when the
	// inspected file links it itself.
	Parent string `json:"parent,omitempty"`
	// Missing is set when the library is not packed and not there.
	Missing bool `json:"missing"`
}

// Scene describes one scene's render settings as saved in the file; they are
// the defaults for every setting a render request leaves out.
type Scene struct {
	Name                 string  `json:"name"`
	FrameStart           int     `json:"frameStart"`
	FrameEnd             int     `json:"frameEnd"`
	FrameStep            int     `json:"frameStep"`
	FPS                  float64 `json:"fps"` // fps / fps_base, e.g. 29.97
	ResolutionX          int     `json:"resolutionX"`
	ResolutionY          int     `json:"resolutionY"`
	ResolutionPercentage int     `json:"resolutionPercentage"`
	// Engine is Blender's identifier: CYCLES, BLENDER_EEVEE,
	// BLENDER_WORKBENCH (BLENDER_EEVEE_NEXT in Blender 4.2 to 4.4).
	Engine string `json:"engine"`
	// Samples is Cycles' render samples or EEVEE's; 0 for Workbench.
	Samples int `json:"samples"`
	// Camera is "" when the scene has no camera: rendering it fails.
	Camera       string `json:"camera"`
	OutputFormat string `json:"outputFormat"` // image_settings.file_format
	ColorMode    string `json:"colorMode"`
	ColorDepth   string `json:"colorDepth"`
	// DenoisingEnabled says whether Cycles will denoise: the scene's flag
	// and the flag of at least one rendered view layer are both on (with
	// either off, Blender 3.4 renders without denoising).
	DenoisingEnabled bool `json:"denoisingEnabled"`
	// Denoiser is Cycles' denoiser (OPENIMAGEDENOISE, OPTIX), "" for other
	// engines.
	Denoiser string `json:"denoiser"`
	// UseCompositing is set when the compositor runs on renders: compositing
	// is on and the scene has a node tree in use.
	UseCompositing bool     `json:"useCompositing"`
	ViewLayers     []string `json:"viewLayers"`
	ViewTransform  string   `json:"viewTransform"`
	// IsMovieOutput is set for movie output formats (FFMPEG, AVI_*). The farm
	// renders still frames, as PNG unless the request names a format.
	IsMovieOutput bool `json:"isMovieOutput"`
}

// ExternalFile is a file the .blend refers to. A missing one renders
// differently (pink textures, absent objects), so users need to see them.
type ExternalFile struct {
	// Type is image, sound, movieclip, movie (a sequencer strip), library,
	// font, volume or cache (Alembic/USD files, and baked point caches,
	// fluid and ocean simulations).
	Type string `json:"type"`
	Name string `json:"name"`
	// Path is as stored in the file; "//" means the .blend's folder.
	Path string `json:"path"`
	// Missing is set when the file is not packed and does not exist. For
	// image sequences and UDIM tiles any frame or the first tile is enough.
	Missing bool `json:"missing"`
	Packed  bool `json:"packed"`
}
