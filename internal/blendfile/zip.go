package blendfile

import (
	"archive/zip"
	"bytes"
	"cmp"
	"compress/flate"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ZipLimits bounds what a project zip may unpack to, so that an upload cannot
// fill a worker's disk or keep it busy inflating garbage. A zero or negative
// field means its default from DefaultZipLimits.
type ZipLimits struct {
	// MaxEntries is the most entries, files and folders, a zip may hold.
	MaxEntries int
	// MaxTotalBytes is the most bytes all its files may unpack to together.
	MaxTotalBytes int64
	// BombRatio is the highest uncompressed/compressed ratio allowed for
	// an entry larger than BombMinBytes, and for the whole zip (all its
	// files against the zip file's size) once its files unpack to more
	// than BombMinTotalBytes. Deflate reaches about 1000:1 only on
	// degenerate data; real project files stay far below 200:1.
	BombRatio float64
	// BombMinBytes exempts small entries from BombRatio: a tiny file of
	// zeros compresses extremely well and harms no one.
	BombMinBytes int64
	// BombMinTotalBytes exempts a zip whose files unpack to no more than
	// this from BombRatio on the whole zip. Without that bound, the small
	// entries BombMinBytes exempts would add up: 10,000 files of a MiB of
	// zeros, each about a KiB deflated, unpack 9.8 GiB from 10.9 MiB.
	BombMinTotalBytes int64
}

// DefaultZipLimits returns limits that fit large real projects but no bomb:
// 10,000 entries, 20 GiB in all, and a ratio of 200 for entries over 1 MiB
// and for the whole zip once it unpacks to more than 256 MiB.
//
// Only small files can bring a real project's zip over 200:1 as a whole,
// since every file over 1 MiB is held to it on its own: more than 256 MiB
// of them, nearly all blank, which no real project holds.
func DefaultZipLimits() ZipLimits {
	return ZipLimits{
		MaxEntries:        10_000,
		MaxTotalBytes:     20 << 30,
		BombRatio:         200,
		BombMinBytes:      1 << 20,
		BombMinTotalBytes: 256 << 20,
	}
}

func (l ZipLimits) orDefaults() ZipLimits {
	d := DefaultZipLimits()
	if l.MaxEntries <= 0 {
		l.MaxEntries = d.MaxEntries
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = d.MaxTotalBytes
	}
	if !(l.BombRatio > 0) { // also catches NaN
		l.BombRatio = d.BombRatio
	}
	if l.BombMinBytes <= 0 {
		l.BombMinBytes = d.BombMinBytes
	}
	if l.BombMinTotalBytes <= 0 {
		l.BombMinTotalBytes = d.BombMinTotalBytes
	}
	return l
}

// Project describes a project zip that passed the checks: where its .blend
// is, so that a worker can hand Blender the right file.
type Project struct {
	// BlendPath is the path of the one .blend to render, '/'-separated and
	// relative to the project root.
	BlendPath string
	// Root is "" when the project root is the zip's root, or the name of
	// the single top-level folder every entry lives in (the common case of
	// a zipped folder). After ExtractZip the project root is
	// filepath.Join(destDir, Root), and the .blend is BlendPath below it.
	Root string
	// Entries counts all entries of the zip, folders included.
	Entries int
	// TotalBytes is the uncompressed size of all files: as declared by
	// the zip for CheckZip, as actually written for ExtractZip.
	TotalBytes int64
}

// CheckZip checks the project zip at zipPath against lim and the rules for a
// project, reading only the zip's central directory and the local header
// of each entry: no entry is decompressed, so it is cheap enough to run at
// upload validation. The sizes it checks are those the zip declares;
// ExtractZip enforces the limits again on the real bytes.
//
// A problem with the zip itself is an *Error with one of the ZIP_ codes or
// CodeCorruptZip; any other error is the farm's own failure.
func CheckZip(zipPath string, lim ZipLimits) (Project, error) {
	lim = lim.orDefaults()
	z, err := openZip(zipPath, lim)
	if err != nil {
		return Project{}, err
	}
	defer z.close()
	p, _, err := checkEntries(z, lim)
	return p, err
}

// ExtractZip checks the project zip at zipPath like CheckZip, then unpacks it
// into destDir, which must be empty or not exist yet. While writing it
// counts the real bytes of every entry, since the sizes a zip declares can
// lie, and stops as soon as an entry or the total goes over its limit.
//
// Files are created with mode 0644 and folders with 0755, never through a
// symbolic link and never outside destDir. On any error nothing it wrote is
// left behind, and destDir (with any parents) is removed again if
// ExtractZip created it.
func ExtractZip(zipPath, destDir string, lim ZipLimits) (p Project, err error) {
	lim = lim.orDefaults()
	z, err := openZip(zipPath, lim)
	if err != nil {
		return Project{}, err
	}
	defer z.close()
	p, entries, err := checkEntries(z, lim)
	if err != nil {
		return Project{}, err
	}

	createdDir, err := prepareDest(destDir)
	if err != nil {
		return Project{}, err
	}
	root, err := os.OpenRoot(destDir)
	if err != nil {
		if createdDir != "" {
			os.RemoveAll(createdDir)
		}
		return Project{}, fmt.Errorf("blendfile: %w", err)
	}
	defer root.Close()

	// tops records every top-level name before anything is created under
	// it; since destDir started empty, removing them undoes the extraction.
	tops := make(map[string]bool)
	defer func() {
		if err == nil {
			return
		}
		var cerr error
		if createdDir != "" {
			cerr = os.RemoveAll(createdDir)
		} else {
			for top := range tops {
				cerr = errors.Join(cerr, root.RemoveAll(top))
			}
		}
		if cerr != nil {
			err = errors.Join(err, fmt.Errorf("blendfile: cleaning up %s: %w", destDir, cerr))
		}
	}()

	x := &extractor{root: root, src: z.src, lim: lim, buf: make([]byte, 64<<10)}
	for _, e := range entries {
		top, _, _ := strings.Cut(e.name, "/")
		tops[filepath.FromSlash(top)] = true
		if e.dir {
			if err := root.MkdirAll(filepath.FromSlash(e.name), 0o755); err != nil {
				return Project{}, fmt.Errorf("blendfile: creating folder %q: %w", e.name, err)
			}
			continue
		}
		if err := x.file(e); err != nil {
			return Project{}, err
		}
	}
	p.TotalBytes = x.total
	return p, nil
}

// entry is a zip entry that passed the checks.
type entry struct {
	f    *zip.File
	name string // cleaned, '/'-separated, no trailing slash
	dir  bool
}

// checkEntries applies the limits and the project rules to the central
// directory, returning the entries to extract in zip order.
func checkEntries(z *zipFile, lim ZipLimits) (Project, []entry, error) {
	r := z.r
	if len(r.File) > lim.MaxEntries {
		return Project{}, nil, newError(CodeZipTooManyEntries,
			"the zip has %d entries, more than the %d allowed; leave out what the render does not need (caches, backups, old versions) and zip again",
			len(r.File), lim.MaxEntries)
	}
	entries := make([]entry, 0, len(r.File))
	kinds := make(map[string]bool, len(r.File)) // name → is a folder
	var total uint64
	maxTotal := uint64(lim.MaxTotalBytes)
	for _, f := range r.File {
		mode := f.Mode()
		name, err := cleanEntryName(f.Name)
		if err != nil {
			return Project{}, nil, err
		}
		if t := mode.Type() &^ fs.ModeDir; t != 0 {
			hint := "leave it out"
			if t&fs.ModeSymlink != 0 {
				hint = "put the file it points to in the zip instead (zip without --symlinks)"
			}
			return Project{}, nil, newError(CodeZipLink,
				"entry %s is %s; the farm unpacks only regular files and folders, so %s",
				quoted(f.Name), modeKind(t), hint)
		}
		// Windows tools may end a folder entry with a backslash, which
		// archive/zip does not see as a folder.
		dir := mode.IsDir() || strings.HasSuffix(f.Name, `\`)
		if name == "" {
			if dir {
				continue // "./": the root folder itself, which extraction creates anyway
			}
			return Project{}, nil, newError(CodeZipUnsafePath,
				"entry %s is a file without a name; zip the project folder with a standard zip tool and upload it again", quoted(f.Name))
		}
		if _, dup := kinds[name]; dup {
			return Project{}, nil, newError(CodeZipDuplicateEntry,
				"the zip has more than one entry for %s; zip the project folder again so that every file appears once", quoted(name))
		}
		kinds[name] = dir
		if !dir {
			if f.Flags&0x1 != 0 {
				return Project{}, nil, newError(CodeZipEncrypted,
					"entry %s is password-protected; zip the project without a password", quoted(f.Name))
			}
			if f.Method != zip.Store && f.Method != zip.Deflate {
				return Project{}, nil, newError(CodeZipUnsupportedMethod,
					"entry %s is compressed with method %d (%s), which the farm cannot unpack; zip the project again with standard deflate compression",
					quoted(f.Name), f.Method, methodName(f.Method))
			}
			size := f.UncompressedSize64
			// size is checked on its own first, so that the sum cannot wrap.
			if size > maxTotal || total+size > maxTotal {
				return Project{}, nil, newError(CodeZipTooLarge,
					"the zip's files unpack to more than %s, the farm's limit (reached at entry %s); leave out what the render does not need and zip again",
					byteSize(maxTotal), quoted(f.Name))
			}
			total += size
			if bombRatio(size, f.CompressedSize64, lim) {
				return Project{}, nil, bombError(f.Name, size, f.CompressedSize64, lim)
			}
		}
		entries = append(entries, entry{f: f, name: name, dir: dir})
	}
	if err := checkLayout(z); err != nil {
		return Project{}, nil, err
	}
	// With no bytes shared, this bounds what the whole zip unpacks to:
	// ExtractZip writes no entry past its declared size.
	if total > uint64(lim.BombMinTotalBytes) && float64(total) > lim.BombRatio*float64(z.size) {
		return Project{}, nil, newError(CodeZipBomb,
			"the zip's files unpack to %s from a zip of %s, %.0f times, over the limit of %.0f times that marks a zip bomb; small files that compress extremely well, such as blank images or caches of zeros, add up to it: if they are genuine, zip the project without compression (zip -0) or leave them out",
			byteSize(total), byteSize(uint64(z.size)), float64(total)/float64(z.size), lim.BombRatio)
	}

	// A name used as a file and as a folder cannot be extracted; finding it
	// here keeps ExtractZip from failing halfway. Each folder is looked at
	// once, however many entries it holds.
	checked := make(map[string]bool)
	for _, e := range entries {
		for d := path.Dir(e.name); d != "." && !checked[d]; d = path.Dir(d) {
			checked[d] = true
			if isDir, ok := kinds[d]; ok && !isDir {
				return Project{}, nil, newError(CodeZipDuplicateEntry,
					"%s is both a file and a folder in the zip; rename one of them and zip again", quoted(d))
			}
		}
	}

	p, err := findBlend(entries)
	if err != nil {
		return Project{}, nil, err
	}
	p.Entries = len(r.File)
	p.TotalBytes = int64(total)
	return p, entries, nil
}

// findBlend applies the project rule: exactly one .blend at the project
// root. Backups (.blend1, .blend2) do not end in ".blend" and so never count.
func findBlend(entries []entry) (Project, error) {
	root := projectRoot(entries)
	prefix := ""
	where := "at its root"
	if root != "" {
		prefix = root + "/"
		where = "at the top of its folder " + quoted(root)
	}
	var atRoot, deeper []string
	for _, e := range entries {
		if e.dir || ignoredForProject(e.name) || !strings.EqualFold(path.Ext(e.name), ".blend") {
			continue
		}
		rel := strings.TrimPrefix(e.name, prefix)
		if strings.Contains(rel, "/") {
			deeper = append(deeper, e.name)
		} else {
			atRoot = append(atRoot, rel)
		}
	}
	switch {
	case len(atRoot) == 1:
		return Project{BlendPath: atRoot[0], Root: root}, nil
	case len(atRoot) > 1:
		return Project{}, newError(CodeZipMultipleBlends,
			"the zip has %d .blend files %s (%s), so the farm cannot tell which to render; keep only that one there and move the others, such as linked libraries, into a folder",
			len(atRoot), where, listNames(atRoot, prefix))
	case len(deeper) > 0:
		return Project{}, newError(CodeZipNoBlend,
			"the zip has no .blend file %s, only deeper in folders (%s); put the .blend to render at the top of the zip, beside the folders it uses",
			where, listNames(deeper, ""))
	}
	top := topNames(entries, prefix)
	if len(top) == 0 {
		return Project{}, newError(CodeZipNoBlend, "the zip is empty; zip the project folder with its .blend file and upload it again")
	}
	return Project{}, newError(CodeZipNoBlend,
		"the zip has no .blend file %s; found: %s; add the .blend file to render and zip again", where, listNames(top, ""))
}

// projectRoot returns the single top-level folder all entries live in, or
// "" when there is none. macOS metadata is left out of the decision: the
// Finder adds a __MACOSX folder beside the one the user zipped.
func projectRoot(entries []entry) string {
	root := ""
	for _, e := range entries {
		if ignoredForProject(e.name) {
			continue
		}
		top, _, nested := strings.Cut(e.name, "/")
		if !nested && !e.dir {
			return "" // a file at the top level
		}
		if root == "" {
			root = top
		} else if top != root {
			return ""
		}
	}
	return root
}

// ignoredForProject reports whether name is operating system metadata that
// zip tools add without being asked; it is extracted like anything else but
// never decides the root or counts as a .blend (macOS writes
// "._scene.blend" beside "scene.blend").
func ignoredForProject(name string) bool {
	top, _, _ := strings.Cut(name, "/")
	base := path.Base(name)
	return top == "__MACOSX" || strings.HasPrefix(base, "._") || base == ".DS_Store"
}

// topNames lists what lies directly in the project root, folders with a
// trailing "/…", in zip order.
func topNames(entries []entry, prefix string) []string {
	var names []string
	seen := make(map[string]bool)
	for _, e := range entries {
		if ignoredForProject(e.name) {
			continue
		}
		rel, ok := strings.CutPrefix(e.name, prefix)
		if !ok || rel == "" {
			continue
		}
		first, _, nested := strings.Cut(rel, "/")
		name := prefix + first
		if nested || e.dir {
			name += "/…"
		}
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	return names
}

// listNames joins a few names for a message, saying how many were left out.
func listNames(names []string, prefix string) string {
	const shown = 5
	var b strings.Builder
	for i, n := range names {
		if i == shown {
			fmt.Fprintf(&b, " and %d more", len(names)-shown)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(displayName(prefix + n))
	}
	return b.String()
}

// displayName shows a name as it is when that is unambiguous, quoted when
// it holds bytes that would garble a message.
func displayName(s string) string {
	if len(s) > 100 {
		return quoted(s)
	}
	for _, r := range s {
		if r == utf8.RuneError || !strconv.IsPrint(r) || r == ',' {
			return strconv.Quote(s)
		}
	}
	return s
}

// quoted quotes an entry name for a message, shortened when it is long:
// a hostile name must not turn the message into a wall of text.
func quoted(name string) string {
	const maxBytes = 100
	if len(name) <= maxBytes {
		return strconv.Quote(name)
	}
	cut := maxBytes
	for cut > 0 && !utf8.RuneStart(name[cut]) {
		cut--
	}
	return strconv.Quote(name[:cut]) + "…"
}

// cleanEntryName turns a zip entry name into a clean relative path, or
// refuses it when it could land outside the extraction directory. Windows
// tools write backslashes as separators, so they are read as separators,
// and a ".." hidden behind one is refused like any other.
func cleanEntryName(raw string) (string, error) {
	unsafe := func(why string) error {
		return newError(CodeZipUnsafePath,
			"entry %s %s; zip the project folder with a standard zip tool and upload it again", quoted(raw), why)
	}
	if raw == "" {
		return "", unsafe("has an empty name")
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c < 0x20 || c == 0x7f {
			return "", unsafe("has a control character in its name")
		}
	}
	name := strings.ReplaceAll(raw, `\`, "/")
	if strings.HasPrefix(name, "/") {
		return "", unsafe("is an absolute path")
	}
	if len(name) >= 2 && name[1] == ':' && isASCIILetter(name[0]) {
		return "", unsafe("starts with a drive letter")
	}
	var parts []string
	for _, part := range strings.Split(name, "/") {
		switch {
		case part == "" || part == ".":
			continue
		case part == "..":
			return "", unsafe(`climbs out of its folder with ".."`)
		case len(part) > 255:
			return "", unsafe("has a name longer than 255 bytes")
		}
		parts = append(parts, part)
	}
	clean := strings.Join(parts, "/")
	if len(clean) > 1024 {
		return "", unsafe("has a path longer than 1024 bytes")
	}
	return clean, nil
}

func isASCIILetter(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

func modeKind(t fs.FileMode) string {
	switch {
	case t&fs.ModeSymlink != 0:
		return "a symbolic link"
	case t&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case t&fs.ModeSocket != 0:
		return "a socket"
	case t&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

func methodName(m uint16) string {
	switch m {
	case 9:
		return "deflate64"
	case 12:
		return "bzip2"
	case 14:
		return "lzma"
	case 93:
		return "zstd"
	case 95:
		return "xz"
	case 98:
		return "ppmd"
	}
	return "unknown"
}

// bombRatio reports whether an entry of size bytes stored in compressed
// bytes expands more than real data does.
func bombRatio(size, compressed uint64, lim ZipLimits) bool {
	if size <= uint64(lim.BombMinBytes) {
		return false
	}
	return compressed == 0 || float64(size)/float64(compressed) > lim.BombRatio
}

func bombError(name string, size, compressed uint64, lim ZipLimits) *Error {
	ratio := "without limit"
	if compressed > 0 {
		ratio = fmt.Sprintf("%.0f times", float64(size)/float64(compressed))
	}
	return newError(CodeZipBomb,
		"entry %s expands from %s to %s, %s, over the limit of %.0f times that marks a zip bomb; if the file is genuine, zip it without compression (zip -0) or leave it out",
		quoted(name), byteSize(compressed), byteSize(size), ratio, lim.BombRatio)
}

// span is the bytes of the zip file that an entry is stored in.
type span struct {
	start, end int64
	f          *zip.File
}

// checkLayout refuses a zip whose entries share bytes, or whose data lies
// where no entry's can. Each entry's ratio bounds what its own bytes unpack
// to, but nothing in the format stops a thousand records of the table of
// contents from pointing at the same small stream: each passes on its own
// and the stream is unpacked a thousand times. Zip tools store every entry
// in bytes of its own, and when no two entries share a byte, no byte of
// the zip is unpacked twice.
//
// An entry's span runs from its local header to the end of its data.
// archive/zip tells only where the data starts, behind the header's name
// and extra field, so the span starts at the header's fixed 30 bytes just
// before it: within the real span, so that entries of a sound zip never
// seem to overlap, yet two records of one local header, even of an empty
// file, always do.
func checkLayout(z *zipFile) error {
	contents := tableStart(z.r, z.size)
	spans := make([]span, 0, len(z.r.File))
	for _, f := range z.r.File {
		data, err := f.DataOffset()
		if err != nil {
			if z.src.ioErr != nil {
				return fmt.Errorf("blendfile: reading the local header of entry %q: %w", f.Name, z.src.ioErr)
			}
			return newError(CodeCorruptZip,
				"entry %s is not where the zip's table of contents says (%v); the zip is damaged or was cut short, zip the project again and upload it",
				quoted(f.Name), err)
		}
		// The sizes are the zip's own and may be anything: compared
		// before they are added, so that the sum cannot wrap.
		if data > z.size || f.CompressedSize64 > uint64(z.size-data) {
			return newError(CodeCorruptZip,
				"entry %s declares %s of data that would run past the end of the file; the zip is damaged or was cut short, zip the project again and upload it",
				quoted(f.Name), byteSize(f.CompressedSize64))
		}
		end := data + int64(f.CompressedSize64)
		if end > contents {
			return newError(CodeCorruptZip,
				"entry %s declares %s of data that would run into the zip's table of contents; the zip is damaged, zip the project again and upload it",
				quoted(f.Name), byteSize(f.CompressedSize64))
		}
		spans = append(spans, span{start: data - 30, end: end, f: f})
	}
	// Sorted by start, spans that do not overlap each end before the next
	// begins, so comparing neighbours finds any overlap. The stable sort
	// names entries that start together in zip order.
	slices.SortStableFunc(spans, func(a, b span) int { return cmp.Compare(a.start, b.start) })
	for i := 1; i < len(spans); i++ {
		if prev, s := spans[i-1], spans[i]; s.start < prev.end {
			return newError(CodeZipBomb,
				"entries %s and %s are stored in the same bytes of the zip, which zip tools never do and zip bombs do to unpack the same data many times; zip the project folder again with a standard zip tool and upload it",
				quoted(prev.f.Name), quoted(s.f.Name))
		}
	}
	return nil
}

// tableStart returns the latest offset at which the zip's table of
// contents can start: its records, which archive/zip reads one after the
// other, lie before the 22-byte end record and its comment. Any bytes
// between them (zip64's end records) only move the real start earlier.
func tableStart(r *zip.Reader, size int64) int64 {
	start := size - 22 - int64(len(r.Comment))
	for _, f := range r.File {
		start -= 46 + int64(len(f.Name)+len(f.Extra)+len(f.Comment))
	}
	return start
}

// byteSize formats n bytes for a message.
func byteSize(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	v := float64(n)
	for _, suffix := range []string{"KiB", "MiB", "GiB", "TiB"} {
		v /= unit
		if v < unit {
			return fmt.Sprintf("%.1f %s", v, suffix)
		}
	}
	return fmt.Sprintf("%.1f PiB", v/unit)
}

// zipFile is an open zip and what it is read through.
type zipFile struct {
	f    *os.File
	src  *zipSource
	r    *zip.Reader
	size int64 // of the file
}

func (z *zipFile) close() { z.f.Close() }

// openZip opens the zip at zipPath and parses its central directory.
// archive/zip keeps every directory record in memory and reads records past
// the count the zip declares, so the parse is held to a byte budget that
// fits lim.MaxEntries generous records: a hostile directory cannot make it
// allocate without bound before the entry count is known.
func openZip(zipPath string, lim ZipLimits) (*zipFile, error) {
	f, err := openRegular(zipPath)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("blendfile: %w", err)
	}
	src := &zipSource{f: f, budget: directoryBudget(lim)}
	r, err := zip.NewReader(src, fi.Size())
	if errors.Is(err, zip.ErrInsecurePath) {
		err = nil // names are checked more strictly by cleanEntryName
	}
	if err != nil {
		defer f.Close()
		switch {
		case src.ioErr != nil:
			return nil, fmt.Errorf("blendfile: reading %s: %w", zipPath, src.ioErr)
		case src.overBudget:
			return nil, newError(CodeZipTooManyEntries,
				"the zip's table of contents is larger than %s, more than %d entries could need; leave out what the render does not need and zip again",
				byteSize(uint64(directoryBudget(lim))), lim.MaxEntries)
		}
		return nil, corruptZipError(f, err)
	}
	src.budget = -1 // entry data is bounded by the checks on each entry
	return &zipFile{f: f, src: src, r: r, size: fi.Size()}, nil
}

// directoryBudget allows 2 KiB per entry (a record is 46 bytes plus name,
// extra fields and comment, rarely over 500) and 1 MiB for the end records
// archive/zip searches for.
func directoryBudget(lim ZipLimits) int64 {
	const perEntry, fixed = 2 << 10, 1 << 20
	if int64(lim.MaxEntries) > (math.MaxInt64-fixed)/perEntry {
		return -1
	}
	return fixed + int64(lim.MaxEntries)*perEntry
}

func corruptZipError(f *os.File, err error) *Error {
	start := make([]byte, sniffSize)
	n, _ := f.ReadAt(start, 0)
	start = start[:n]
	var found string
	switch {
	case n == 0:
		return newError(CodeCorruptZip, "the file is empty; upload the project zip again")
	case bytes.HasPrefix(start, blenderMagic), bytes.HasPrefix(start, zstdMagic), bytes.HasPrefix(start, gzipMagic):
		found = "it looks like a .blend file, which is uploaded with fileType blend"
	case bytes.HasPrefix(start, []byte("PK")):
		found = "it starts like a zip, but its table of contents is missing or damaged, as when an upload is cut short"
	default:
		found = "found " + describe(start)
	}
	return newError(CodeCorruptZip,
		"the file is not a readable zip archive (%v; %s); zip the project folder again and upload it", err, found)
}

// zipSource is the zip file as archive/zip reads it. It holds the central
// directory parse to a budget, and remembers read failures so that they are
// not blamed on the upload.
type zipSource struct {
	f          *os.File
	budget     int64 // bytes left to read; negative for no limit
	overBudget bool
	ioErr      error
}

var (
	errDirectoryBudget = errors.New("zip central directory over budget")
	errNegativeOffset  = errors.New("zip header points before the start of the file")
)

func (s *zipSource) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		// Offsets come from the zip's own headers, so this is the zip's
		// fault, and must not be recorded as a failure of the disk.
		return 0, errNegativeOffset
	}
	if s.budget >= 0 {
		if int64(len(p)) > s.budget {
			s.overBudget = true
			return 0, errDirectoryBudget
		}
		s.budget -= int64(len(p))
	}
	n, err := s.f.ReadAt(p, off)
	if err != nil && err != io.EOF && s.ioErr == nil {
		s.ioErr = err
	}
	return n, err
}

// prepareDest makes sure destDir is an empty directory. It returns the
// topmost directory it had to create, for removal on failure, or "".
func prepareDest(destDir string) (string, error) {
	fi, err := os.Stat(destDir)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return "", fmt.Errorf("blendfile: extraction target %s is not a directory", destDir)
		}
		d, err := os.Open(destDir)
		if err != nil {
			return "", fmt.Errorf("blendfile: %w", err)
		}
		names, err := d.Readdirnames(1)
		d.Close()
		if len(names) > 0 {
			return "", fmt.Errorf("blendfile: extraction target %s is not empty", destDir)
		}
		if err != nil && err != io.EOF {
			return "", fmt.Errorf("blendfile: %w", err)
		}
		return "", nil
	case errors.Is(err, fs.ErrNotExist):
		top := filepath.Clean(destDir)
		for {
			parent := filepath.Dir(top)
			if parent == top {
				break
			}
			if _, err := os.Lstat(parent); err == nil {
				break
			}
			top = parent
		}
		if err := os.MkdirAll(destDir, 0o755); err != nil {
			return "", fmt.Errorf("blendfile: %w", err)
		}
		return top, nil
	}
	return "", fmt.Errorf("blendfile: %w", err)
}

// extractor writes entries below root, counting the real bytes.
type extractor struct {
	root  *os.Root
	src   *zipSource
	lim   ZipLimits
	buf   []byte
	total int64
}

func (x *extractor) file(e entry) error {
	name := filepath.FromSlash(e.name)
	if dir := filepath.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("blendfile: creating folder for %q: %w", e.name, err)
		}
	}
	raw, err := e.f.OpenRaw()
	if err != nil {
		return x.dataError(e, err)
	}
	// The raw stream is decompressed here rather than by archive/zip so
	// that every byte passes the counting below before it is accepted.
	data := raw
	if e.f.Method == zip.Deflate {
		fr := flate.NewReader(raw)
		defer fr.Close()
		data = fr
	}
	// O_EXCL never follows a symbolic link in the last element, and the
	// root refuses to leave destDir through one in the others.
	out, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("blendfile: creating %q: %w", e.name, err)
	}
	err = x.copy(out, data, e)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("blendfile: writing %q: %w", e.name, cerr)
	}
	return err
}

func (x *extractor) copy(out *os.File, data io.Reader, e entry) error {
	declared := e.f.UncompressedSize64
	crc := crc32.NewIEEE()
	var n uint64
	for {
		k, rerr := data.Read(x.buf)
		if k > 0 {
			n += uint64(k)
			x.total += int64(k)
			switch {
			case n > declared:
				return newError(CodeZipBomb,
					"entry %s unpacks to more than the %s its header declares, as zip bombs do; zip the project again with a standard zip tool",
					quoted(e.f.Name), byteSize(declared))
			case bombRatio(n, e.f.CompressedSize64, x.lim):
				return bombError(e.f.Name, n, e.f.CompressedSize64, x.lim)
			case x.total > x.lim.MaxTotalBytes:
				return newError(CodeZipTooLarge,
					"the zip's files unpack to more than %s, the farm's limit (reached at entry %s); leave out what the render does not need and zip again",
					byteSize(uint64(x.lim.MaxTotalBytes)), quoted(e.f.Name))
			}
			crc.Write(x.buf[:k])
			if _, err := out.Write(x.buf[:k]); err != nil {
				return fmt.Errorf("blendfile: writing %q: %w", e.name, err)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return x.dataError(e, rerr)
		}
	}
	if n != declared {
		return newError(CodeCorruptZip,
			"entry %s holds %d bytes where its header declares %d; the zip is damaged or was cut short, zip the project again and upload it",
			quoted(e.f.Name), n, declared)
	}
	// archive/zip skips the check for a zero CRC too: some writers leave
	// it out of the directory.
	if e.f.CRC32 != 0 && crc.Sum32() != e.f.CRC32 {
		return newError(CodeCorruptZip,
			"entry %s fails its checksum, so the zip is damaged; zip the project again and upload it", quoted(e.f.Name))
	}
	return nil
}

// dataError classifies a failure to read an entry's data: the farm's disk
// or the zip's content.
func (x *extractor) dataError(e entry, err error) error {
	if x.src.ioErr != nil {
		return fmt.Errorf("blendfile: reading entry %q: %w", e.name, x.src.ioErr)
	}
	return newError(CodeCorruptZip,
		"entry %s cannot be unpacked (%v); the zip is damaged or was cut short, zip the project again and upload it", quoted(e.f.Name), err)
}
