package blender

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// A frame may make more files than its image: one per view of a
// multiview scene, one per fed slot of each compositor File Output node,
// and a JPEG proxy for the preview of an OpenEXR frame. Our script
// (scripts/outputs.py) sends all of them into the chunk's output directory
// under names of the farm's and reports, once it has applied the settings,
// the layout they follow; the worker computes from it the name of every
// file a frame makes and takes each as it takes a frame (openat, no links,
// a regular file within the limit, its format's first bytes). No name or
// path from the file becomes a path on disk: names from the file (a node's
// name, a slot's path, the scene's output path) only name the downloads.

// maxLayoutBytes bounds the layout JSON read back from Blender.
const maxLayoutBytes = 4 << 20

// Limits on a layout, as outputs.py bounds it: a hostile file cannot make
// a frame a million files.
const (
	maxLayoutViews = 64
	maxLayoutNodes = 256
	maxLayoutSlots = 256
	// MaxFilesPerFrame bounds the files one frame makes, its views and
	// every node's images of every view counted.
	MaxFilesPerFrame = 1024
)

// The values of image_settings.views_format: how the views of a multiview
// scene are written.
const (
	viewsIndividual = "INDIVIDUAL"
	viewsStereo3D   = "STEREO_3D"
	viewsMultiview  = "MULTIVIEW"
)

// stereoView is the view of a file that holds both views of a stereo
// image, as the downloads name it.
const stereoView = "stereo"

// outputLayout is what a configured session writes for each frame, as
// outputs.py's layout() reports it.
type outputLayout struct {
	// Format and Codec are the frames' (image_settings), as configured.
	Format string `json:"format"`
	Codec  string `json:"codec"`
	// OutputPath and UseFileExtension are the scene's own, before the farm
	// set its: they name the frames for outputNaming "scene".
	OutputPath       string                `json:"outputPath"`
	UseFileExtension bool                  `json:"useFileExtension"`
	Multiview        *farm.Multiview       `json:"multiview"`
	FileOutputNodes  []farm.FileOutputNode `json:"fileOutputNodes"`
	// Proxy says a JPEG proxy is saved for each frame, for the preview.
	Proxy bool `json:"proxy"`
}

// readLayout reads the layout a configure command wrote to name in dir
// (the run directory, where Blender may write too), following no link,
// and checks it is one the worker can follow.
func readLayout(dir *os.File, name string) (*outputLayout, error) {
	body, err := readAnswer(dir, name, maxLayoutBytes)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errors.New("the session script reported no output layout")
	}
	if err != nil {
		return nil, fmt.Errorf("reading the output layout: %w", err)
	}
	var l outputLayout
	if err := decodeExactly("the output layout", body, &l); err != nil {
		return nil, fmt.Errorf("decoding the output layout: %w", err)
	}
	if err := l.check(); err != nil {
		return nil, err
	}
	return &l, nil
}

// check refuses a layout the worker could not name files for.
func (l *outputLayout) check() error {
	viewsFormats := []string{viewsIndividual, viewsStereo3D, viewsMultiview}
	if mv := l.Multiview; mv != nil {
		if len(mv.Views) == 0 || len(mv.Views) > maxLayoutViews {
			return fmt.Errorf("the output layout has %d views; the farm renders 1 to %d", len(mv.Views), maxLayoutViews)
		}
		if !slices.Contains(viewsFormats, mv.ImageViews) {
			return fmt.Errorf("the output layout writes views as %q, which the farm does not know", mv.ImageViews)
		}
	}
	if len(l.FileOutputNodes) > maxLayoutNodes {
		return fmt.Errorf("the scene has %d File Output nodes; the farm stores the files of %d at most", len(l.FileOutputNodes), maxLayoutNodes)
	}
	views := 1
	if l.Multiview != nil {
		views = len(l.Multiview.Views)
	}
	files := views
	for _, node := range l.FileOutputNodes {
		if node.Format == "OPEN_EXR_MULTILAYER" {
			files += views
		} else {
			files += views * len(node.Slots)
		}
	}
	if files > MaxFilesPerFrame {
		return fmt.Errorf("each frame of the scene would make %d files (its views, and each view of each File Output node's inputs); the farm stores %d at most", files, MaxFilesPerFrame)
	}
	for _, node := range l.FileOutputNodes {
		if len(node.Slots) == 0 || len(node.Slots) > maxLayoutSlots {
			return fmt.Errorf("the File Output node %q has %d fed inputs; the farm stores 1 to %d", node.Name, len(node.Slots), maxLayoutSlots)
		}
		if !slices.Contains(viewsFormats, node.ImageViews) {
			return fmt.Errorf("the File Output node %q writes views as %q, which the farm does not know", node.Name, node.ImageViews)
		}
		if node.Format == "OPEN_EXR_MULTILAYER" {
			continue
		}
		for _, slot := range node.Slots {
			if _, err := formatOf(slot.Format, slot.Codec); err != nil {
				return fmt.Errorf("the File Output node %q: %w", node.Name, err)
			}
			if !slices.Contains(viewsFormats, slot.ImageViews) {
				return fmt.Errorf("the File Output node %q writes views as %q, which the farm does not know", node.Name, slot.ImageViews)
			}
		}
	}
	return nil
}

// formatOf is the imageFormat of a format and codec Blender reports.
func formatOf(name, codec string) (imageFormat, error) {
	if name == "JPEG2000" && codec == "J2K" {
		return j2kFormat, nil
	}
	format, ok := stillFormats[name]
	if !ok {
		return imageFormat{}, fmt.Errorf("it writes %s images, a format the farm does not store", name)
	}
	format.name = name
	return format, nil
}

// extensionsOf is what Blender takes as the extension of format's files
// (farm.ExtensionsOf), the one the farm's files have first.
func extensionsOf(format imageFormat) []string {
	if format.ext == j2kFormat.ext {
		return farm.ExtensionsOf(format.name, "J2K")
	}
	return farm.ExtensionsOf(format.name, "")
}

// diskSuffix is the suffix outputs.py gives the index-th view rendered,
// for the file names Blender makes of it.
func diskSuffix(index int, view farm.View) string {
	switch view.Name {
	case "left":
		return "_L"
	case "right":
		return "_R"
	}
	return "_V" + strconv.Itoa(index)
}

// viewFile is one file a writer (the scene's output, a node's slot) makes
// of a frame: all its views, or one.
type viewFile struct {
	diskSuffix string  // in the file's name on disk
	userSuffix string  // in its name for download
	view       *string // the view it shows; nil for a scene of one view, or every view in one OpenEXR
}

// viewFiles lists the files a writer whose views are written as
// imageViews makes of each frame of a scene rendering views.
func viewFiles(views []farm.View, imageViews string) []viewFile {
	switch {
	case len(views) == 0, imageViews == viewsMultiview:
		return []viewFile{{}}
	case imageViews == viewsStereo3D:
		stereo := stereoView
		return []viewFile{{view: &stereo}}
	}
	files := make([]viewFile, len(views))
	for i, v := range views {
		name := v.Name
		files[i] = viewFile{diskSuffix: diskSuffix(i, v), userSuffix: v.Suffix, view: &name}
	}
	return files
}

// expectedFile is one file a frame makes: where it is below the chunk's
// output directory, its format, and what it is for the downloads.
type expectedFile struct {
	dir    string // "" for the output directory itself, else a path below it
	name   string
	format imageFormat
	// optional files (the preview proxy) may be missing: the frame is
	// whole without them.
	optional bool
	// what says, in a frame's failure, what the file is.
	what   string
	output farm.FrameOutput
}

// relPath is the file's path below the output directory.
func (e expectedFile) relPath() string { return path.Join(e.dir, e.name) }

// frameFiles computes the files of each frame of a chunk: the layout a
// configured session reported, the format of its frames, and how the job
// names its downloads. The names depend on the layout and the frame
// alone, so every chunk of a job, wherever it runs, names a frame's files
// alike, and no two files of the job share a name (farm.FrameNamer,
// farm.NodeNamer).
type frameFiles struct {
	layout *outputLayout
	format imageFormat
	views  []farm.View
	// frames are the files each frame's image is written as (a view
	// each, or one), named by frameNames.
	frames     []viewFile
	frameNames *farm.FrameNamer
	nodes      []nodeFiles
}

// nodeFiles are the files a File Output node writes of each frame, in
// the order of its slots and, in each, of the views.
type nodeFiles struct {
	folder string // the node's folder in the downloads
	files  []nodeFile
	names  *farm.NodeNamer
}

type nodeFile struct {
	dir    string // below the chunk's output directory
	format imageFormat
	view   viewFile
}

func newFrameFiles(layout *outputLayout, format imageFormat, naming string) *frameFiles {
	var views []farm.View
	imageViews := viewsIndividual
	if mv := layout.Multiview; mv != nil {
		views, imageViews = mv.Views, mv.ImageViews
	}
	sceneNaming := farm.SceneNaming{Naming: naming, OutputPath: layout.OutputPath, UseFileExtension: layout.UseFileExtension}
	ff := &frameFiles{layout: layout, format: format, views: views, frames: viewFiles(views, imageViews)}
	ff.frameNames = sceneNaming.FrameNamer(extensionsOf(format), suffixesOf(ff.frames))

	names := make([]string, len(layout.FileOutputNodes))
	for i, node := range layout.FileOutputNodes {
		names[i] = node.Name
	}
	folders := farm.NodeFolders(names)
	for i, node := range layout.FileOutputNodes {
		nf := nodeFiles{folder: folders[i]}
		var naming []farm.NodeFile
		add := func(slot int, dir, template string, format imageFormat, imageViews string) {
			for _, vf := range viewFiles(views, imageViews) {
				nf.files = append(nf.files, nodeFile{dir: dir, format: format, view: vf})
				naming = append(naming, farm.NodeFile{Slot: slot, Template: template, Exts: extensionsOf(format), View: suffixOf(vf)})
			}
		}
		if node.Format == "OPEN_EXR_MULTILAYER" {
			format, _ := formatOf(node.Format, "")
			// The node's files are its base path's: the last part of it
			// names them.
			base := strings.ReplaceAll(node.BasePath, `\`, "/")
			add(0, path.Join("nodes", strconv.Itoa(i)), base[strings.LastIndexByte(base, '/')+1:], format, node.ImageViews)
		} else {
			for k, slot := range node.Slots {
				format, _ := formatOf(slot.Format, slot.Codec)
				add(k, path.Join("nodes", strconv.Itoa(i), strconv.Itoa(k)), slot.Path, format, slot.ImageViews)
			}
		}
		nf.names = sceneNaming.NodeNamer(naming)
		ff.nodes = append(ff.nodes, nf)
	}
	return ff
}

// suffixOf is how a file of a view is told apart in the downloads: by
// the view's suffix in the scene, else by the farm's.
func suffixOf(vf viewFile) farm.ViewSuffix {
	return farm.ViewSuffix{Scene: vf.userSuffix, Farm: vf.diskSuffix}
}

func suffixesOf(files []viewFile) []farm.ViewSuffix {
	suffixes := make([]farm.ViewSuffix, len(files))
	for i, vf := range files {
		suffixes[i] = suffixOf(vf)
	}
	return suffixes
}

// of lists frame's files: the frame's images first (the first is the
// frame's own, the one the frames table records), then each node's, then
// the preview proxy.
func (ff *frameFiles) of(frame int) []expectedFile {
	var files []expectedFile
	for v, vf := range ff.frames {
		names := ff.frameNames.Names(frame, v)
		files = append(files, expectedFile{
			name:   fmt.Sprintf("frame_%04d%s%s", frame, vf.diskSuffix, ff.format.ext),
			format: ff.format,
			what:   "the frame's image" + viewWords(vf.view),
			output: farm.FrameOutput{Kind: farm.OutputFrame, View: vf.view, FileName: names.FileName, RelativePath: names.RelativePath},
		})
	}
	for i, node := range ff.layout.FileOutputNodes {
		nf := ff.nodes[i]
		for k, f := range nf.files {
			rel := nf.folder + "/" + nf.names.Name(frame, k)
			files = append(files, expectedFile{
				dir:    f.dir,
				name:   fmt.Sprintf("f_%04d%s%s", frame, f.view.diskSuffix, f.format.ext),
				format: f.format,
				what:   fmt.Sprintf("the File Output node %q's image", node.Name) + viewWords(f.view.view),
				output: farm.FrameOutput{Kind: farm.OutputCompositeNode, View: f.view.view, CompositeNodeName: node.Name,
					FileName: rel, RelativePath: rel},
			})
		}
	}
	if ff.layout.Proxy {
		jpeg, _ := formatOf("JPEG", "")
		suffix := ""
		if len(ff.views) > 0 {
			suffix = diskSuffix(0, ff.views[0])
		}
		name := fmt.Sprintf("frame_%04d%s.jpg", frame, suffix)
		files = append(files, expectedFile{
			dir: "preview", name: name, format: jpeg, optional: true,
			what:   "the preview proxy",
			output: farm.FrameOutput{Kind: farm.OutputPreview, FileName: name, RelativePath: "preview/" + name},
		})
	}
	return files
}

// viewWords names a view in a message.
func viewWords(view *string) string {
	if view == nil {
		return ""
	}
	return fmt.Sprintf(" of view %q", *view)
}

// openOutput opens the file e of a frame below dir, a handle on the chunk's
// output directory, and checks it as a frame is checked. A missing file
// is errors.Is(err, fs.ErrNotExist).
func openOutput(dir *os.File, e expectedFile) (*FrameImage, error) {
	where := dir
	if e.dir != "" {
		sub, err := openSubdir(dir, filepath.FromSlash(e.dir))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.what, err)
		}
		defer sub.Close()
		where = sub
	}
	img, err := openChecked(where, e.name, e.format)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s was never written (%s): %w", e.what, e.relPath(), os.ErrNotExist)
		}
		return nil, err
	}
	img.Name = e.relPath()
	img.Output = e.output
	return img, nil
}
