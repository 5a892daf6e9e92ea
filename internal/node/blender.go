package node

import (
	"context"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// Blender is what a node needs of Blender. blender.Sessions keeps a
// job's Blender warm between its inspection and chunks; blender.Cold
// starts one for each. The node's tests play Blender with a fake that
// reports what a test scripts.
type Blender interface {
	// Inspect reports what a .blend holds. outputRoot is the job's folder
	// of chunk output directories, where a Blender kept for the job's
	// chunks will write. A *blender.InspectError is Blender failing on
	// the file; another error a passing fault.
	Inspect(ctx context.Context, blendPath, outputRoot string) (*farm.Inspection, error)
	// Render renders a chunk's frames into job.OutputDir (under
	// outputRoot), reporting each frame's start and save through onEvent,
	// never concurrently. A *blender.RenderError names the first frame not
	// saved; the result (frames saved, the log's tail) comes with an error
	// too.
	Render(ctx context.Context, job blender.RenderJob, outputRoot string, onEvent func(blender.Event)) (*blender.RenderResult, error)
	// Merge makes a split frame of the parts' files in job.PartsDir(),
	// writing it into job.OutputDir() and reporting it as Render does.
	Merge(ctx context.Context, job blender.MergeJob, onEvent func(blender.Event)) (*blender.RenderResult, error)
	// Forget ends the idle Blenders kept for chunks under dir (a job's
	// directory, once the job no longer needs them).
	Forget(dir string)
	// Close ends every idle Blender.
	Close()
}

var (
	_ Blender = (*blender.Sessions)(nil)
	_ Blender = blender.Cold{}
)

// Install is one Blender a node runs: its full version, read when the
// node started (blender --version), and the Blender that runs it. A node
// may run several: each job goes to the one that opens its file (see
// farm.ChooseBlender), and each keeps its own warm sessions.
type Install struct {
	// Version is the full version, such as "4.3.2".
	Version string
	Blender Blender
}
