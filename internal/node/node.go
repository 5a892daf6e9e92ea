// Package node is a render node: the River workers that validate a job's
// file, render its chunks of frames and finalize its outputs, and what a
// machine needs to run them: it claims each task for the generation its
// River job carries, records a heartbeat so that the farm notices when it
// dies, prepares a job's input (checked against its checksum every time),
// keeps inputs fetched from a bucket in a cache, removes the files of jobs
// that ended, and runs Blender behind the Blender interface and ffmpeg in
// the sandbox.
//
// `renderfarm worker` is a node and nothing else; `renderfarm serve` runs
// one beside the API unless --workers is 0.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/sandbox"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Config sets up a render node.
type Config struct {
	// Slots is how many chunks the node renders at once.
	Slots int
	// BlenderThreads is how many threads each Blender renders with (its
	// -t); 0 is every core. A chunk's worker-seconds are its frames'
	// render time times these threads.
	BlenderThreads int
	// WorkerName names the node in progress reports and `renderfarm
	// workers`.
	WorkerName string
	// WorkDir holds extracted projects and frames being rendered.
	WorkDir string
	// FFmpeg is the ffmpeg binary that makes preview videos.
	FFmpeg string
	// Sandbox confines ffmpeg as the Blender runner's sandbox confines
	// Blender: ffmpeg decodes frames a hostile scene may have shaped. nil
	// runs it unconfined (tests of the node's own logic).
	Sandbox *sandbox.Sandbox
	// BlenderTempDir is where Blender's run directories are, which the
	// node names <blender> in what clients read.
	BlenderTempDir string
	// ZipLimits bound a project zip's extraction.
	ZipLimits blendfile.ZipLimits
	// CacheBytes caps the inputs the node keeps from a bucket; 0 or less
	// keeps none.
	CacheBytes int64
	// HeartbeatInterval is how often the node records that it is alive;
	// the farm gives its work to another after WorkerTimeout without one.
	HeartbeatInterval time.Duration
	// WorkerTimeout is how long a node may go without a heartbeat before
	// it no longer counts as alive: the Blenders of the nodes alive within
	// it are those the farm offers when a file's Blender is chosen.
	WorkerTimeout time.Duration
	// Metrics receives the counters the node moves; nil keeps none.
	Metrics *metrics.Metrics
	// OutageTolerance is how long a task waits for the database, the
	// bucket or disk space (see outage.go) before its job fails.
	OutageTolerance time.Duration
	// DiskReserve is the free space, in bytes, the node keeps on its work
	// directory's file system: below it, a task waits for space before it
	// writes there. 0 keeps none.
	DiskReserve int64
	// MaxFailedChunks is how many of a job's chunks may fail, on any
	// nodes, before the job fails (--max-failed-chunks).
	MaxFailedChunks int
	// Tags, GPUs and MemoryBytes are what the node offers chunks besides
	// its Blenders: a chunk that requires tags, GPUs or memory is given
	// only to a node that has them (see farm.Requirements).
	Tags        []string
	GPUs        []farm.GPU
	MemoryBytes int64
}

// DefaultCacheBytes caps the inputs a node keeps from the bucket.
const DefaultCacheBytes int64 = 20 << 30

// DefaultConfig is the node the command line's flags default to, but for
// its name (the machine's) and directories.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Slots:             1,
		WorkerName:        host,
		FFmpeg:            "ffmpeg",
		ZipLimits:         blendfile.DefaultZipLimits(),
		CacheBytes:        DefaultCacheBytes,
		HeartbeatInterval: HeartbeatInterval(engine.DefaultWorkerTimeout),
		WorkerTimeout:     engine.DefaultWorkerTimeout,
		OutageTolerance:   DefaultOutageTolerance,
		DiskReserve:       DefaultDiskReserve,
		MaxFailedChunks:   farm.DefaultMaxFailedChunks,
	}
}

// HeartbeatInterval is how often a node beats when the farm gives up on a
// worker after workerTimeout without a heartbeat: every few seconds, and
// at least four times within the timeout.
func HeartbeatInterval(workerTimeout time.Duration) time.Duration {
	return min(5*time.Second, workerTimeout/4)
}

// Node is one machine's render node.
type Node struct {
	cfg     Config
	engine  *engine.Engine
	store   *store.Store
	objects objstore.Store
	log     *slog.Logger
	// installs are the node's Blenders, oldest version first.
	installs []Install
	workerID string
	// stopping is set once the node was told to stop (Drain): the
	// dispatcher gives it no more chunks.
	stopping atomic.Bool
	// cutShort is set once a stop ended a running task before it was
	// done (the task was handed back): see StopCutWorkShort.
	cutShort atomic.Bool

	// inputs serialises preparing one job's input on this machine.
	inputs sync.Map // job id -> *sync.Mutex

	cache *inputCache

	busy      sync.Mutex
	busyTasks map[string]bool

	// releaseTask is store.ReleaseTask; the tests of a release that fails
	// wrap it.
	releaseTask func(ctx context.Context, id string, generation int) error
	// retryChunkLater is engine.RetryChunkLater; the tests of a failed
	// chunk that cannot wait for another slot wrap it.
	retryChunkLater func(ctx context.Context, ref engine.TaskRef, backoff time.Duration) error
	// removeUnkeptOutputs is engine.RemoveUnkeptOutputs; the tests of a
	// finalizing whose sweep fails wrap it.
	removeUnkeptOutputs func(ctx context.Context, jobID string) (int, error)
	// freed coalesces the dispatches of the slots freed by chunks' ends.
	freed freedSlots

	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
}

// New makes the node and registers its workers and queues with the
// engine. installs are the Blenders it runs, at least one, each of its
// own version; the node closes them when it stops.
//
// The node works the queue of the chunks given to it (engine.RenderQueue
// of its run), the control queue every node works (validations of no
// Blender in particular, and the finalizing, which needs none), and each
// of its Blenders' control queues: a validation routed to a Blender
// reaches only the nodes that run it.
func New(eng *engine.Engine, installs []Install, cfg Config) (*Node, error) {
	if len(installs) == 0 {
		return nil, errors.New("node: a node needs Blender")
	}
	if cfg.Slots < 1 || cfg.HeartbeatInterval <= 0 || cfg.WorkerTimeout <= 0 || cfg.OutageTolerance <= 0 || cfg.MaxFailedChunks < 1 || cfg.DiskReserve < 0 || cfg.MemoryBytes < 0 {
		return nil, fmt.Errorf("node: Slots (%d), HeartbeatInterval (%v), WorkerTimeout (%v), OutageTolerance (%v) and MaxFailedChunks (%d) must be positive, DiskReserve (%d) and MemoryBytes (%d) 0 or more; start from DefaultConfig",
			cfg.Slots, cfg.HeartbeatInterval, cfg.WorkerTimeout, cfg.OutageTolerance, cfg.MaxFailedChunks, cfg.DiskReserve, cfg.MemoryBytes)
	}
	tags, err := farm.NormalizeTags(cfg.Tags)
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	cfg.Tags = tags
	if _, err := farm.ParseGPUs(farm.FormatGPUs(cfg.GPUs)); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	installs = slices.Clone(installs)
	for _, in := range installs {
		if in.Blender == nil {
			return nil, fmt.Errorf("node: Blender %s has no runner", in.Version)
		}
		if _, ok := farm.ParseBlenderVersion(in.Version); !ok {
			return nil, fmt.Errorf("node: %q is not a Blender version", in.Version)
		}
	}
	slices.SortFunc(installs, func(a, b Install) int {
		va, _ := farm.ParseBlenderVersion(a.Version)
		vb, _ := farm.ParseBlenderVersion(b.Version)
		return va.Compare(vb)
	})
	for i := 1; i < len(installs); i++ {
		if installs[i].Version == installs[i-1].Version {
			return nil, fmt.Errorf("node: two Blenders of version %s; give each version once", installs[i].Version)
		}
	}
	if cfg.WorkDir != "" {
		// The work directory holds the jobs' files and frames: the farm's
		// alone, like the data directory, whatever an older version or a
		// umask left it at (the default is under the shared /tmp).
		if err := os.MkdirAll(cfg.WorkDir, 0o700); err != nil {
			return nil, fmt.Errorf("node: work directory: %w", err)
		}
		if err := os.Chmod(cfg.WorkDir, 0o700); err != nil {
			return nil, fmt.Errorf("node: work directory: make it the farm's alone (mode 0700): %w", err)
		}
	}
	n := &Node{
		cfg: cfg, engine: eng, store: eng.Store(), objects: eng.Objects(), log: eng.Logger(),
		installs:  installs,
		workerID:  uuid.NewString(),
		cache:     newInputCache(filepath.Join(cfg.WorkDir, "cache"), cfg.CacheBytes),
		busyTasks: map[string]bool{},
	}
	// Validation and finalizing run Blender and ffmpeg, so they belong to
	// the processes that render.
	n.releaseTask = n.store.ReleaseTask
	n.retryChunkLater = n.engine.RetryChunkLater
	n.removeUnkeptOutputs = n.engine.RemoveUnkeptOutputs
	// Chunks come on this run's own queue, as many at once as it has
	// slots: the dispatcher gives it no more than that.
	queues := map[string]int{engine.RenderQueue(n.workerID): cfg.Slots, engine.QueueControl: controlSlots}
	for _, in := range installs {
		control, err := engine.BlenderQueue(engine.QueueControl, in.Version)
		if err != nil {
			return nil, err
		}
		queues[control] = controlSlots
	}
	eng.Register(queues, func(w *river.Workers) {
		river.AddWorker(w, n.validateWorker())
		river.AddWorker(w, n.renderWorker())
		river.AddWorker(w, n.finalizeWorker())
		river.AddWorker(w, n.mergeWorker())
	})
	return n, nil
}

// controlSlots is how many validations and finalizings a node runs at
// once on each control queue, beside its chunks: they are short.
const controlSlots = 2

// BlenderVersions are the versions of the node's Blenders, oldest first.
func (n *Node) BlenderVersions() []string {
	versions := make([]string, len(n.installs))
	for i, in := range n.installs {
		versions[i] = in.Version
	}
	return versions
}

// install is the node's Blender of version, if it runs one.
func (n *Node) install(version string) (Install, bool) {
	for _, in := range n.installs {
		if in.Version == version {
			return in, true
		}
	}
	return Install{}, false
}

// validateWorker checks jobs' files (validate_file).
func (n *Node) validateWorker() *taskWorker[engine.ValidateArgs] {
	return &taskWorker[engine.ValidateArgs]{n: n, kind: store.TaskValidate, start: newValidation}
}

// renderWorker renders chunks of frames (render_chunk).
func (n *Node) renderWorker() *taskWorker[engine.RenderArgs] {
	return &taskWorker[engine.RenderArgs]{n: n, kind: store.TaskRender, start: newChunk, retryAfter: chunkRetry}
}

// finalizeWorker makes jobs' outputs (finalize_outputs).
func (n *Node) finalizeWorker() *taskWorker[engine.FinalizeArgs] {
	return &taskWorker[engine.FinalizeArgs]{n: n, kind: store.TaskFinalize, start: newFinalizing}
}

// WorkerID is the id of this run of the node (its row in workers).
func (n *Node) WorkerID() string { return n.workerID }

// Start records this run of the node (a row in workers, with what it
// offers chunks), starts its heartbeat, and takes the waiting chunks its
// slots can: their River jobs wait on its queue until the engine starts.
// Start it before the engine, so that no task is claimed by a run the
// farm does not know.
func (n *Node) Start(ctx context.Context) error {
	if err := n.checkNameIsFree(ctx); err != nil {
		return err
	}
	now := time.Now()
	err := n.store.RegisterWorker(ctx, store.Worker{ID: n.workerID, Name: n.cfg.WorkerName, StartedAt: now, HeartbeatAt: now, State: store.WorkerIdle,
		BlenderVersions: n.BlenderVersions(), Slots: n.cfg.Slots, Tags: n.cfg.Tags, GPUs: n.cfg.GPUs, MemoryBytes: n.cfg.MemoryBytes,
		Process: thisProcess()})
	if err != nil {
		return err
	}
	n.handOutReplacedRuns(ctx)
	hbCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.stopHeartbeat = cancel
	n.heartbeatDone = make(chan struct{})
	go n.heartbeatLoop(hbCtx)
	n.fillSlots(ctx)
	return nil
}

// ErrNameTaken is what Start answers when a live run of another process
// holds the node's worker name.
var ErrNameTaken = errors.New("worker name taken")

// checkNameIsFree refuses to start under a name another process holds:
// two live runs of one name would each declare the other gone, and the
// farm would take a live node's chunks for a dead one's. A run of the
// name whose heartbeat is recent may also be a process killed a moment
// ago (a restart after a crash, which must go on). On the same machine
// that is proven at once: its process is gone, or its id now belongs to
// another process (processGone), and this run replaces it without
// waiting. Otherwise (another machine, or a process that lives) the run
// is watched for two heartbeats: one that beats again is live, and the
// start is refused naming it; one that does not is taken for dead, and
// this run replaces it.
func (n *Node) checkNameIsFree(ctx context.Context) error {
	timeout := n.cfg.WorkerTimeout
	if timeout <= 0 {
		return nil
	}
	held, err := n.store.LiveWorkersNamed(ctx, n.cfg.WorkerName, time.Now().Add(-timeout))
	if err != nil || len(held) == 0 {
		return err
	}
	var unproven []store.Worker
	for _, w := range held {
		if processGone(w.Process) {
			n.log.Info("the earlier run of this worker name on this machine is dead (its process is gone); this run replaces it at once",
				"worker", n.cfg.WorkerName, "run", w.ID, "pid", w.Process.PID)
			continue
		}
		unproven = append(unproven, w)
	}
	if len(unproven) == 0 {
		return nil
	}
	other := unproven[0]
	watch := 2*HeartbeatInterval(timeout) + time.Second
	deadline := time.Now().Add(watch)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		now, err := n.store.GetWorker(ctx, other.ID)
		if err != nil {
			return err
		}
		if now.HeartbeatAt.After(other.HeartbeatAt) && now.State != store.WorkerGone && now.State != store.WorkerStopped {
			return fmt.Errorf("%w: another render node runs under the name %q (run %s, started %s, last heard from %s ago); give this one another --worker-name, or stop the other first",
				ErrNameTaken, n.cfg.WorkerName, other.ID, other.StartedAt.Format(time.RFC3339), time.Since(now.HeartbeatAt).Round(100*time.Millisecond))
		}
	}
	n.log.Info("an earlier run of this worker name is silent; this run replaces it", "worker", n.cfg.WorkerName, "run", other.ID, "lastHeard", other.HeartbeatAt)
	return nil
}

// handOutReplacedRuns hands out again, at once and under a new
// generation, the tasks that the earlier runs of this node's name (which
// RegisterWorker declared gone) held or were given, as the reaper would
// at its next search: their River jobs are on the dead run's queue, or
// held by its dead process. A failure is only logged: the reaper hands
// them out then.
func (n *Node) handOutReplacedRuns(ctx context.Context) {
	tasks, err := n.store.TasksOfReplacedRuns(ctx, n.cfg.WorkerName, n.workerID)
	if err != nil {
		n.log.Warn("could not list the tasks of this name's earlier run; the reaper hands them out", "err", err)
		return
	}
	handed := 0
	for _, t := range tasks {
		if err := n.engine.Requeue(ctx, t, "the worker started again; the task its earlier run held is handed out again"); err != nil {
			n.log.Warn("could not hand out a task of this name's earlier run; the reaper will", "task", t.ID, "job", t.JobID, "err", err)
			continue
		}
		handed++
	}
	if handed > 0 {
		n.log.Info("handed out again the tasks of this name's earlier run", "worker", n.cfg.WorkerName, "tasks", handed)
	}
}

// Drain tells the farm that the node stops: the dispatcher gives it no
// more chunks, while the engine lets those it runs finish. Call it before
// stopping the engine.
func (n *Node) Drain(ctx context.Context) {
	n.stopping.Store(true)
	if err := n.store.Heartbeat(ctx, n.workerID, store.WorkerStopping, ""); err != nil {
		n.log.Warn("could not record that the node stops; it may be given chunks it hands back", "err", err)
	}
}

// StopCutWorkShort reports whether the node's stop ended a running task
// (a chunk, a validation, a finalizing) before it was done, because the
// shutdown timeout passed or a second signal came: the task was handed
// back, and the process's exit status says it stopped by force.
func (n *Node) StopCutWorkShort() bool { return n.cutShort.Load() }

// noteCutShort records, as a task ends unfinished because ctx ended,
// whether the node's stop ended it: the node is stopping, and River did
// not cancel the job for a cancel of the job itself.
func (n *Node) noteCutShort(ctx context.Context) {
	if n.stopping.Load() && !errors.Is(context.Cause(ctx), river.ErrJobCancelledRemotely) {
		n.cutShort.Store(true)
	}
}

// Stop ends the node's warm Blenders and its heartbeat, hands the chunks
// given to it that it did not start to other workers, and records that it
// stopped. Stop the engine first, so that no task runs any more.
func (n *Node) Stop() {
	n.stopping.Store(true)
	n.freed.passes.Wait()
	for _, in := range n.installs {
		in.Blender.Close()
	}
	if n.stopHeartbeat != nil {
		n.stopHeartbeat()
		<-n.heartbeatDone
		ctx, cancel := context.WithTimeout(context.Background(), handBackTimeout)
		defer cancel()
		n.handBackQueued(ctx)
		_ = n.store.Heartbeat(ctx, n.workerID, store.WorkerStopped, "")
	}
}

// handBackQueued gives the chunks dispatched to this run that it never
// started back to the dispatcher, and dispatches them to other workers:
// their River jobs are on this run's queue, which nobody works once it
// stopped. What it cannot hand back (the database is out) the reaper
// finds, the run having stopped.
func (n *Node) handBackQueued(ctx context.Context) {
	queued, err := n.store.QueuedOn(ctx, n.workerID)
	if err != nil {
		n.log.Warn("could not list the chunks given to this node; the reaper hands them out", "err", err)
		return
	}
	for _, t := range queued {
		if err := n.engine.Requeue(ctx, t, "the worker stopped before it started the chunk; it is handed to another worker"); err != nil {
			n.log.Warn("could not hand back a chunk as the worker stops; the reaper hands it out", "task", t.ID, "job", t.JobID, "err", err)
		}
	}
	if len(queued) > 0 {
		if _, err := n.engine.DispatchIdle(ctx); err != nil {
			n.log.Warn("could not give the chunks handed back to other workers; the reaper does", "err", err)
		}
	}
}

// fillSlots gives this node's free slots the waiting chunks the farm's
// rule picks, unless it is stopping. A failure is only logged: the
// reaper's periodic dispatch makes up for it.
func (n *Node) fillSlots(ctx context.Context) {
	if n.stopping.Load() {
		return
	}
	if _, err := n.engine.FillWorker(ctx, n.workerID); err != nil {
		n.log.Warn("could not take waiting chunks; the next periodic dispatch gives them", "err", err)
	}
}

func (n *Node) heartbeatLoop(ctx context.Context) {
	defer close(n.heartbeatDone)
	t := time.NewTimer(n.cfg.HeartbeatInterval)
	defer t.Stop()
	lastSweep := time.Now()
	var failingSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastSweep) >= workSweepInterval {
			n.sweepWorkDirs(ctx)
			lastSweep = time.Now()
		}
		next := n.cfg.HeartbeatInterval
		err := n.beat(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			if failingSince.IsZero() {
				failingSince = time.Now()
				n.log.Warn("heartbeat failed; trying every second", "err", err)
			}
			// The database may be back in a moment: beat again soon, so
			// that the farm does not take a worker that was only cut off
			// from it for dead.
			next = min(next, time.Second)
		case err == nil && !failingSince.IsZero():
			n.log.Info("heartbeat recorded again", "after", time.Since(failingSince).Round(time.Second))
			failingSince = time.Time{}
		}
		t.Reset(next)
	}
}

// beat records that this run is alive, what it does, and that it still
// works on the tasks it is busy with (store.TouchTasks): a task its holder
// no longer works on is one the farm may hand out again.
func (n *Node) beat(ctx context.Context) error {
	n.busy.Lock()
	ids := make([]string, 0, len(n.busyTasks))
	for id := range n.busyTasks {
		ids = append(ids, id)
	}
	n.busy.Unlock()
	state, current := store.WorkerIdle, ""
	if len(ids) > 0 {
		state, current = store.WorkerBusy, ids[0]
	}
	if n.stopping.Load() {
		state = store.WorkerStopping
	}
	if err := n.store.Heartbeat(ctx, n.workerID, state, current); err != nil {
		return err
	}
	return n.store.TouchTasks(ctx, n.workerID, ids)
}

func (n *Node) markBusy(taskID string, busy bool) {
	n.busy.Lock()
	defer n.busy.Unlock()
	if busy {
		n.busyTasks[taskID] = true
	} else {
		delete(n.busyTasks, taskID)
	}
}

// jobDir is where this machine keeps a job's extracted input and the frames
// being rendered.
func (n *Node) jobDir(jobID string) string {
	return filepath.Join(n.cfg.WorkDir, jobID)
}

// outputRoot holds the directories the job's chunks render into on this
// machine, one per chunk: a Blender session of the job may write there.
func (n *Node) outputRoot(jobID string) string {
	return filepath.Join(n.jobDir(jobID), "out")
}

// freshRunDir makes an empty directory for one holder's attempt at a
// task (kind: "" for a chunk, "merge-" for a merge) under the job's
// output root: whatever an earlier attempt of the same generation left is
// removed first. The caller removes it when the attempt ends.
//
// The output root is made by the node in the job's directory, which no
// Blender session can change, but a session of the job may write in the
// root itself: what it put at the directory's name after the removal (a
// link elsewhere, say) makes the attempt fail rather than be followed.
func (n *Node) freshRunDir(jobID, kind string, ref engine.TaskRef) (string, error) {
	root := n.outputRoot(jobID)
	dir := filepath.Join(root, kind+ref.TaskID+"-"+strconv.Itoa(ref.Generation))
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	return dir, os.Mkdir(dir, 0o755)
}
