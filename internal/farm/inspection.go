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
	// OutputPath is the scene's output path template (render.filepath) as
	// saved, such as "//render/shot010_####": outputNaming "scene" names
	// the frames after it. The farm never writes there.
	OutputPath string `json:"outputPath"`
	// UseFileExtension is render.use_file_extension: whether Blender adds
	// the format's extension to the names it makes.
	UseFileExtension bool `json:"useFileExtension"`
	// Multiview is set when the scene renders several views (stereo 3D or
	// views of their own cameras); nil when it renders one.
	Multiview *Multiview `json:"multiview,omitempty"`
	// FileOutputNodes are the compositor's File Output nodes that write
	// files when the scene renders: compositing on, the node not muted and
	// fed by at least one link. The farm stores their files beside the
	// frames.
	FileOutputNodes []FileOutputNode `json:"fileOutputNodes,omitempty"`
	// RenderPasses are the passes each view layer renders; an
	// OPEN_EXR_MULTILAYER frame holds them all.
	RenderPasses []ViewLayerPasses `json:"renderPasses,omitempty"`
}

// Multiview is how a scene renders several views of each frame.
type Multiview struct {
	// Mode is render.views_format: STEREO_3D (a left and a right view) or
	// MULTIVIEW (views of cameras of their own).
	Mode string `json:"mode"`
	// ImageViews is how the frames hold the views
	// (image_settings.views_format): INDIVIDUAL, an image per view named
	// with the view's suffix (frame_0001_L.png); STEREO_3D, one image of
	// both (anaglyph, side by side…); MULTIVIEW, one OpenEXR of every view.
	ImageViews string `json:"imageViews"`
	// Views are the views rendered, in Blender's order.
	Views []View `json:"views"`
}

// View is one view of a multiview scene.
type View struct {
	// Name is the view's name: "left" and "right" for stereo 3D.
	Name string `json:"name"`
	// Suffix is what Blender adds to the file name of the view's image
	// ("_L"), before the extension.
	Suffix string `json:"suffix"`
}

// FileOutputNode is a compositor File Output node: each of its slots
// writes an image sequence of its own beside the frames (a depth pass, an
// AOV, a cryptomatte), or, for an OPEN_EXR_MULTILAYER node, one file per
// frame with every slot a layer.
type FileOutputNode struct {
	Name string `json:"name"`
	// Format is the node's image format, Blender's identifier.
	Format string `json:"format"`
	// Codec is JPEG2000's codec (JP2 or J2K), "" for other formats.
	Codec string `json:"codec"`
	// ImageViews is how the node writes the views of a multiview scene
	// (see Multiview.ImageViews).
	ImageViews string `json:"imageViews"`
	// BasePath is the node's base path as saved ("//passes/"); for a
	// multilayer node, the path of its files.
	BasePath string `json:"basePath"`
	// Slots are the node's inputs that are fed, in order.
	Slots []FileOutputSlot `json:"slots"`
}

// FileOutputSlot is one input of a File Output node.
type FileOutputSlot struct {
	// Path is the slot's path template below the node's base path
	// ("depth_####"), or the layer's name in a multilayer node.
	Path string `json:"path"`
	// Format, Codec and ImageViews are the slot's own when it does not use
	// the node's; the node's otherwise.
	Format     string `json:"format"`
	Codec      string `json:"codec"`
	ImageViews string `json:"imageViews"`
}

// ViewLayerPasses lists the passes a view layer renders.
type ViewLayerPasses struct {
	ViewLayer string `json:"viewLayer"`
	// Passes are Blender's pass names, as an OPEN_EXR_MULTILAYER file
	// names its layers: Combined, Depth, Normal, AO, CryptoObject00, an
	// AOV's or light group's own name…
	Passes []string `json:"passes"`
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
