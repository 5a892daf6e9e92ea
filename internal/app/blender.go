package app

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/node"
	"github.com/renderfarm/renderfarm/internal/sandbox"
)

// blenderRunner makes the Runner the config describes, contained as
// --sandbox says, and logs the containment in effect; the node confines
// ffmpeg with the Runner's Sandbox too. A confined Blender reads its own
// job's directory in the node's work directory.
func (c Config) blenderRunner(ctx context.Context, log *slog.Logger) (*blender.Runner, error) {
	// Blender runs in its own run directory, so every path it is given
	// must be absolute: --data-dir defaults to a relative one.
	workDir, err := filepath.Abs(c.workDir())
	if err != nil {
		return nil, err
	}
	mode, err := sandbox.ParseMode(c.SandboxMode)
	if err != nil {
		return nil, fmt.Errorf("%w: --%v", ErrUsage, err)
	}
	sb, err := sandbox.New(ctx, sandbox.Config{Mode: mode, Bwrap: c.BwrapBinary,
		MemoryBytes: c.BlenderMemoryBytes, OpenFiles: c.BlenderOpenFiles})
	if err != nil {
		return nil, err
	}
	if !sb.Confined() {
		log.Warn("Blender and ffmpeg run UNCONFINED (--sandbox none): a hostile file that exploits either gets this node's network, its files and its credentials; install bubblewrap and drop --sandbox none",
			"sandbox", sb.String())
	}
	log.Info("blender and ffmpeg containment", "sandbox", sb.String(), "frameTimeout", c.FrameTimeout, "autoexec", "disabled")
	// Blender's run directories (scripts, results, its TMPDIR) go in the
	// work directory rather than the system's, so that those a killed
	// process left are found and removed at the next start.
	runner := &blender.Runner{Binary: c.BlenderBinary, Threads: c.BlenderThreads,
		Sandbox: sb, JobsDir: workDir, FrameTimeout: c.FrameTimeout, TempDir: filepath.Join(workDir, "tmp")}
	removed, err := runner.ClaimTempDir()
	if err != nil {
		return nil, err
	}
	if removed > 0 {
		log.Info("removed Blender run directories left by a process that was killed", "count", removed, "dir", runner.TempDir)
	}
	return runner, nil
}

// nodeBlender is how the node runs Blender: a pool of warm sessions, at
// most one a render slot so that idle sessions never outnumber the
// Blenders the node runs at once, or a Blender for every inspection and
// chunk when --blender-keep-alive is 0.
func (c Config) nodeBlender(runner *blender.Runner) node.Blender {
	if c.BlenderKeepAlive == 0 {
		return blender.Cold{Runner: runner}
	}
	return &blender.Sessions{Runner: runner, KeepAlive: c.BlenderKeepAlive, Max: c.RenderSlots}
}

// checkTools makes sure Blender and ffmpeg run, with a message saying how
// to get them when they do not.
func (c Config) checkTools(ctx context.Context, runner *blender.Runner, log *slog.Logger) error {
	version, err := runner.Version(ctx)
	if err != nil {
		return fmt.Errorf("blender is needed to render (%v); install it (apt-get install blender) or pass --blender PATH", err)
	}
	if _, err := exec.LookPath(c.FFmpegBinary); err != nil {
		return fmt.Errorf("ffmpeg is needed for preview videos (%v); install it (apt-get install ffmpeg) or pass --ffmpeg PATH", err)
	}
	log.Info("blender found", "version", version, "binary", c.BlenderBinary)
	return nil
}
