package farm

import (
	"path"
	"strconv"
	"strings"
)

// Names unique within a job.
//
// A frame's files are named from the scene (its output path, a File
// Output node's slot path, a view's suffix) by Blender's rules, made safe
// and short. Such names tell most files apart by their frame's number,
// but not all: Blender drops a number that completes an image extension
// (//x.jp# gives frame 2 x.png, as it would "x.jp2"), two views' suffixes
// may be alike in any case, a suffix's digits may run into the frame's,
// and a name may be one of the farm's own files' in a download
// (//preview.mp# without extensions names frame 4 preview.mp4). Each
// render node names the files of its own chunk, so a name cannot be made
// unique by looking at the names of other frames. Instead every name the
// farm gives can be read back (decode) as the frame and the file it names,
// and a name is only given to the file it reads back as: two files never
// get one name, in any case. A name of the scene's that does not read back
// is replaced by the farm's own for that file (frame_0002_R.png,
// slot2_0002.exr), which always does.

// ViewSuffix is what tells a view's files from the other views'.
type ViewSuffix struct {
	// Scene is the view's suffix in the scene's names ("_L"); "" for a
	// scene of one view, or a file holding every view.
	Scene string
	// Farm is the farm's own suffix for the view ("_L", "_R", "_V2"),
	// which its own names use. The views of one writer have Farm
	// suffixes that differ in any case, and none starts with a digit.
	Farm string
}

// jobFileNames are, lower-cased, the names of a job's own files and
// folders that share a download folder with its frames (the zips and
// the preview video, and the folder renderfarm download puts File Output
// nodes' images in): no frame takes one of them.
var jobFileNames = map[string]bool{
	strings.ToLower(FramesZipName):         true,
	strings.ToLower(CompositeNodesZipName): true,
	strings.ToLower(PreviewVideoName):      true,
	"compositenodes":                       true,
}

// maxFrameDigits is the most digits a frame's number has.
var maxFrameDigits = len(strconv.Itoa(MaxFrame))

// nameForm is how one writer (a view of the scene's output, a view of a
// node's slot) names its file of each frame: a path template named with
// Blender's rules, then made a safe relative name.
type nameForm struct {
	template string
	exts     []string
	useExt   bool
	suffix   string
	// node says the name is a File Output node's file's, below the node's
	// folder and unique as a whole (NodeFileName); a frame's is unique by
	// its last part, the file's name, which is where it goes in a download
	// folder.
	node bool
}

// rel is the form's relative name of the frame whose digits are digits.
func (f nameForm) rel(digits func(width int) string) string {
	p := blenderPath(f.template, digits, f.exts, f.useExt, suffixInName(f.suffix))
	if f.node {
		p = strings.ReplaceAll(p, `\`, "/")
		return RelativeName("//" + strings.TrimLeft(p, "/"))
	}
	return RelativeName(p)
}

// key is the part of rel that must be unique.
func (f nameForm) key(rel string) string {
	if f.node {
		return rel
	}
	return path.Base(rel)
}

// width is the length of the template's run of '#' (4 when it has none):
// a frame's digits are that many, or more for a larger number.
func (f nameForm) width() int {
	w := 0
	withFrame(f.template, func(width int) string { w = width; return "" })
	return w
}

// shape is what the names of a form for the frames of one number of
// digits have around those digits (lower-cased).
type shape struct {
	prefix, suffix string
	digits, width  int
	entry          int
}

// fileNamer names the files of every frame written by the writers of one
// download folder (a job's frames, or one node's files): each writer,
// entry, has its plain form (the scene's names) and its fallback (the
// farm's).
type fileNamer struct {
	plain, fallback []nameForm
	reserved        map[string]bool
	// byLength lists the shapes of each length of name, in the order
	// decode tries them: every fallback form's first, then the plain ones.
	// The farm's own names differ from each other around the frame's
	// digits (by a slot's number before them, a view's suffix and an
	// extension after them, none starting with a digit), so tried first
	// they always read back as the file they name.
	byLength map[int][]shape
}

func newFileNamer(plain, fallback []nameForm, reserved map[string]bool) *fileNamer {
	n := &fileNamer{plain: plain, fallback: fallback, reserved: reserved, byLength: map[int][]shape{}}
	n.addShapes(fallback)
	n.addShapes(plain)
	return n
}

// addShapes finds, for each of forms and each number of digits a frame
// may have, where the digits are in its names: what the names of the
// frames all zeros and all ones have in common before and after them.
// Where the digits do not make it whole into the name (cut short), that
// number of digits has no shape, and the form's names of those frames do
// not read back.
func (n *fileNamer) addShapes(forms []nameForm) {
	for entry, f := range forms {
		w := f.width()
		for digits := w; digits <= max(w, maxFrameDigits); digits++ {
			zeros := strings.ToLower(f.key(f.rel(func(int) string { return strings.Repeat("0", digits) })))
			ones := strings.ToLower(f.key(f.rel(func(int) string { return strings.Repeat("1", digits) })))
			if len(zeros) != len(ones) {
				continue
			}
			before := 0
			for before < len(zeros) && zeros[before] == ones[before] {
				before++
			}
			after := 0
			for after < len(zeros)-before && zeros[len(zeros)-1-after] == ones[len(ones)-1-after] {
				after++
			}
			if len(zeros)-before-after != digits {
				continue
			}
			n.byLength[len(zeros)] = append(n.byLength[len(zeros)], shape{
				prefix: zeros[:before], suffix: zeros[len(zeros)-after:], digits: digits, width: w, entry: entry})
		}
	}
}

// decode reads a name (a key) back as the frame and the entry whose
// form's shape it has first; ok is false for a name of no shape. Case
// does not matter.
func (n *fileNamer) decode(key string) (frame, entry int, ok bool) {
	lower := strings.ToLower(key)
	for _, s := range n.byLength[len(lower)] {
		if !strings.HasPrefix(lower, s.prefix) || !strings.HasSuffix(lower, s.suffix) {
			continue
		}
		digits := lower[len(s.prefix) : len(lower)-len(s.suffix)]
		if strings.Trim(digits, "0123456789") != "" {
			continue
		}
		f, err := strconv.Atoi(digits)
		if err != nil || frameDigits(f)(s.width) != digits {
			continue
		}
		return f, s.entry, true
	}
	return 0, 0, false
}

// name is the relative name of entry's file of frame: the plain form's
// when it reads back as that file and is none of reserved, else the
// fallback's. plainRel is the plain form's.
func (n *fileNamer) name(frame, entry int) (rel, plainRel string) {
	plainRel = n.plain[entry].rel(frameDigits(frame))
	key := n.plain[entry].key(plainRel)
	if !n.reserved[strings.ToLower(key)] {
		if f, e, ok := n.decode(key); ok && f == frame && e == entry {
			return plainRel, plainRel
		}
	}
	return n.fallback[entry].rel(frameDigits(frame)), plainRel
}

// FrameNamer names the images of a job's frames, one per view, so that
// no two images of the job share a FileName, in any case, nor take the
// name of the job's zips or preview video.
type FrameNamer struct{ names *fileNamer }

// FrameNamer names the images in a format of extensions exts (ExtensionsOf)
// of each of views (one, without suffixes, for a scene of one view or an
// image holding every view).
func (n SceneNaming) FrameNamer(exts []string, views []ViewSuffix) *FrameNamer {
	plain := make([]nameForm, len(views))
	fallback := make([]nameForm, len(views))
	for i, v := range views {
		plain[i] = nameForm{template: "frame_####", exts: exts, useExt: true, suffix: v.Scene}
		if n.Naming == NamingScene {
			plain[i] = nameForm{template: n.OutputPath, exts: exts, useExt: n.UseFileExtension, suffix: v.Scene}
		}
		fallback[i] = nameForm{template: "frame_####", exts: exts, useExt: true, suffix: v.Farm}
	}
	return &FrameNamer{newFileNamer(plain, fallback, jobFileNames)}
}

// Names are the names of the image of frame of the view-th view. An image
// named the farm's way stays in the scene's folders.
func (fn *FrameNamer) Names(frame, view int) FrameFileNames {
	rel, plainRel := fn.names.name(frame, view)
	if rel != plainRel {
		if dir := path.Dir(plainRel); dir != "." {
			rel = dir + "/" + rel
		}
	}
	return FrameFileNames{FileName: path.Base(rel), RelativePath: rel}
}

// NodeFile is one file a File Output node writes of each frame: a view of
// a slot's image, or of the node's multilayer OpenEXR.
type NodeFile struct {
	// Slot is the slot's index in the node (0 for a multilayer node).
	Slot int
	// Template is the slot's path (a multilayer node's base path's last
	// part).
	Template string
	// Exts are its format's extensions (ExtensionsOf).
	Exts []string
	View ViewSuffix
}

// NodeNamer names the files of one File Output node below its folder, so
// that no two of the job's share a name, in any case.
type NodeNamer struct{ names *fileNamer }

// NodeNamer names the node's files: each is named as NodeFileName names
// it, or else by its slot (slot2_0001_L.exr).
func (n SceneNaming) NodeNamer(files []NodeFile) *NodeNamer {
	useExt := n.Naming != NamingScene || n.UseFileExtension
	plain := make([]nameForm, len(files))
	fallback := make([]nameForm, len(files))
	for i, f := range files {
		plain[i] = nameForm{template: f.Template, exts: f.Exts, useExt: useExt, suffix: f.View.Scene, node: true}
		fallback[i] = nameForm{template: "slot" + strconv.Itoa(f.Slot+1) + "_####", exts: f.Exts, useExt: true, suffix: f.View.Farm, node: true}
	}
	return &NodeNamer{newFileNamer(plain, fallback, nil)}
}

// Name is where the file-th file of the node's goes for frame, below the
// node's folder.
func (nn *NodeNamer) Name(frame, file int) string {
	rel, _ := nn.names.name(frame, file)
	return rel
}
