package node

import (
	"context"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// A farm runs several Blender versions, and a node one or more of them.
// Each job is given the farm's Blender that opens its file (the choice is
// farm.ChooseBlender's, made by the node that validates it, or the render
// request's pin). Its chunks are given only to nodes that run it (the
// dispatcher matches it as one of a chunk's requirements); a node that
// takes a validation whose file needs a Blender it lacks routes the task
// to that Blender's control queue. While no live node runs it, the work
// waits, and the job's progress says why.

// farmBlenders are the Blender versions the farm offers now: those of its
// live nodes, this one's among them even before its first heartbeat is
// written.
func (n *Node) farmBlenders(ctx context.Context) ([]string, error) {
	offers, err := n.store.LiveBlenderVersions(ctx, time.Now().Add(-n.cfg.WorkerTimeout))
	if err != nil {
		return nil, err
	}
	versions := n.BlenderVersions()
	for _, o := range offers {
		versions = append(versions, o.Version)
	}
	return farm.SortBlenderVersions(versions), nil
}

// blenderFor decides which Blender validates a file saved with
// fileVersion: routed, the version the task was routed to, when this node
// runs it; otherwise the farm's Blender that opens the file. ok is false
// when every Blender of the farm is older than the file.
func (n *Node) blenderFor(fileVersion, routed string, offered []string) (version string, ok bool) {
	if _, here := n.install(routed); here {
		return routed, true
	}
	return farm.ChooseBlender(fileVersion, offered)
}

// chunkBlender is the node's Blender for a chunk of job: the job's own
// (finalConfig.blenderVersion). A job queued before the farm recorded one
// renders with this node's Blender that opens its file. routeTo is set,
// and ok false, when the job's Blender is not this node's.
func (n *Node) chunkBlender(job *farm.Job) (in Install, routeTo string, ok bool) {
	want := job.FinalConfig.BlenderVersion
	if want == "" {
		fileVersion := ""
		if job.Analysis != nil {
			fileVersion = job.Analysis.FileVersion
		}
		if v, found := farm.ChooseBlender(fileVersion, n.BlenderVersions()); found {
			want = v
		} else {
			want = n.installs[len(n.installs)-1].Version
		}
	}
	if in, ok := n.install(want); ok {
		return in, "", true
	}
	return Install{}, want, false
}

// route hands the task of ref to the nodes that run Blender version,
// with what this node read of the job's file, and ends this node's part
// in it: errNotOurs, which runTask takes quietly.
func (n *Node) route(ctx context.Context, ref engine.TaskRef, version string, sceneFile *farm.SceneFile) error {
	if err := n.engine.Route(ctx, ref, version, sceneFile); err != nil {
		return err
	}
	n.log.Info("task needs a Blender this node does not run; handed to the nodes that run it",
		"job", ref.JobID, "task", ref.TaskID, "blender", version, "here", n.BlenderVersions())
	return errNotOurs
}
