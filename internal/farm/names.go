package farm

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode/utf8"
)

// How the files of a frame are named for download. Blender always writes
// them on the render node under names the farm chose (frame_0001.png,
// nodes/0/1/f_0001.exr); the names here are metadata only, the names a
// client downloads and unzips, and never a path any node opens.

// The values of requestedRenderConfig.outputNaming.
const (
	// NamingFarm names frames frame_0001.png, frame_0001_L.png for views.
	NamingFarm = "farm"
	// NamingScene names frames as the scene's output path does
	// (//render/shot010_#### gives render/shot010_0001.png).
	NamingScene = "scene"
)

// OutputNamings are the values outputNaming may take.
var OutputNamings = []string{NamingFarm, NamingScene}

// Limits on the names the farm derives from a scene.
const (
	// MaxNameComponentBytes bounds one component of a download name.
	MaxNameComponentBytes = 120
	// MaxNameComponents bounds the folders (and the file) of a download
	// name made from the scene's output path: the last ones are kept.
	MaxNameComponents = 6
	// maxPathBytes bounds a RelativeName: its first folders go until it
	// fits.
	maxPathBytes = 360
	// MaxRelativeNameBytes bounds every download name the farm makes: a
	// node's folder, a slash and a RelativeName, made unique.
	MaxRelativeNameBytes = 512
)

// imageExtensions are the extensions Blender (imbuf's imb_ext_image) takes
// for an image already: a path ending in one of them gets the format's
// extension instead of it, not after it.
var imageExtensions = []string{".png", ".tga", ".bmp", ".jpg", ".jpeg", ".sgi", ".rgb", ".rgba",
	".tif", ".tiff", ".tx", ".jp2", ".j2c", ".hdr", ".dds", ".dpx", ".cin", ".exr",
	".psd", ".pdd", ".psb", ".webp"}

// formatExtensions lists, for each still format, the extensions Blender
// accepts as already right (the first is the one it adds). JPEG2000's
// depends on its codec: see ExtensionsOf.
var formatExtensions = map[string][]string{
	"PNG": {".png"}, "JPEG": {".jpg", ".jpeg"}, "BMP": {".bmp"}, "TARGA": {".tga"},
	"TARGA_RAW": {".tga"}, "TIFF": {".tif", ".tiff"}, "OPEN_EXR": {".exr"},
	"OPEN_EXR_MULTILAYER": {".exr"}, "HDR": {".hdr"}, "CINEON": {".cin"}, "DPX": {".dpx"},
	"IRIS": {".rgb"}, "WEBP": {".webp"}, "JPEG2000": {".jp2"},
}

// ExtensionsOf is what Blender accepts as the extension of an image of
// format (Blender's identifier; codec matters for JPEG2000 only, "J2K"
// being its raw codestream), the one it adds first; nil for a format the
// farm does not store.
func ExtensionsOf(format, codec string) []string {
	if format == "JPEG2000" && codec == "J2K" {
		return []string{".j2c"}
	}
	return formatExtensions[format]
}

// BlenderPath is the path Blender writes for frame from a path template,
// as Blender 3.4 and 4.3 make it for the scene's output
// (scene.render.frame_path): the last run of '#' in the file's name
// becomes the frame number padded to the run's length, or four digits are
// appended when the name has none; then a view's suffix goes before the
// name's last dot (or at its end); then, with useExt, the format's
// extension (exts[0]) is added, replacing an image extension the path
// ends in. The template is returned with the same folders, "//" included.
func BlenderPath(template string, frame int, exts []string, useExt bool, suffix string) string {
	return blenderPath(template, frameDigits(frame), exts, useExt, suffix)
}

// frameDigits writes frame as Blender does in a run of '#' width long.
func frameDigits(frame int) func(width int) string {
	return func(width int) string { return fmt.Sprintf("%0*d", width, frame) }
}

// blenderPath is BlenderPath with the frame's digits given as digits
// gives them for the width of the template's run of '#'.
func blenderPath(template string, digits func(width int) string, exts []string, useExt bool, suffix string) string {
	p := withFrame(template, digits)
	if suffix != "" {
		p = withSuffix(p, suffix)
	}
	if useExt && len(exts) > 0 {
		p = withExtension(p, exts)
	}
	return p
}

// nameStart is where the file's name begins in p: after its last slash
// (either kind: files saved on Windows keep backslashes).
func nameStart(p string) int { return strings.LastIndexAny(p, `/\`) + 1 }

// withFrame puts the frame's digits into p as Blender's BLI_path_frame
// does.
func withFrame(p string, digits func(width int) string) string {
	start := nameStart(p)
	end := strings.LastIndexByte(p[start:], '#')
	if end < 0 {
		p += "####"
		end = len(p) - 1
	} else {
		end += start
	}
	run := end
	for run > start && p[run-1] == '#' {
		run--
	}
	width := end + 1 - run
	return p[:run] + digits(width) + p[end+1:]
}

// withExtension ends p in one of exts as Blender's image extension rule
// does: nothing changes when p ends in one of them (in any case); an image
// extension p ends in is replaced by exts[0]; otherwise trailing dots go
// and exts[0] is appended.
func withExtension(p string, exts []string) string {
	lower := strings.ToLower(p)
	for _, e := range exts {
		if strings.HasSuffix(lower, e) {
			return p
		}
	}
	for _, e := range imageExtensions {
		if strings.HasSuffix(lower, e) {
			dot := strings.LastIndexByte(p, '.')
			return p[:dot] + exts[0]
		}
	}
	return strings.TrimRight(p, ".") + exts[0]
}

// withSuffix puts a view's suffix before the extension of p's name, or at
// its end when the name has no dot (Blender's BLI_path_suffix).
func withSuffix(p, suffix string) string {
	start := nameStart(p)
	if dot := strings.LastIndexByte(p[start:], '.'); dot >= 0 {
		dot += start
		return p[:dot] + suffix + p[dot:]
	}
	return p + suffix
}

// SafeComponent makes one component of a download name out of text from
// a scene (a node's name, part of an output path): letters and digits of
// ASCII, '.', '_', '-' and '+' stay, anything else becomes '_', a leading
// dot too (no hidden files, no "." or ".."). A name Windows keeps for a
// device, or whose trailing dot it would drop, gets a '_' (windowsSafe).
// A longer name than
// MaxNameComponentBytes is shortened in its middle (shortenMiddle): a
// frame's name ends in what tells it apart, its frame number, view and
// extension, so the end is kept. Empty text gives "_".
func SafeComponent(s string) string {
	b := make([]byte, 0, min(len(s), 4*MaxNameComponentBytes))
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '+':
			b = append(b, byte(r))
		case r == '.' && len(b) > 0:
			b = append(b, '.')
		default:
			b = append(b, '_')
		}
	}
	if len(b) == 0 {
		return "_"
	}
	return shortenMiddle(windowsSafe(string(b)), MaxNameComponentBytes)
}

// windowsSafe adds a '_' to a name Windows would not keep as it is, so
// that the file an artist unzips or downloads there is the one named: a
// device's name (CON, PRN, AUX, NUL, COM0 to COM9, LPT0 to LPT9, in any
// case), alone or before an extension ("nul.png" is the device too),
// gets it after the device's name, and a name ending in a dot or a space,
// which Windows drops, at its end. (Windows also takes COM and LPT with a
// superscript digit for devices; SafeComponent's names are ASCII and
// never hold one.) A name this gives is left as it is by a second call.
func windowsSafe(name string) string {
	device, _, _ := strings.Cut(name, ".")
	if isWindowsDevice(device) {
		name = device + "_" + name[len(device):]
	}
	if strings.HasSuffix(name, ".") || strings.HasSuffix(name, " ") {
		name += "_"
	}
	return name
}

func isWindowsDevice(s string) bool {
	switch strings.ToUpper(s) {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	if len(s) != 4 || s[3] < '0' || s[3] > '9' {
		return false
	}
	prefix := strings.ToUpper(s[:3])
	return prefix == "COM" || prefix == "LPT"
}

// How shortenMiddle cuts a name: it keeps the first headBytes bytes, the
// mark, and as much of the end as the limit leaves room for.
const (
	cutMark   = "--"
	headBytes = 40
)

// shortenMiddle cuts s to limit bytes when it is longer, by taking out a
// part of its middle, which cutMark stands for: the start (a shot's name)
// and the end (a frame's number and extension) stay. The same s always
// gives the same name, and a cut never splits a UTF-8 character.
func shortenMiddle(s string, limit int) string {
	if len(s) <= limit {
		return s
	}
	head := headBytes
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	tail := len(s) - (limit - head - len(cutMark))
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return s[:head] + cutMark + s[tail:]
}

// RelativeName turns a path Blender would write into a relative download
// name: a "//" path keeps its folders below the .blend's (".." and "."
// dropped), an absolute one (or a Windows drive's) keeps only its file
// name, and every component is made safe (SafeComponent). At most the last
// MaxNameComponents components are kept, and no more than fit in 360
// bytes. It never starts with '/' and holds
// no "..": it is a safe path inside a zip or a download folder.
func RelativeName(p string) string {
	p = strings.ReplaceAll(p, `\`, "/")
	absolute := false
	switch {
	case strings.HasPrefix(p, "//"):
		p = p[2:]
	case strings.HasPrefix(p, "/"), len(p) >= 2 && p[1] == ':':
		absolute = true
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		if c == "" || c == "." || c == ".." {
			continue
		}
		parts = append(parts, SafeComponent(c))
	}
	if len(parts) == 0 {
		return "_"
	}
	if absolute {
		parts = parts[len(parts)-1:]
	}
	if len(parts) > MaxNameComponents {
		parts = parts[len(parts)-MaxNameComponents:]
	}
	for len(parts) > 1 && len(strings.Join(parts, "/")) > maxPathBytes {
		parts = parts[1:]
	}
	return strings.Join(parts, "/")
}

// FrameFileNames are a frame image's names in a download: FileName alone
// (unique within the job) and RelativePath, where it goes in the frames
// zip and a download folder.
type FrameFileNames struct {
	FileName     string
	RelativePath string
}

// SceneNaming is what naming a job's files needs from its scene: its
// output path template and whether Blender adds extensions
// (render.use_file_extension), and how the job wants its frames named.
type SceneNaming struct {
	// Naming is NamingFarm or NamingScene.
	Naming string
	// OutputPath is the scene's render.filepath as saved.
	OutputPath string
	// UseFileExtension is the scene's render.use_file_extension.
	UseFileExtension bool
}

// FrameNames names the image of frame with extensions exts (ExtensionsOf)
// for a view whose suffix is suffix ("" for a scene of one view, or an
// image holding every view), as FrameNamer names the images of a writer
// of one view: a name of the scene's that would not tell the frame apart
// from others, or is the name of one of the job's own files, is replaced
// by the farm's.
func (n SceneNaming) FrameNames(frame int, exts []string, suffix string) FrameFileNames {
	return n.FrameNamer(exts, []ViewSuffix{{Scene: suffix, Farm: suffix}}).Names(frame, 0)
}

// NodeFileName is where one file of a compositor File Output node goes in
// a download, below the node's folder: the slot's path template (the
// layer file's name for a multilayer node) with the frame and the view's
// suffix as Blender puts them, its folders made safe (RelativeName).
// Extensions follow the scene with NamingScene and are always added
// otherwise. NodeNamer makes such names unique.
func (n SceneNaming) NodeFileName(slotPath string, frame int, exts []string, suffix string) string {
	useExt := n.Naming != NamingScene || n.UseFileExtension
	return nameForm{template: slotPath, exts: exts, useExt: useExt, suffix: suffix, node: true}.rel(frameDigits(frame))
}

// suffixInName is a view's suffix as the farm puts it in a file's name: a
// slash in it, which would make Blender write the view into a folder of
// its own, is a '_'.
func suffixInName(suffix string) string { return slashes.Replace(suffix) }

var slashes = strings.NewReplacer("/", "_", `\`, "_")

// NodeFolders gives each File Output node a folder of its own for its
// files in downloads and the compositeNodesZip: its name made safe, and
// made unique in the order given (a second "A_B" becomes "A_B_2"). Names
// that differ only in case are the same folder on the file systems of
// macOS and Windows, so "pass" after "Pass" is "pass_2".
func NodeFolders(names []string) []string {
	folders := make([]string, len(names))
	taken := map[string]bool{}
	for i, name := range names {
		folder := SafeComponent(name)
		for k := 2; taken[strings.ToLower(folder)]; k++ {
			folder = SafeComponent(SafeComponent(name) + "_" + strconv.Itoa(k))
		}
		taken[strings.ToLower(folder)] = true
		folders[i] = folder
	}
	return folders
}

// Unique makes name unique among taken (and takes it): a name already
// taken gets "_2", "_3"… before its extension. Names are compared as
// macOS and Windows compare them, in any case (SafeComponent's letters
// are ASCII, whose case strings.ToLower folds): taken holds them
// lower-cased.
func Unique(name string, taken map[string]bool) string {
	if !taken[strings.ToLower(name)] {
		taken[strings.ToLower(name)] = true
		return name
	}
	dir, file := path.Split(name)
	ext := path.Ext(file)
	if !utf8.ValidString(ext) || ext == file {
		ext = ""
	}
	stem := strings.TrimSuffix(file, ext)
	for k := 2; ; k++ {
		candidate := dir + stem + "_" + strconv.Itoa(k) + ext
		if !taken[strings.ToLower(candidate)] {
			taken[strings.ToLower(candidate)] = true
			return candidate
		}
	}
}
