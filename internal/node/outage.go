package node

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/outage"
)

// How a task waits out an outage of the database, the bucket or the disk
// (package outage tells those from every other error). Such an error says
// nothing about the job, so it spends none of the chunk's attempts: the
// step that met it is tried again, with growing pauses, while the task's
// progress says what it waits for. Only an outage longer than
// Config.OutageTolerance fails the job, with a reason that names it.
const (
	// firstOutagePause and maxOutagePause bound the pauses between tries.
	firstOutagePause = 250 * time.Millisecond
	maxOutagePause   = 5 * time.Second
	// sameOutageWithin: a part that fails again this soon after it
	// answered again is the same outage, so a part that answers a probe
	// but not the real request cannot keep a task waiting for ever.
	sameOutageWithin = 30 * time.Second
	// probeTimeout bounds a check that a part answers again.
	probeTimeout = 5 * time.Second
	// recordTimeout bounds writing what a task waits for: the write is
	// for the client's information only.
	recordTimeout = 2 * time.Second
)

// DefaultOutageTolerance is how long a task waits for the database, the
// bucket or disk space before its job fails.
const DefaultOutageTolerance = 10 * time.Minute

// DefaultDiskReserve is the free space a node keeps on its work
// directory's file system: below it, it starts no work that writes there
// and waits, as for an outage, until space is freed.
const DefaultDiskReserve int64 = 256 << 20

// outageTooLong is the error of a task whose wait for a part of the farm
// outlasted the tolerance: the job fails, naming the outage.
type outageTooLong struct {
	// waitedFor says what the task waited for, as the progress said.
	waitedFor string
	lasted    time.Duration
	tolerance time.Duration
	err       error
}

func (e *outageTooLong) Error() string {
	return fmt.Sprintf("waited %v for %s, longer than the farm waits for an outage (%v): %v",
		e.lasted.Round(time.Second), e.waitedFor, e.tolerance, e.err)
}

func (e *outageTooLong) Unwrap() error { return e.err }

// tooLong reports whether err is an outage that outlasted the tolerance.
func tooLong(err error) bool {
	var tl *outageTooLong
	return errors.As(err, &tl)
}

// outageFailure is the reason a job fails for an outage that outlasted
// the tolerance, at stage (farm.FailValidation, FailRender or
// FailFinalize); nil for any other error.
func outageFailure(err error, stage string) *farm.FailedReason {
	var tl *outageTooLong
	if !errors.As(err, &tl) {
		return nil
	}
	kept := ""
	if stage == farm.FailRender {
		kept = " The frames already rendered are kept and stay downloadable."
	}
	return &farm.FailedReason{Name: "FARM_UNAVAILABLE", Type: stage,
		Message: fmt.Sprintf("the farm waited %v for %s, longer than it waits for an outage (%v), and gave up.%s This is the farm's fault, not the file's: ask the farm's operator, then submit the job again",
			tl.lasted.Round(time.Second), tl.waitedFor, tl.tolerance, kept)}
}

// waiter waits out the outages that one attempt at a task meets, and
// keeps what the task waits for in the task's row (for the job's
// progress), in the node's metrics and in its log. A nil waiter tries each
// step once, for callers that run outside a task.
type waiter struct {
	n   *Node
	ref engine.TaskRef

	mu sync.Mutex
	// part is what the task waits for now, outage.None when nothing.
	part outage.Part
	// since is when the current outage began; back is when the part last
	// answered again.
	since, back time.Time
	pause       time.Duration
	// recorded says the task's row names what it waits for.
	recorded bool
	// logBytes is the size of the logs this attempt kept and has not
	// yet recorded (keepLog).
	logBytes int64
}

func (n *Node) newWaiter(ref engine.TaskRef) *waiter {
	return &waiter{n: n, ref: ref}
}

// outlast runs op until it succeeds, fails for a reason that is no
// outage, or ctx ends. While op meets an outage it waits, with growing
// pauses; once the outage has lasted longer than the tolerance it gives
// up with an *outageTooLong.
func (w *waiter) outlast(ctx context.Context, op func(context.Context) error) error {
	return w.retry(ctx, true, op)
}

// persist is outlast without the tolerance, for the steps that cannot
// give up: taking a task and recording how it ended need the database,
// and so does failing the job.
func (w *waiter) persist(ctx context.Context, op func(context.Context) error) error {
	return w.retry(ctx, false, op)
}

func (w *waiter) retry(ctx context.Context, bounded bool, op func(context.Context) error) error {
	if w == nil {
		return op(ctx)
	}
	for {
		err := op(ctx)
		part := outage.Of(err)
		if part == outage.None || ctx.Err() != nil {
			if err == nil {
				w.answered()
			}
			return err
		}
		if err := w.wait(ctx, part, err, bounded); err != nil {
			return err
		}
	}
}

// waitUntilBack waits until part answers again (probe says so), after err
// stopped the work. Once the outage has lasted longer than the tolerance
// it gives up with an *outageTooLong.
func (w *waiter) waitUntilBack(ctx context.Context, part outage.Part, err error) error {
	for {
		if werr := w.wait(ctx, part, err, true); werr != nil {
			return werr
		}
		pctx, cancel := context.WithTimeout(ctx, probeTimeout)
		perr := w.n.probe(pctx, part)
		cancel()
		if perr == nil {
			w.answered()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		err = perr
	}
}

// wait begins or continues waiting for part, which err says is out, and
// pauses; it answers an *outageTooLong once the outage has lasted longer
// than the tolerance (bounded), or ctx's error.
func (w *waiter) wait(ctx context.Context, part outage.Part, err error, bounded bool) error {
	w.mu.Lock()
	now := time.Now()
	if w.since.IsZero() || (w.part == outage.None && now.Sub(w.back) > sameOutageWithin) {
		w.since, w.pause = now, firstOutagePause
	}
	began := w.part != part
	if began && w.part != outage.None {
		w.n.cfg.Metrics.WaitEnded(w.part.String())
	}
	w.part = part
	lasted, pause := now.Sub(w.since), w.pause
	w.pause = min(2*w.pause, maxOutagePause)
	w.mu.Unlock()

	what := w.n.waitingFor(part)
	if began {
		w.n.cfg.Metrics.WaitBegan(part.String())
		w.n.log.Warn("waiting for "+what, "job", w.ref.JobID, "task", w.ref.TaskID, "err", err)
		w.record(ctx, part, what)
	}
	if bounded && lasted > w.n.cfg.OutageTolerance {
		return &outageTooLong{waitedFor: what, lasted: lasted, tolerance: w.n.cfg.OutageTolerance, err: err}
	}
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// answered ends the wait, if the task was waiting: the part answers again.
func (w *waiter) answered() {
	w.mu.Lock()
	part := w.part
	if part == outage.None {
		w.mu.Unlock()
		return
	}
	w.part, w.back = outage.None, time.Now()
	lasted := w.back.Sub(w.since)
	w.mu.Unlock()
	w.n.cfg.Metrics.WaitEnded(part.String())
	w.n.log.Info(w.n.waitingFor(part)+" answers again", "job", w.ref.JobID, "task", w.ref.TaskID, "waited", lasted.Round(time.Millisecond))
	w.record(context.Background(), outage.None, "")
}

// done ends whatever wait is still counted, when the attempt ends.
func (w *waiter) done(ctx context.Context) {
	w.mu.Lock()
	part := w.part
	w.part = outage.None
	logBytes := w.logBytes
	w.logBytes = 0
	w.mu.Unlock()
	if part != outage.None {
		w.n.cfg.Metrics.WaitEnded(part.String())
	}
	if logBytes > 0 {
		// The attempt kept logs but did not end the task (it was handed
		// back, or another holder's now): they are stored all the same.
		w.n.recordLogBytes(ctx, w.ref, logBytes)
	}
}

// keptLog counts a log of size bytes the attempt kept, to be recorded
// with the task's end.
func (w *waiter) keptLog(size int64) {
	w.mu.Lock()
	w.logBytes += size
	w.mu.Unlock()
}

// unrecordedLogBytes is the size of the logs the attempt kept that no
// committed write has counted yet.
func (w *waiter) unrecordedLogBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.logBytes
}

// logBytesRecorded says the task's end, committed, counted them.
func (w *waiter) logBytesRecorded() {
	w.mu.Lock()
	w.logBytes = 0
	w.mu.Unlock()
}

// record writes what the task waits for in its row, for the job's
// progress, as far as the database lets it: while the database itself is
// out, nothing can be written, and the API answers 503 anyway.
func (w *waiter) record(ctx context.Context, part outage.Part, what string) {
	w.mu.Lock()
	if part == outage.Database || (what == "" && !w.recorded) {
		w.mu.Unlock()
		return
	}
	w.recorded = what != ""
	w.mu.Unlock()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := w.n.store.SetTaskWaiting(rctx, w.ref.TaskID, w.ref.Generation, what); err != nil {
		w.n.log.Warn("could not record what a task waits for", "task", w.ref.TaskID, "waitingFor", what, "err", err)
	}
}

// waitingFor says what a task waiting for part waits for, in the words a
// client reads in the job's progress.
func (n *Node) waitingFor(part outage.Part) string {
	switch part {
	case outage.Database:
		return "the database"
	case outage.Bucket:
		return "the bucket"
	case outage.Disk:
		return "disk space on " + n.cfg.WorkerName
	}
	return part.String()
}

// probe checks that part answers again: a statement for the database, a
// request for an object that is not there for the bucket, the free space
// for the disk.
func (n *Node) probe(ctx context.Context, part outage.Part) error {
	switch part {
	case outage.Database:
		return n.store.Ping(ctx)
	case outage.Bucket:
		return objstore.Probe(ctx, n.objects)
	case outage.Disk:
		return n.checkDiskSpace()
	}
	return nil
}

// checkDiskSpace answers a Disk outage when the work directory's file
// system has less free space than Config.DiskReserve: work that writes
// there (extracting a project, Blender's frames, the preview) would fail
// half-way, so it waits instead.
func (n *Node) checkDiskSpace() error {
	if n.cfg.DiskReserve <= 0 || n.cfg.WorkDir == "" {
		return nil
	}
	free, ok := freeBytes(n.cfg.WorkDir)
	if !ok || free >= uint64(n.cfg.DiskReserve) {
		return nil
	}
	return outage.Errorf(outage.Disk, "the work directory's disk has %d MiB free, less than the %d MiB the node keeps free (--disk-reserve)",
		free>>20, n.cfg.DiskReserve>>20)
}

// blameDisk turns a failure that a full disk explains into a Disk outage:
// Blender or ffmpeg saying it ran out of space, or any failure while the
// work directory's disk is below its reserve. Other errors are as they
// were.
func (n *Node) blameDisk(err error) error {
	if err == nil || outage.Is(err) {
		return err
	}
	if strings.Contains(err.Error(), "No space left on device") {
		return &outage.Error{Part: outage.Disk, Err: err}
	}
	if full := n.checkDiskSpace(); full != nil {
		return &outage.Error{Part: outage.Disk, Err: fmt.Errorf("%w (%v)", err, full)}
	}
	return err
}
