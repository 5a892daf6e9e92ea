package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/node"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// DefaultBlenderRoots is where the farm looks for Blenders installed as
// root file systems of their own (each directory with usr/bin/blender
// inside) when no --blender is given: scripts/lib.sh installs Debian 13's
// Blender 4.3 there.
const DefaultBlenderRoots = "/opt/renderfarm/blender"

// rootBlender is where a Blender installed as a root file system is, in
// that root: the sandbox makes the root / for it.
const rootBlender = "/usr/bin/blender"

// blenderInstall is one Blender a node runs, as --blender named it or the
// default places held it.
type blenderInstall struct {
	// from is what names it: the executable, or the root file system.
	from string
	// root is set for a Blender installed as a root file system.
	root    string
	runner  *blender.Runner
	version string
}

// blenderRunners makes a Runner for every Blender the config names (or,
// with no --blender, every one found in the default places), contained
// as --sandbox says, and reads each one's version, which the node offers
// and the log shows; a Blender that does not start stops the process,
// naming it. The node confines ffmpeg with the host's sandbox, which
// blenderRunners answers too. A confined Blender reads its own job's
// directory in the node's work directory.
func (c Config) blenderRunners(ctx context.Context, log *slog.Logger) ([]blenderInstall, *sandbox.Sandbox, error) {
	// Blender runs in its own run directory, so every path it is given
	// must be absolute: --data-dir defaults to a relative one.
	workDir, err := filepath.Abs(c.workDir())
	if err != nil {
		return nil, nil, err
	}
	mode, err := sandbox.ParseMode(c.SandboxMode)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --%v", ErrUsage, err)
	}
	sb, err := sandbox.New(ctx, sandbox.Config{Mode: mode, Bwrap: c.BwrapBinary,
		MemoryBytes: c.BlenderMemoryBytes, OpenFiles: c.BlenderOpenFiles})
	if err != nil {
		return nil, nil, err
	}
	if !sb.Confined() {
		log.Warn("Blender and ffmpeg run UNCONFINED (--sandbox none): a hostile file that exploits either gets this node's network, its files and its credentials; install bubblewrap and drop --sandbox none",
			"sandbox", sb.String())
	}
	log.Info("blender and ffmpeg containment", "sandbox", sb.String(), "frameTimeout", c.FrameTimeout, "autoexec", "disabled")

	installs, err := c.blenderInstalls(sb, log)
	if err != nil {
		return nil, nil, err
	}
	tempDir := filepath.Join(workDir, "tmp")
	for i := range installs {
		in := &installs[i]
		runSandbox := sb
		binary := in.from
		if in.root != "" {
			if runSandbox, err = sb.InRoot(in.root); err != nil {
				return nil, nil, err
			}
			binary = rootBlender
		}
		// Blender's run directories (scripts, results, its TMPDIR) go in
		// the work directory rather than the system's, so that those a
		// killed process left are found and removed at the next start.
		in.runner = &blender.Runner{Binary: binary, Threads: c.BlenderThreads,
			Sandbox: runSandbox, JobsDir: workDir, FrameTimeout: c.FrameTimeout, TempDir: tempDir}
	}
	removed, err := installs[0].runner.ClaimTempDir()
	if err != nil {
		return nil, nil, err
	}
	if removed > 0 {
		log.Info("removed Blender run directories left by a process that was killed", "count", removed, "dir", tempDir)
	}
	for _, in := range installs[1:] {
		// Shares the first one's directory: the claim only takes the
		// directory's lock again, for this runner's life.
		if _, err := in.runner.ClaimTempDir(); err != nil {
			return nil, nil, err
		}
	}
	if err := readVersions(ctx, installs); err != nil {
		return nil, nil, err
	}
	installs = dropRepeatedVersions(installs, log)
	for _, in := range installs {
		log.Info("blender found", "version", in.version, "from", in.from)
	}
	return installs, sb, nil
}

// blenderInstalls lists the Blenders to run: every --blender, each an
// executable or a directory that is a root file system with usr/bin/blender
// inside; with none given, `blender` on PATH and every root under
// --blender-roots. A root runs only inside bubblewrap: one named with
// --sandbox none stops the process, one found in the default place is
// left out with a warning.
func (c Config) blenderInstalls(sb *sandbox.Sandbox, log *slog.Logger) ([]blenderInstall, error) {
	var installs []blenderInstall
	for _, given := range c.Blenders {
		in, err := namedBlender(given)
		if err != nil {
			return nil, err
		}
		if in.root != "" && !sb.Confined() {
			return nil, fmt.Errorf("%w: --blender %s is a root file system, which Blender runs in only inside bubblewrap; drop --sandbox none, or give a Blender executable instead", ErrUsage, given)
		}
		installs = append(installs, in)
	}
	if len(c.Blenders) > 0 {
		return installs, nil
	}
	if path, err := exec.LookPath("blender"); err == nil {
		installs = append(installs, blenderInstall{from: path})
	}
	roots, err := blenderRoots(c.BlenderRoots)
	if err != nil {
		return nil, err
	}
	for _, root := range roots {
		if !sb.Confined() {
			log.Warn("left out a Blender installed as a root file system: it runs only inside bubblewrap, and --sandbox is none", "root", root)
			continue
		}
		installs = append(installs, blenderInstall{from: root, root: root})
	}
	if len(installs) == 0 {
		return nil, fmt.Errorf("blender is needed to render, and there is none on PATH nor under %s; install it (apt-get install blender), unpack one from blender.org and pass --blender /path/to/blender, or pass --blender-roots DIR", c.BlenderRoots)
	}
	return installs, nil
}

// namedBlender is the Blender a --blender value names: a directory is a
// root file system, which must hold usr/bin/blender; anything else is the
// executable, found on PATH if it names no path.
func namedBlender(given string) (blenderInstall, error) {
	fi, err := os.Stat(given)
	if err == nil && fi.IsDir() {
		root, err := filepath.Abs(given)
		if err != nil {
			return blenderInstall{}, err
		}
		if fi, err := os.Stat(filepath.Join(root, rootBlender)); err != nil || fi.IsDir() {
			return blenderInstall{}, fmt.Errorf("%w: --blender %s is a directory without %s in it: give a Blender executable, or a root file system with Blender at usr/bin/blender", ErrUsage, given, strings.TrimPrefix(rootBlender, "/"))
		}
		return blenderInstall{from: root, root: root}, nil
	}
	path, err := exec.LookPath(given)
	if err != nil {
		return blenderInstall{}, fmt.Errorf("--blender %s: %v; give the path of a Blender executable (an official build: the blender file in the unpacked folder), or a root file system with usr/bin/blender", given, err)
	}
	return blenderInstall{from: path}, nil
}

// blenderRoots lists the root file systems in dir that hold Blender,
// sorted by name; a dir that does not exist holds none.
func blenderRoots(dir string) ([]string, error) {
	if dir == "" {
		return nil, nil
	}
	found, err := filepath.Glob(filepath.Join(dir, "*", strings.TrimPrefix(rootBlender, "/")))
	if err != nil {
		return nil, fmt.Errorf("%w: --blender-roots %s: %v", ErrUsage, dir, err)
	}
	var roots []string
	for _, path := range found {
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			roots = append(roots, filepath.Dir(filepath.Dir(filepath.Dir(path))))
		}
	}
	slices.Sort(roots)
	return roots, nil
}

// readVersions runs `blender --version` of every install at once (each
// takes about a second) and stops at the first that does not start,
// naming it.
func readVersions(ctx context.Context, installs []blenderInstall) error {
	errs := make([]error, len(installs))
	var wg sync.WaitGroup
	for i := range installs {
		wg.Go(func() {
			in := &installs[i]
			in.version, errs[i] = in.runner.Version(ctx)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("the Blender of %s does not start (%v); fix or remove it (--blender), or install Blender (apt-get install blender)", installs[i].from, err)
		}
	}
	return nil
}

// dropRepeatedVersions keeps the first install of each version: the farm
// routes work by version, so two of one version are one.
func dropRepeatedVersions(installs []blenderInstall, log *slog.Logger) []blenderInstall {
	var kept []blenderInstall
	for _, in := range installs {
		if i := slices.IndexFunc(kept, func(k blenderInstall) bool { return k.version == in.version }); i >= 0 {
			log.Warn("left out a second Blender of the same version", "version", in.version, "from", in.from, "kept", kept[i].from)
			in.runner.Close()
			continue
		}
		kept = append(kept, in)
	}
	return kept
}

// nodeInstalls are the node's Blenders: for each, a pool of warm sessions,
// at most one a render slot so that idle sessions never outnumber the
// Blenders the node runs at once, or a Blender for every inspection and
// chunk when --blender-keep-alive is 0.
func (c Config) nodeInstalls(installs []blenderInstall) []node.Install {
	out := make([]node.Install, len(installs))
	for i, in := range installs {
		var b node.Blender = &blender.Sessions{Runner: in.runner, KeepAlive: c.BlenderKeepAlive, Max: c.RenderSlots}
		if c.BlenderKeepAlive == 0 {
			b = blender.Cold{Runner: in.runner}
		}
		out[i] = node.Install{Version: in.version, Blender: b}
	}
	return out
}

// nodeTools are the programs a render node runs: its Blenders, and the
// sandbox that confines ffmpeg (each Blender's runner holds its own).
type nodeTools struct {
	installs []blenderInstall
	sandbox  *sandbox.Sandbox
}

// nodeTools finds and checks the node's Blenders and ffmpeg, with a
// message saying how to get them when they do not run.
func (c Config) nodeTools(ctx context.Context, log *slog.Logger) (*nodeTools, error) {
	installs, sb, err := c.blenderRunners(ctx, log)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(c.FFmpegBinary); err != nil {
		return nil, fmt.Errorf("ffmpeg is needed for preview videos (%v); install it (apt-get install ffmpeg) or pass --ffmpeg PATH", err)
	}
	return &nodeTools{installs: installs, sandbox: sb}, nil
}
