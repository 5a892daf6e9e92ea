package node

import (
	"context"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// A farm runs several Blender versions, and a node one or more of them.
// Each job is given the farm's Blender that opens its file (the choice is
// farm.ChooseBlender's, made by the node that validates it, or the render
// request's pin), and its work goes to that version's River queues, which
// only the nodes that run it work. A node that takes a validation whose
// file needs a Blender it lacks routes the task to that Blender's queue;
// while no live node runs it, the work waits there, and the job's
// progress says why.

// slotBusyRetry is how soon a chunk that found every slot of the node
// busy is offered again (to any node of its Blender, this one included).
const slotBusyRetry = time.Second

// slotted is a River worker that holds one of the node's slots while it
// works. River bounds the running jobs of each queue, and a node with
// several Blenders works a render queue for each: without the slots, it
// would render a chunk of every one of them at once. A job that finds no
// slot free is snoozed, which does not count as an attempt, and so is
// left to a node that has one.
type slotted[A taskArgs] struct {
	*taskWorker[A]
	slots chan struct{}
}

// Work runs the job in a slot, or snoozes it when there is none.
func (w slotted[A]) Work(ctx context.Context, rj *river.Job[A]) error {
	select {
	case w.slots <- struct{}{}:
	default:
		return river.JobSnooze(slotBusyRetry)
	}
	defer func() { <-w.slots }()
	return w.taskWorker.Work(ctx, rj)
}

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

// route hands the task of ref to the nodes that run Blender version, and
// ends this node's part in it: errNotOurs, which runTask takes quietly.
func (n *Node) route(ctx context.Context, ref engine.TaskRef, version string) error {
	if err := n.engine.Route(ctx, ref, version); err != nil {
		return err
	}
	n.log.Info("task needs a Blender this node does not run; handed to the nodes that run it",
		"job", ref.JobID, "task", ref.TaskID, "blender", version, "here", n.BlenderVersions())
	return errNotOurs
}
