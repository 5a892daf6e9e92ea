package node

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
)

// A container's memory is its cgroup's limit, not the machine's: a
// worker in a pod limited to 8 GiB on a 24 GiB machine that offered 24
// GiB would take jobs its limit cannot hold, and Blender would die to the
// OOM killer. The files are the kernel's, but they are parsed strictly
// (numbers alone) and any that cannot be read is passed over: a cgroup
// that cannot be read must not stop a worker from starting.

// cgroupVersion tells the two hierarchies apart: their files differ.
type cgroupVersion int

const (
	cgroupV1 cgroupVersion = 1
	cgroupV2 cgroupVersion = 2
)

// limitFile is the file a cgroup of the version states its memory limit in.
func (v cgroupVersion) limitFile() string {
	if v == cgroupV1 {
		return "memory.limit_in_bytes"
	}
	return "memory.max"
}

// cgroupV1Unlimited is where a cgroup v1 limit stops being one: v1 says
// "no limit" with the largest page-aligned count it holds
// (9223372036854771712 with 4 KiB pages, a little less with larger
// pages, 9223372036854775807 on old kernels). No machine has an EiB.
const cgroupV1Unlimited = 1 << 60

// cgroupMount is a cgroup hierarchy mounted: root is the cgroup at the
// mount point, as /proc/self/cgroup names cgroups.
type cgroupMount struct {
	version cgroupVersion
	root    string
	point   string
}

// cgroupLimit is a memory limit read from a cgroup's file.
type cgroupLimit struct {
	bytes int64
	file  string
}

// Bounds on what is read of each file: far beyond any real one
// (mountinfo grows with the mounts; a Kubernetes node's has a few
// thousand lines), so that a file that runs away costs no more.
const (
	maxProcFileBytes   = 4 << 20
	maxLimitFileBytes  = 64
	maxCgroupPathDepth = 64
)

// cgroupMemoryLimit is the least memory limit of the cgroups this process
// is in, read under root (the file system's root: os.DirFS("/")): its own
// cgroup's and those of its ancestors that the mounts show, in both
// hierarchies. ok is false when no cgroup has a limit, or none could be
// read; notes say which files could not be, for the log.
func cgroupMemoryLimit(root fs.FS) (limit cgroupLimit, ok bool, notes []string) {
	self, err := readSmallFile(root, "proc/self/cgroup", maxProcFileBytes)
	if err != nil {
		return cgroupLimit{}, false, []string{err.Error()}
	}
	mountinfo, err := readSmallFile(root, "proc/self/mountinfo", maxProcFileBytes)
	if err != nil {
		return cgroupLimit{}, false, []string{err.Error()}
	}
	paths := parseProcCgroup(self)
	for _, m := range parseMountinfo(mountinfo) {
		p, in := paths[m.version]
		if !in {
			continue
		}
		for _, dir := range cgroupDirs(m, p) {
			file := path.Join(dir, m.version.limitFile())
			bytes, set, err := readCgroupLimit(root, m.version, file)
			if err != nil {
				notes = append(notes, err.Error())
				continue
			}
			if set && (!ok || bytes < limit.bytes) {
				limit, ok = cgroupLimit{bytes: bytes, file: "/" + file}, true
			}
		}
	}
	return limit, ok, notes
}

// parseProcCgroup reads /proc/self/cgroup: the process's cgroup in the
// unified hierarchy ("0::/path") and in v1's memory hierarchy
// ("4:memory:/path"; a hierarchy may hold more controllers,
// "4:cpu,memory:/path"). A path that is not absolute and clean (the
// kernel writes "/../x" for a cgroup outside the process's cgroup
// namespace) names no directory this process can find, and is left out.
func parseProcCgroup(content string) map[cgroupVersion]string {
	paths := make(map[cgroupVersion]string)
	for line := range strings.Lines(content) {
		id, rest, ok1 := strings.Cut(strings.TrimSuffix(line, "\n"), ":")
		controllers, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !cleanAbsolute(p) {
			continue
		}
		switch {
		case id == "0" && controllers == "":
			paths[cgroupV2] = p
		case id != "0" && isDigits(id) && hasElement(controllers, "memory"):
			paths[cgroupV1] = p
		}
	}
	return paths
}

// parseMountinfo finds the cgroup hierarchies in /proc/self/mountinfo:
// every cgroup2 mount, and the cgroup (v1) mounts of the memory
// controller. A line is "ID PARENT MAJOR:MINOR ROOT POINT OPTIONS
// [OPTIONAL...] - TYPE SOURCE SUPER-OPTIONS"; one that is not is passed
// over.
func parseMountinfo(content string) []cgroupMount {
	var mounts []cgroupMount
	for line := range strings.Lines(content) {
		fields := strings.Split(strings.TrimSuffix(line, "\n"), " ")
		dash := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				dash = i
				break
			}
		}
		if dash < 0 || dash+3 >= len(fields) {
			continue
		}
		var version cgroupVersion
		switch fstype := fields[dash+1]; {
		case fstype == "cgroup2":
			version = cgroupV2
		case fstype == "cgroup" && hasElement(fields[dash+3], "memory"):
			version = cgroupV1
		default:
			continue
		}
		root, ok1 := unescapeMountinfo(fields[3])
		point, ok2 := unescapeMountinfo(fields[4])
		if !ok1 || !ok2 || !cleanAbsolute(root) || !cleanAbsolute(point) {
			continue
		}
		mounts = append(mounts, cgroupMount{version: version, root: root, point: point})
	}
	return mounts
}

// cgroupDirs are the directories, relative to the file system's root, of
// the cgroup at p and of its ancestors up to the mount's root, the
// process's own first; none when p is not under the mount's root (a
// mount of another part of the hierarchy).
func cgroupDirs(m cgroupMount, p string) []string {
	var rel string
	switch {
	case m.root == "/":
		rel = p
	case p == m.root:
		rel = "/"
	case strings.HasPrefix(p, m.root+"/"):
		rel = p[len(m.root):]
	default:
		return nil
	}
	var dirs []string
	for {
		dir := strings.TrimPrefix(path.Join(m.point, rel), "/")
		if dir == "" {
			dir = "."
		}
		if !fs.ValidPath(dir) || len(dirs) == maxCgroupPathDepth {
			return dirs
		}
		dirs = append(dirs, dir)
		if rel == "/" {
			return dirs
		}
		rel = path.Dir(rel)
	}
}

// readCgroupLimit reads a cgroup's memory limit from file. A missing file
// is no limit (the root cgroup has none; a v2 cgroup without the memory
// controller neither).
func readCgroupLimit(root fs.FS, version cgroupVersion, file string) (bytes int64, set bool, err error) {
	content, err := readSmallFile(root, file, maxLimitFileBytes)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	bytes, set, err = parseCgroupLimit(version, content)
	if err != nil {
		return 0, false, fmt.Errorf("/%s: %w", file, err)
	}
	return bytes, set, nil
}

// parseCgroupLimit reads a memory limit file's content: v2's memory.max
// is a number of bytes or "max", no limit; v1's memory.limit_in_bytes a
// number of bytes, where one past cgroupV1Unlimited is no limit.
func parseCgroupLimit(version cgroupVersion, content string) (bytes int64, set bool, err error) {
	s := strings.TrimSuffix(content, "\n")
	if version == cgroupV2 && s == "max" {
		return 0, false, nil
	}
	if !isDigits(s) {
		return 0, false, fmt.Errorf("memory limit %q is not a number of bytes", truncate(s, 32))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("memory limit %q is not a number of bytes", truncate(s, 32))
	}
	if n >= cgroupV1Unlimited {
		// v2 says "max" for no limit, but a number this large is none
		// either.
		return 0, false, nil
	}
	return int64(n), true, nil
}

// readSmallFile reads at most limit bytes of name; a longer file is an
// error rather than cut short, which could turn a number into another.
func readSmallFile(root fs.FS, name string, limit int64) (string, error) {
	f, err := root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("/%s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return "", fmt.Errorf("/%s: longer than %d bytes", name, limit)
	}
	return string(b), nil
}

// unescapeMountinfo undoes mountinfo's octal escapes of a path's space,
// tab, newline and backslash ("\040"); ok is false for a stray backslash.
func unescapeMountinfo(s string) (string, bool) {
	if !strings.Contains(s, `\`) {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+4 > len(s) {
			return "", false
		}
		n, err := strconv.ParseUint(s[i+1:i+4], 8, 8)
		if err != nil {
			return "", false
		}
		b.WriteByte(byte(n))
		i += 3
	}
	return b.String(), true
}

// cleanAbsolute reports whether p is an absolute path with no empty, "."
// or ".." elements: one that means what it says.
func cleanAbsolute(p string) bool {
	return path.IsAbs(p) && path.Clean(p) == p
}

// hasElement reports whether the comma-separated list has e.
func hasElement(list, e string) bool {
	for x := range strings.SplitSeq(list, ",") {
		if x == e {
			return true
		}
	}
	return false
}

// isDigits reports whether s is one or more ASCII digits and nothing else.
func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// truncate cuts s to n bytes for an error message.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
