package blender

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The farm takes a frame only from the chunk's own output directory, under
// the one name it told Blender to write for that frame, and only a file
// that is what it claims to be. Nothing Blender prints names the file: a
// .blend can make Blender print anything (Cycles prints object names).

// maxFrameSide is the largest width or height a render request may ask for
// (farm.MaxResolution; a test keeps them equal).
const maxFrameSide = 16384

// maxFrameBytes bounds one frame's file: a single layer of four 32-bit
// float channels at the largest resolution the farm accepts, stored without
// compression (an uncompressed OPEN_EXR, the largest a still format gets),
// plus 16 MiB for headers and metadata. About 4 GiB: no honest frame comes
// near it, and a file that grew past it (or a multilayer EXR of many passes
// at that size) fails the frame rather than filling the object store.
const maxFrameBytes = maxFrameSide*maxFrameSide*4*4 + 16<<20

// frameName is the name of frame's file: Blender is told to write
// <outputDir>/frame_#### (at least four digits) with its extension for the
// format.
func frameName(frame int, format imageFormat) string {
	return fmt.Sprintf("frame_%04d%s", frame, format.ext)
}

// imageFormat is a still format Blender writes, as the farm checks it.
type imageFormat struct {
	// name is Blender's identifier (image_settings.file_format), with the
	// codec for JPEG2000, which decides the extension.
	name string
	ext  string
	// looksRight reports whether a file's first bytes (up to 32, fewer if
	// the file is shorter) are those of the format.
	looksRight func(head []byte) bool
}

// startsWith accepts files that begin with any of the magic numbers.
func startsWith(magics ...string) func([]byte) bool {
	return func(head []byte) bool {
		for _, m := range magics {
			if bytes.HasPrefix(head, []byte(m)) {
				return true
			}
		}
		return false
	}
}

// looksLikeTarga checks what a TARGA file has instead of a magic number:
// its 18-byte header's colour map type, image type, sizes and pixel depth
// must be ones Blender writes (uncompressed or RLE, colour or grey).
func looksLikeTarga(head []byte) bool {
	if len(head) < 18 {
		return false
	}
	colorMapType, imageType := head[1], head[2]
	width, height := binary.LittleEndian.Uint16(head[12:]), binary.LittleEndian.Uint16(head[14:])
	depth := head[16]
	return colorMapType == 0 &&
		(imageType == 2 || imageType == 3 || imageType == 10 || imageType == 11) &&
		width > 0 && height > 0 &&
		(depth == 8 || depth == 16 || depth == 24 || depth == 32)
}

// looksLikeWebP checks the RIFF container's form type.
func looksLikeWebP(head []byte) bool {
	return len(head) >= 12 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP"
}

// stillFormats are the formats a render request may ask for
// (farm.OutputFormats; a test keeps them equal), by Blender's identifier.
// The extensions are Blender's own (imbuf's), since the farm names the
// files only up to the extension.
var stillFormats = map[string]imageFormat{
	"PNG":  {ext: ".png", looksRight: startsWith("\x89PNG\r\n\x1a\n")},
	"JPEG": {ext: ".jpg", looksRight: startsWith("\xff\xd8\xff")},
	// JPEG2000 is the JP2 container unless the file asks for a raw
	// codestream (J2K), which Blender names .j2c.
	"JPEG2000":            {ext: ".jp2", looksRight: startsWith("\x00\x00\x00\x0cjP  \r\n\x87\n")},
	"BMP":                 {ext: ".bmp", looksRight: startsWith("BM")},
	"TARGA":               {ext: ".tga", looksRight: looksLikeTarga},
	"TARGA_RAW":           {ext: ".tga", looksRight: looksLikeTarga},
	"TIFF":                {ext: ".tif", looksRight: startsWith("II*\x00", "MM\x00*", "II+\x00", "MM\x00+")},
	"OPEN_EXR":            {ext: ".exr", looksRight: startsWith("\x76\x2f\x31\x01")},
	"OPEN_EXR_MULTILAYER": {ext: ".exr", looksRight: startsWith("\x76\x2f\x31\x01")},
	"HDR":                 {ext: ".hdr", looksRight: startsWith("#?RADIANCE", "#?RGBE")},
	"CINEON":              {ext: ".cin", looksRight: startsWith("\x80\x2a\x5f\xd7", "\xd7\x5f\x2a\x80")},
	"DPX":                 {ext: ".dpx", looksRight: startsWith("SDPX", "XPDS")},
	"IRIS":                {ext: ".rgb", looksRight: startsWith("\x01\xda")},
	"WEBP":                {ext: ".webp", looksRight: looksLikeWebP},
}

// j2kFormat is JPEG2000 written as a raw codestream.
var j2kFormat = imageFormat{name: "JPEG2000", ext: ".j2c", looksRight: startsWith("\xff\x4f\xff\x51")}

// outputFormat is the format of a chunk's frames: the one the request named,
// else the one the settings script reports Blender was left with (the
// file's own). reported is the script's "FORMAT CODEC" ("" if it said
// nothing); it only chooses among the formats the farm knows.
func outputFormat(requested, reported string) (imageFormat, error) {
	name, codec, _ := strings.Cut(reported, " ")
	if requested != "" {
		if name != "" && name != requested {
			return imageFormat{}, fmt.Errorf("the settings script reports %s frames, not the %s asked for", name, requested)
		}
		name = requested
	}
	if name == "" {
		return imageFormat{}, errors.New("the settings script reported no output format")
	}
	if name == "JPEG2000" && codec == "J2K" {
		return j2kFormat, nil
	}
	format, ok := stillFormats[name]
	if !ok {
		return imageFormat{}, fmt.Errorf("the output format %s is not one the farm stores frames in", name)
	}
	format.name = name
	return format, nil
}

// FrameImage is a file of a frame as the farm takes it: opened from the
// chunk's output directory without following a link, under the name the
// farm gave Blender for it, a regular file of one link within
// maxFrameBytes whose first bytes are those of its format. It stays open
// only while the FrameSaved event that carries it is handled.
type FrameImage struct {
	// Name is the file's path below the chunk's output directory, such as
	// frame_0001.png or nodes/0/1/f_0001.exr: the farm's, never the file's.
	Name string
	// Size is the file's length when it was checked; Reader reads no more.
	Size int64
	// Output says what the file is (a frame's image, a view of it, a
	// compositor node's image, the preview proxy) and the names it is
	// downloaded under; ObjectKey and SizeBytes are left for the store.
	Output farm.FrameOutput
	file   *os.File
}

// Reader reads the image from its start, Size bytes at most.
func (im *FrameImage) Reader() io.Reader { return io.NewSectionReader(im.file, 0, im.Size) }

func (im *FrameImage) close() { im.file.Close() }

// NewFrameImage is the image in f, named as f's file is, for a Blender
// that is not this package's: a test's fake, which reports the frames it
// writes as the runner reports those it checked. It is the frame's image,
// downloaded under its file's name. The caller closes f.
func NewFrameImage(f *os.File) (*FrameImage, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	name := filepath.Base(f.Name())
	return &FrameImage{Name: name, Size: info.Size(), file: f,
		Output: farm.FrameOutput{Kind: farm.OutputFrame, FileName: name, RelativePath: name}}, nil
}

// openChecked opens name in dir, a handle on a directory Blender writes in,
// and checks it is an image of format. An error says what is wrong with
// the file in words for the job's failure message; errors.Is(err,
// fs.ErrNotExist) when Blender wrote none.
func openChecked(dir *os.File, name string, format imageFormat) (*FrameImage, error) {
	f, size, err := openRegular(dir, name, maxFrameBytes)
	if err != nil {
		return nil, err
	}
	head := make([]byte, min(size, 32))
	if _, err := f.ReadAt(head, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if size == 0 {
		f.Close()
		return nil, fmt.Errorf("%s is empty (0 bytes): Blender said it saved the frame but wrote no image", name)
	}
	if !format.looksRight(head) {
		f.Close()
		return nil, fmt.Errorf("%s is not a %s image (it starts with % x); the farm stores only images in the format Blender was told to write",
			name, format.name, head[:min(len(head), 8)])
	}
	return &FrameImage{Name: name, Size: size, file: f}, nil
}

// openFrame opens the image of frame, the only file of a frame of a scene
// of one view with no other outputs, in dir, and checks it is a frame of
// format.
func openFrame(dir *os.File, frame int, format imageFormat) (*FrameImage, error) {
	img, err := openChecked(dir, frameName(frame, format), format)
	if err != nil {
		return nil, err
	}
	img.Output = farm.FrameOutput{Kind: farm.OutputFrame, FileName: img.Name, RelativePath: img.Name}
	return img, nil
}

// openRegular opens name in dir for reading without following a link, and
// checks it is a regular file of one link (a hard link would be another
// file's content under the name) no longer than limit. A named pipe does
// not block the open: it is refused for what it is.
func openRegular(dir *os.File, name string, limit int64) (*os.File, int64, error) {
	fd, err := openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY)
	switch {
	case errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK):
		// O_NOFOLLOW's answer to a symbolic link (EMLINK on the BSDs).
		return nil, 0, fmt.Errorf("%s is a symbolic link; the farm takes only a file Blender wrote", name)
	case errors.Is(err, unix.ENOENT):
		return nil, 0, fmt.Errorf("no %s was written: %w", name, os.ErrNotExist)
	case err != nil:
		return nil, 0, fmt.Errorf("opening %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("%s: %w", name, err)
	}
	switch {
	case !info.Mode().IsRegular():
		f.Close()
		return nil, 0, fmt.Errorf("%s is not a regular file (%s); the farm takes only a file Blender wrote", name, describeMode(info.Mode()))
	case linkCount(info) > 1:
		f.Close()
		return nil, 0, fmt.Errorf("%s has other names (hard links); the farm takes only a file Blender wrote", name)
	case info.Size() > limit:
		f.Close()
		return nil, 0, fmt.Errorf("%s is %d bytes, more than the %d a file from Blender may have", name, info.Size(), limit)
	}
	return f, info.Size(), nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a named pipe"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeDevice != 0:
		return "a device"
	}
	return "mode " + m.String()
}

func linkCount(info os.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// openat opens name, a single path component, relative to dir.
func openat(dir *os.File, name string, flags int) (int, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return -1, fmt.Errorf("%q is not a name in a directory", name)
	}
	conn, err := dir.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var openErr error
	if err := conn.Control(func(dirfd uintptr) {
		for {
			fd, openErr = unix.Openat(int(dirfd), name, flags|unix.O_CLOEXEC, 0)
			if openErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return -1, err
	}
	return fd, openErr
}

// readAnswer reads a file one of the farm's scripts wrote to name in dir
// (a directory Blender may write in too), whole: opened as openRegular
// opens it, following no link, at most limit bytes. A file that is not
// there answers os.ErrNotExist.
func readAnswer(dir *os.File, name string, limit int64) ([]byte, error) {
	f, _, err := openRegular(dir, name, limit)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// The size was checked at the open; the limit holds if the file grows.
	body, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("%s grew past %d bytes while it was read", name, limit)
	}
	return body, nil
}

// openDir opens the directory at path, as the farm made it: links in the
// path are the operator's business and are followed.
func openDir(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if info, err := f.Stat(); err != nil || !info.IsDir() {
		f.Close()
		return nil, fmt.Errorf("%s is not a directory", path)
	}
	return f, nil
}

// openSubdir opens (making what is missing) the directory rel below root,
// a handle on a directory Blender may write in, one component at a time
// and following no link, so that nothing Blender put there can take the
// farm elsewhere.
func openSubdir(root *os.File, rel string) (*os.File, error) {
	rel = filepath.Clean(rel)
	if !filepath.IsLocal(rel) && rel != "." {
		return nil, fmt.Errorf("%s is not below %s", rel, root.Name())
	}
	dir, err := dup(root)
	if err != nil {
		return nil, err
	}
	if rel == "." {
		return dir, nil
	}
	for _, name := range strings.Split(rel, string(filepath.Separator)) {
		conn, err := dir.SyscallConn()
		if err != nil {
			dir.Close()
			return nil, err
		}
		var mkErr error
		if err := conn.Control(func(dirfd uintptr) { mkErr = unix.Mkdirat(int(dirfd), name, 0o755) }); err != nil {
			dir.Close()
			return nil, err
		}
		if mkErr != nil && !errors.Is(mkErr, unix.EEXIST) {
			dir.Close()
			return nil, fmt.Errorf("making %s in %s: %w", name, dir.Name(), mkErr)
		}
		fd, err := openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW)
		if err != nil {
			dir.Close()
			return nil, fmt.Errorf("%s in %s is not a directory of the farm's (a link?): %w", name, dir.Name(), err)
		}
		next := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
		dir.Close()
		dir = next
	}
	return dir, nil
}

// dup opens another handle on dir.
func dup(dir *os.File) (*os.File, error) {
	conn, err := dir.SyscallConn()
	if err != nil {
		return nil, err
	}
	var newfd int
	var dupErr error
	if err := conn.Control(func(dirfd uintptr) {
		newfd, dupErr = unix.FcntlInt(dirfd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, dupErr
	}
	return os.NewFile(uintptr(newfd), dir.Name()), nil
}
