// Package sandbox confines the programs a render node runs on untrusted
// input. Blender opens files that API clients upload; a flaw in Blender or in
// one of the many libraries it reads images with must not hand such a file
// the node's network (the database, the bucket, a cloud metadata service),
// the files of other jobs or the node's credentials.
//
// On Linux, bubblewrap (bwrap) runs the program in new namespaces: no
// network, its own process tree, no capabilities, a read-only view of the
// system and only the directories a run names. Resource limits are set with
// prlimit from util-linux, since Go cannot set rlimits for one child alone.
// Where bubblewrap is missing or does not work, a node refuses to start
// unless its operator asked for --sandbox none, which runs programs
// unconfined but still limited.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mode says whether programs run inside bubblewrap.
type Mode string

const (
	// Auto, the default, confines programs with bubblewrap and, like Bwrap,
	// refuses to start when bubblewrap is missing or does not work here,
	// saying what failed and how to fix it. A node never falls back to
	// running hostile files unconfined by itself: that takes None, asked
	// for by name.
	Auto Mode = "auto"
	// Bwrap insists on bubblewrap: a node that cannot confine Blender does
	// not start.
	Bwrap Mode = "bwrap"
	// None runs programs unconfined, with the resource limits only: for a
	// machine where bubblewrap cannot work and whose operator accepts that
	// a hostile file which exploits Blender or ffmpeg gets the node's
	// network, files and credentials.
	None Mode = "none"
)

// ParseMode reads a --sandbox value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Bwrap, None:
		return m, nil
	}
	return "", fmt.Errorf("sandbox must be auto, bwrap or none, not %q", s)
}

// Config says how to confine programs.
type Config struct {
	Mode Mode
	// Bwrap is the bubblewrap executable; "" looks for bwrap on PATH.
	Bwrap string
	// MemoryBytes caps each program's data segment (RLIMIT_DATA: heap and
	// private anonymous memory, what a scene's memory grows); 0 sets no
	// limit. RLIMIT_AS would also count shared libraries and reserved
	// address space, about twice the data segment for Blender.
	MemoryBytes int64
	// OpenFiles caps each program's open files (RLIMIT_NOFILE); 0 keeps the
	// node's limit.
	OpenFiles int
}

// Paths are the directories one run of a program uses besides the read-only
// system: each appears inside the sandbox at its own path.
type Paths struct {
	ReadOnly []string
	Writable []string
}

// Sandbox turns a command line into one that runs confined. The nil
// *Sandbox runs commands as they are.
type Sandbox struct {
	bwrap   string   // "" when programs run unconfined
	nsArgs  []string // the namespace options this bwrap accepted
	guard   string   // bash, to check the lifeline; "" for none
	prlimit string   // "" when no limit is set
	memory  int64
	files   int
	// root, when set, is a root file system whose system directories and
	// /etc files the program sees instead of the host's (see InRoot).
	root string
	// why bubblewrap is not used, for the log.
	unconfined string
}

// probeTimeout bounds the trial run of bubblewrap at start.
const probeTimeout = 10 * time.Second

// LifelineFD is the file descriptor on which a confined program expects the
// read end of a pipe whose write end its caller holds open until the
// program has exited. bubblewrap ties the program's life to its own
// (--die-with-parent) only once the sandbox is set up, and a process's
// parent-death signal fires when the thread that started it ends, which
// can be before the caller's last descriptor is closed: if bubblewrap dies
// while it sets the sandbox up, the program would run on, unwatched. So the
// program starts only while the pipe has not hung up, and is killed when it
// hangs up, whatever became of bubblewrap. Without the descriptor, it runs
// regardless.
const LifelineFD = 3

// Lifeline is the pipe of LifelineFD for one confined program.
type Lifeline struct {
	read, write *os.File
}

// Lifeline hands cmd, which must have no ExtraFiles yet, the read end of a
// new lifeline pipe when s confines programs: call Started once cmd.Start
// has returned and Close once the program has exited or failed to start.
// It answers nil, whose methods do nothing, when programs run unconfined.
func (s *Sandbox) Lifeline(cmd *exec.Cmd) (*Lifeline, error) {
	if !s.Confined() {
		return nil, nil
	}
	if len(cmd.ExtraFiles) > 0 {
		return nil, errors.New("sandbox: the lifeline must be the command's first extra file")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sandbox: lifeline: %w", err)
	}
	// ExtraFiles start at descriptor 3.
	cmd.ExtraFiles = make([]*os.File, LifelineFD-2)
	cmd.ExtraFiles[LifelineFD-3] = r
	return &Lifeline{read: r, write: w}, nil
}

// Started closes the caller's copy of the read end: the program holds its
// own, and the caller's would keep the pipe from hanging up.
func (l *Lifeline) Started() {
	if l != nil {
		l.read.Close()
	}
}

// Close hangs the lifeline up, once the program has exited or is to be
// killed: a confined program still running is killed then. Closing again
// does nothing.
func (l *Lifeline) Close() {
	if l != nil {
		l.read.Close()
		l.write.Close()
	}
}

// guardScript runs inside the sandbox as its PID 1, around the program. It
// exits at once when the lifeline has hung up (read -t 0 succeeds at end of
// file: nobody writes to it otherwise). Then a watcher blocks on the
// lifeline and, when it hangs up, kills every process of the sandbox but
// PID 1 (kill -1), which ends the program; the shell then exits with the
// program's status (128+N for a death by signal N, as bubblewrap reports
// it), and with PID 1 gone the kernel ends whatever is left of the
// sandbox. The program runs in the foreground, keeping its standard input,
// without the descriptor.
const guardScript = `read -r -t 0 -u 3 2>/dev/null && { echo "sandbox: the process that started this one is gone" >&2; exit 125; }
if [ -e /dev/fd/3 ]; then { read -r -u 3 _; kill -KILL -1; } </dev/null >/dev/null 2>&1 & fi
"$@" 3<&-`

// guardShells are where bash is looked for: it has to be in the sandbox's
// view of the system, and the guard needs its read -t.
var guardShells = []string{"/usr/bin/bash", "/bin/bash"}

// namespaceArgs are bubblewrap's isolation options, strongest first. The
// user namespace empties the capability bounding set even when the node runs
// as root, and --disable-userns (bubblewrap 0.8) keeps the sandboxed program
// from making namespaces of its own, a common step in kernel exploits; both
// need user namespaces, which some hosts disable, so a second set does
// without them and relies on --cap-drop.
var namespaceArgs = [][]string{
	{"--unshare-user", "--disable-userns", "--cap-drop", "ALL"},
	{"--cap-drop", "ALL"},
}

// commonArgs isolate everything but the user namespace. The network
// namespace holds only a loopback interface of its own; the PID namespace
// hides the node's processes; the host name is replaced because Blender can
// stamp it into the images it saves.
//
// What bubblewrap starts runs as PID 1 of its namespace (--as-pid-1): the
// guard (see guardScript) where bash is found, else the program itself.
// bubblewrap's own init would otherwise be left behind as a zombie at every
// exit, for the node's init to reap, and a worker that is PID 1 of a
// container never does. --new-session is left out: it would move the
// program out of the process group its runner kills (the runner starts
// every command in a session of its own instead). --die-with-parent kills
// the sandbox when bubblewrap dies, once it is set up (LifelineFD covers
// the rest).
var commonArgs = []string{
	"--unshare-net", "--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try",
	"--hostname", "renderfarm",
	"--as-pid-1", "--die-with-parent",
}

// New prepares a Sandbox for cfg, trying bubblewrap once so that a broken
// installation is found at start and not at the first render.
func New(ctx context.Context, cfg Config) (*Sandbox, error) {
	s := &Sandbox{memory: cfg.MemoryBytes, files: cfg.OpenFiles}
	if cfg.MemoryBytes < 0 || cfg.OpenFiles < 0 {
		return nil, errors.New("sandbox: limits cannot be negative")
	}
	if s.memory > 0 || s.files > 0 {
		path, err := exec.LookPath("prlimit")
		if err != nil {
			return nil, fmt.Errorf("sandbox: prlimit (util-linux) is needed to limit memory and open files: %w", err)
		}
		s.prlimit = path
	}
	mode := cfg.Mode
	if mode == "" {
		mode = Auto
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if mode == None {
		s.unconfined = "--sandbox none"
		return s, nil
	}
	bin := cfg.Bwrap
	if bin == "" {
		bin = "bwrap"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return nil, fmt.Errorf("sandbox: bubblewrap (%s) is not installed: %v; "+
			"install it (apt-get install bubblewrap) or point --bwrap at it, "+
			"or pass --sandbox none to run Blender and ffmpeg unconfined", bin, err)
	}
	for _, sh := range guardShells {
		if fi, err := os.Stat(sh); err == nil && fi.Mode().IsRegular() {
			s.guard = sh
			break
		}
	}
	var failures []string
	for _, ns := range namespaceArgs {
		s.bwrap, s.nsArgs = path, ns
		err := s.probe(ctx)
		if err == nil {
			return s, nil
		}
		failures = append(failures, err.Error())
	}
	return nil, fmt.Errorf("sandbox: bubblewrap (%s) does not work here: %s; "+
		"fix user namespaces (on Debian: sysctl kernel.unprivileged_userns_clone=1; "+
		"in a container, a security profile that lets bubblewrap create namespaces and mount /proc), "+
		"or pass --sandbox none to run Blender and ffmpeg unconfined",
		path, strings.Join(slices.Compact(failures), "; "))
}

// probe runs true inside the sandbox.
func (s *Sandbox) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	argv := s.Command([]string{"true"}, Paths{})
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if msg == "" {
			msg = err.Error()
		}
		return errors.New(msg)
	}
	return nil
}

// InRoot answers a Sandbox like s whose programs see root, a root file
// system (a Debian installed with debootstrap, say), as their system: its
// /usr, /bin, /lib… and its /etc files take the place of the host's, and
// the guard shell is its own. The run's directories are bound in as
// always, and /dev, /proc, the processor count and the limits are the
// host's. It is how the farm runs a Blender its host's distribution does
// not package: Debian 13's Blender 4.3 on Debian 12, with the libraries
// it was built for. A program path is then a path in root. Only a confined
// Sandbox can do this: bubblewrap makes the root.
func (s *Sandbox) InRoot(root string) (*Sandbox, error) {
	if !s.Confined() {
		return nil, fmt.Errorf("sandbox: a program installed in the root file system %s runs only inside bubblewrap; drop --sandbox none", root)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	if fi, err := os.Stat(filepath.Join(abs, "usr")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("sandbox: %s is not a root file system: it has no usr directory", root)
	}
	rooted := *s
	rooted.root = abs
	rooted.guard = ""
	for _, sh := range guardShells {
		// The shell's path in the root, which may lead through the
		// root's own symbolic links (bin -> usr/bin).
		if fi, err := os.Stat(filepath.Join(abs, sh)); err == nil && fi.Mode().IsRegular() {
			rooted.guard = sh
			break
		}
	}
	return &rooted, nil
}

// Root is the root file system programs see as their system, "" for the
// host's.
func (s *Sandbox) Root() string {
	if s == nil {
		return ""
	}
	return s.root
}

// Confined reports whether programs run inside bubblewrap.
func (s *Sandbox) Confined() bool { return s != nil && s.bwrap != "" }

// MemoryLimit is the data segment limit in bytes, 0 for none, so that a
// failure can say the program may have run out of it.
func (s *Sandbox) MemoryLimit() int64 {
	if s == nil {
		return 0
	}
	return s.memory
}

// String describes the containment in effect, for the log at start.
func (s *Sandbox) String() string {
	var b strings.Builder
	if s.Confined() {
		fmt.Fprintf(&b, "bubblewrap (%s %s): no network, no capabilities, read-only system, writable only the run's own directories", s.bwrap, strings.Join(s.nsArgs, " "))
		if s.root != "" {
			fmt.Fprintf(&b, "; the system of the root file system %s", s.root)
		}
	} else {
		b.WriteString("unconfined")
		if s != nil && s.unconfined != "" {
			b.WriteString(" (" + s.unconfined + ")")
		}
	}
	b.WriteString("; memory limit ")
	if s.MemoryLimit() > 0 {
		b.WriteString(formatBytes(s.memory) + " (RLIMIT_DATA)")
	} else {
		b.WriteString("none")
	}
	if s != nil && s.files > 0 {
		fmt.Fprintf(&b, "; open files %d", s.files)
	}
	return b.String()
}

// Command returns the argv that runs argv confined, able to read the system
// and paths.ReadOnly and to write only paths.Writable (and a throwaway /tmp).
// Paths should be absolute and must exist.
func (s *Sandbox) Command(argv []string, paths Paths) []string {
	if s == nil || len(argv) == 0 {
		return argv
	}
	var out []string
	if s.prlimit != "" {
		// prlimit sets the limits on itself and execs the rest, so the
		// limits hold for bwrap and everything it starts, and the pid
		// the runner knows stays the group's leader.
		out = append(out, s.prlimit)
		if s.memory > 0 {
			out = append(out, "--data="+strconv.FormatInt(s.memory, 10))
		}
		if s.files > 0 {
			out = append(out, "--nofile="+strconv.Itoa(s.files))
		}
		out = append(out, "--")
	}
	if s.bwrap == "" {
		return append(out, argv...)
	}
	out = append(out, s.bwrap)
	out = append(out, s.nsArgs...)
	out = append(out, commonArgs...)
	out = append(out, systemView(s.root)...)
	if s.root == "" {
		if dir := programDir(argv[0]); dir != "" {
			out = append(out, "--ro-bind", dir, dir)
		}
	}
	out = append(out, bindArgs(paths)...)
	chdir := "/"
	if len(paths.Writable) > 0 {
		chdir = filepath.Clean(paths.Writable[0])
	}
	// The root, a tmpfs holding the mount points, is read-only too, so
	// the program can write nowhere but its own directories and /tmp.
	out = append(out, "--remount-ro", "/", "--chdir", chdir, "--")
	if s.guard != "" {
		out = append(out, s.guard, "-c", guardScript, "renderfarm-sandbox")
	}
	return append(out, argv...)
}

// systemDirs are bound read-only, or recreated as the symlinks they are on
// merged-/usr systems.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// etcFiles is what of /etc a render needs: the dynamic linker's cache,
// Debian's alternatives (BLAS and other libraries are chosen through them),
// user and time-zone lookups, EGL and Mesa configuration for EEVEE and
// Workbench, fonts. The rest of /etc (the node's configuration, its keys)
// stays out.
var etcFiles = []string{
	"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives",
	"passwd", "group", "nsswitch.conf", "hosts", "host.conf",
	"localtime", "timezone", "mime.types",
	"glvnd", "drirc", "fonts",
}

// sysDirs tell programs how many processors and memory nodes there are:
// Blender sizes its thread pools from them. The rest of /sys stays out.
var sysDirs = []string{"/sys/devices/system/cpu", "/sys/devices/system/node"}

// systemView is the read-only system a program sees: the host's, or
// root's when it is set (a path of the host, absolute). The kernel's
// views (/dev, /proc, the processors in /sys) are the host's either way.
func systemView(root string) []string {
	var args []string
	for _, dir := range systemDirs {
		src := root + dir
		fi, err := os.Lstat(src)
		switch {
		case err != nil:
		case fi.Mode()&os.ModeSymlink != 0:
			// Merged /usr: /bin -> usr/bin, relative in the root as on
			// the host, and made the same inside.
			if target, err := os.Readlink(src); err == nil {
				args = append(args, "--symlink", target, dir)
			}
		case fi.IsDir():
			args = append(args, "--ro-bind", src, dir)
		}
	}
	for _, name := range etcFiles {
		args = append(args, "--ro-bind-try", root+"/etc/"+name, "/etc/"+name)
	}
	// Blender lists mounted file systems at start and complains without
	// /etc/mtab.
	args = append(args, "--symlink", "../proc/self/mounts", "/etc/mtab")
	for _, dir := range sysDirs {
		args = append(args, "--ro-bind-try", dir, dir)
	}
	return append(args, "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp")
}

// programDir is the directory of the program to bind read-only when it is
// installed outside the system directories, as Blender's own builds are
// (/opt/blender-4.2/blender next to its 4.2/ data): "" when the system view
// already holds it or it cannot be found.
func programDir(name string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return ""
	}
	if path, err = filepath.Abs(path); err != nil {
		return ""
	}
	if real, err := filepath.EvalSymlinks(path); err == nil {
		path = real
	}
	for _, dir := range systemDirs {
		if strings.HasPrefix(path, dir+"/") {
			return ""
		}
	}
	return filepath.Dir(path)
}

// bindArgs binds the run's paths, parents before the paths inside them (a
// later mount hides what is under it), and at equal paths the read-only bind
// last, so it wins.
func bindArgs(paths Paths) []string {
	type bind struct {
		path     string
		writable bool
	}
	var binds []bind
	for _, p := range paths.ReadOnly {
		binds = append(binds, bind{filepath.Clean(p), false})
	}
	for _, p := range paths.Writable {
		binds = append(binds, bind{filepath.Clean(p), true})
	}
	slices.SortStableFunc(binds, func(a, b bind) int {
		if d := strings.Count(a.path, "/") - strings.Count(b.path, "/"); d != 0 {
			return d
		}
		if a.path != b.path {
			return strings.Compare(a.path, b.path)
		}
		switch {
		case a.writable == b.writable:
			return 0
		case a.writable:
			return -1
		}
		return 1
	})
	var args []string
	for i, b := range binds {
		if i > 0 && binds[i-1] == b {
			continue
		}
		opt := "--ro-bind"
		if b.writable {
			opt = "--bind"
		}
		args = append(args, opt, b.path, b.path)
	}
	return args
}

// formatBytes writes n in the largest binary unit, with one decimal where
// it matters: 8 GiB, 1.5 GiB.
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0") + " " + units[i]
}
