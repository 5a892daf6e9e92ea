package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Progress reports a job's frames, at any status: each of them, only
// their counts, or their counts and the frames of a span of frame
// numbers (q). Clients poll it, so it reads the job's status and
// frames alone (store.JobProgress), not the whole job as loadJob does,
// and then reports it as RunningProgress reports each job.
func (s *Service) Progress(ctx context.Context, p farm.Principal, id string, q farm.ProgressQuery) (*farm.Progress, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, farm.NotFound("job", id)
	}
	frames := store.AllFrames
	switch {
	case q.WithoutFrames:
		frames = store.NoFrames
	case q.Frames != nil:
		frames = store.FramesBetween(q.Frames.Start, q.Frames.End)
	}
	read, err := s.store.JobProgress(ctx, p.WorkspaceID, id, frames)
	if errors.Is(err, store.ErrNotFound) {
		return nil, farm.NotFound("job", id)
	}
	if err != nil {
		return nil, err
	}
	out, err := s.reportProgress(ctx, p.WorkspaceID, []store.Progress{read})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// RunningProgress reports every job of the workspace that the farm is
// working on, and every suspended one: a suspended job is still the
// farm's work, paused (by its owner, or once its scout frames were done),
// and whoever watches the running jobs (the dashboard, `renderfarm
// progress`) must see it, its frames done and why it waits, as Progress
// reports it, with its frames or only their counts (q).
//
// Its cost does not grow with the number of jobs: a statement reads
// their statuses and frames, four more how their work stands, and what
// they may wait for of the farm is read once for them all.
func (s *Service) RunningProgress(ctx context.Context, p farm.Principal, q farm.ProgressQuery) ([]farm.Progress, error) {
	jobs, err := s.store.JobsProgress(ctx, p.WorkspaceID, !q.WithoutFrames, jobsInProgress...)
	if err != nil {
		return nil, err
	}
	return s.reportProgress(ctx, p.WorkspaceID, jobs)
}

// reportProgress makes the progress of a workspace's jobs from their
// statuses and frames (jobs): the work of every job read at once, and
// the farm's as a job first needs it.
func (s *Service) reportProgress(ctx context.Context, workspaceID string, jobs []store.Progress) ([]farm.Progress, error) {
	out := make([]farm.Progress, 0, len(jobs))
	if len(jobs) == 0 {
		return out, nil
	}
	ids := make([]string, len(jobs))
	var waiting []string
	for i, job := range jobs {
		ids[i] = job.JobID
		if saysWhatItWaitsFor(job.Status, job.WaitingFor) {
			waiting = append(waiting, job.JobID)
		}
	}
	work, err := s.store.WorkOfJobs(ctx, ids, waiting)
	if err != nil {
		return nil, err
	}
	fr := &farmReads{s: s, ctx: ctx, workspaceID: workspaceID, liveSince: s.liveSince()}
	for _, job := range jobs {
		w := work[job.JobID]
		job.Counts.CompletedSeconds = toTheMicrosecond(job.Counts.CompletedSeconds)
		pr := progressOf(job)
		addParts(pr, w.Parts)
		pr.SuspendedReason = job.SuspendedReason
		if pr.WaitingFor, err = fr.waitingFor(job.JobID, job.Status, job.WaitingFor, w); err != nil {
			return nil, err
		}
		pr.BlockedWorkers = w.BlockedWorkers
		if err := fr.addScoutEta(pr, job.Counts.CompletedSeconds); err != nil {
			return nil, err
		}
		out = append(out, *pr)
	}
	return out, nil
}

// farmReads is what the progress of a workspace's jobs reads of the farm
// and of the workspace, beside each job's own: each read once for an
// answer, when a job first needs it.
type farmReads struct {
	s           *Service
	ctx         context.Context
	workspaceID string
	liveSince   time.Time

	offered  lazy[[]string]
	offers   lazy[[]farm.WorkerOffer]
	takers   lazy[[]store.Taker]
	sick     lazy[[]store.WorkerHealth]
	quota    lazy[[2]int]
	budget   lazy[[2]float64]
	name     lazy[string]
	expected lazy[int]
}

// lazy is a value read the first time it is asked for.
type lazy[T any] struct {
	read bool
	v    T
}

func (l *lazy[T]) get(read func() (T, error)) (T, error) {
	if !l.read {
		v, err := read()
		if err != nil {
			return v, err
		}
		l.v, l.read = v, true
	}
	return l.v, nil
}

// addScoutEta gives a job suspended once its scout frames were done the
// time its other frames will take once it is resumed.
func (fr *farmReads) addScoutEta(pr *farm.Progress, completedSeconds float64) error {
	if pr.SuspendedReason != farm.SuspendedScoutFramesReady {
		return nil
	}
	workers, err := fr.expected.get(func() (int, error) { return fr.s.expectedWorkers(fr.ctx) })
	if err != nil {
		return err
	}
	pr.EtaSeconds = etaOfTheRest(pr, completedSeconds, workers)
	return nil
}

// etaOfTheRest estimates how long the frames a job's scouts held back
// take once it is resumed: the scouts' mean render time (seconds, of the
// completed frames) for each frame left, shared by the workers the farm
// renders on.
func etaOfTheRest(pr *farm.Progress, seconds float64, workers int) *float64 {
	if pr.FramesCompleted == 0 || seconds == 0 {
		return nil
	}
	eta := float64(pr.FramesTotal-pr.FramesCompleted) * seconds / float64(pr.FramesCompleted) / float64(max(1, workers))
	eta = math.Round(eta*10) / 10
	return &eta
}

// waitingFor says what a running job's work waits for: a part of the
// farm that is out, as its tasks recorded it (outage: "the bucket", "disk
// space on node-a"), or else something the farm lacks: a live render node
// with the Blender one of its tasks needs, or with the GPUs, memory or
// tags its chunks need, or a slot within its workspace's limit of running
// chunks. The job does not fail for any of them: the work resumes when
// the part is back, when a node that has what it needs starts, or when
// the workspace's other chunks end.
func (fr *farmReads) waitingFor(jobID string, status farm.Status, outage string, w store.JobWork) (string, error) {
	if outage != "" {
		return outage, nil
	}
	if !saysWhatItWaitsFor(status, outage) {
		return "", nil
	}
	if len(w.BlenderVersionsAwaited) > 0 {
		offered, err := fr.offered.get(func() ([]string, error) {
			offers, err := fr.s.store.LiveBlenderVersions(fr.ctx, fr.liveSince)
			return versionsOf(offers), err
		})
		if err != nil {
			return "", err
		}
		for _, v := range w.BlenderVersionsAwaited {
			if !slices.Contains(offered, v) {
				return fr.s.waitingForBlender(fr.ctx, jobID, status, v, offered)
			}
		}
	}
	if !w.HasChunks {
		return "", nil
	}
	if w.ChunkWaiting {
		if why := waitingForRetry(w); why != "" {
			return why, nil
		}
		if why, err := fr.waitingForSlot(w.Need); why != "" || err != nil {
			return why, err
		}
	}
	// Chunks given to a node that may no longer take them come back to
	// wait, so this is asked whether or not one waits now.
	return fr.waitingForTaker(w.Need.BlenderVersion, w.BlockedWorkers)
}

// saysWhatItWaitsFor reports whether the progress of a job in status,
// whose tasks wait for outage ("" for none), says what else its work
// waits for: a job whose work may be waiting for the farm.
func saysWhatItWaitsFor(status farm.Status, outage string) bool {
	switch status {
	case farm.StatusValidating, farm.StatusBooting, farm.StatusRendering:
		return outage == ""
	}
	return false
}

// waitingForBlender says that a job's work waits for a live render node
// with Blender version, which none of the farm's runs (it offers
// offered). Chunks wait for it as long as it takes; a validation or a
// merge waits a worker timeout after the last node of it was live, then
// the reaper sends it to another Blender that will do, or fails the job
// (housekeeping.RouteFromGoneBlenders), which this says too.
func (s *Service) waitingForBlender(ctx context.Context, jobID string, status farm.Status, version string, offered []string) (string, error) {
	timeout, ok, err := s.store.FarmWorkerTimeout(ctx)
	if err != nil || !ok {
		timeout = s.cfg.WorkerTimeout
	}
	if status == farm.StatusValidating {
		return fmt.Sprintf("a render node with Blender %s to validate the file: no live render node runs it (the farm offers %s); "+
			"if none has run it for the farm's worker timeout (%s), the validation goes to another Blender of the farm that opens the file, "+
			"or the job fails with BLENDER_UNAVAILABLE", version, offeredNames(offered), timeout), nil
	}
	why := fmt.Sprintf("a render node with Blender %s: no live render node runs it (the farm offers %s); "+
		"the job goes on when one starts with that Blender (--blender)", version, offeredNames(offered))
	merging, err := s.store.MergesAwaiting(ctx, jobID, version)
	if err != nil {
		return "", err
	}
	if merging > 0 {
		why += fmt.Sprintf("; its frames' merges waiting for it go, once none has run it for the farm's worker timeout (%s), "+
			"to another patch of its release, or the job fails with BLENDER_UNAVAILABLE", timeout)
	}
	return why, nil
}

// waitingForRetry says, when nothing of a job renders or may be given a
// slot and its chunks left wait out the pause after a failed attempt,
// when the first of them is given a slot again; "" otherwise.
func waitingForRetry(w store.JobWork) string {
	if w.RetryUntil.IsZero() {
		return ""
	}
	return fmt.Sprintf("the next attempt of a chunk whose render failed (failed attempts so far: %d): "+
		"it is given a render slot again from %s", w.RetryFailedAttempts, w.RetryUntil.UTC().Format(time.RFC3339))
}

// waitingForSlot says why a job's waiting chunks get no render slot: no
// live node has what they need, or their workspace is at its limit of
// running chunks; "" when neither holds.
func (fr *farmReads) waitingForSlot(need farm.Requirements) (string, error) {
	workers, err := fr.offers.get(func() ([]farm.WorkerOffer, error) { return fr.s.store.LiveWorkerOffers(fr.ctx, fr.liveSince) })
	if err != nil {
		return "", err
	}
	if len(workers) > 0 && !slices.ContainsFunc(workers, func(w farm.WorkerOffer) bool { return w.Meets(need) }) {
		beyond, with := need, ""
		beyond.BlenderVersion = ""
		if need.BlenderVersion != "" {
			with = " (and Blender " + need.BlenderVersion + ")"
		}
		return fmt.Sprintf("a render node with %s%s: no live render node has them; "+
			"the job goes on when one that does starts (renderfarm worker --gpu, --tags)", beyond, with), nil
	}
	quota, err := fr.quota.get(func() ([2]int, error) {
		limit, running, err := fr.s.store.WorkspaceQuota(fr.ctx, fr.workspaceID)
		return [2]int{limit, running}, err
	})
	if err != nil {
		return "", err
	}
	if limit, running := quota[0], quota[1]; limit > 0 && running >= limit {
		return fmt.Sprintf("a free render slot within its workspace's limit of %d running chunks (%d run now); "+
			"the job goes on as the workspace's other chunks end", limit, running), nil
	}
	month, err := fr.budget.get(func() ([2]float64, error) {
		budget, spent, err := fr.s.store.WorkspaceBudget(fr.ctx, fr.workspaceID)
		return [2]float64{budget, spent}, err
	})
	if err != nil {
		return "", err
	}
	if budget, spent := month[0], month[1]; budget > 0 && spent >= budget {
		name, err := fr.name.get(func() (string, error) { return fr.s.store.WorkspaceName(fr.ctx, fr.workspaceID) })
		if err != nil {
			return "", err
		}
		now := time.Now().UTC()
		next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		return fmt.Sprintf("render time: its workspace has used %s of its render budget of %s for %s; "+
			"the job goes on on %s at 00:00 UTC, or sooner if the farm's operator raises the budget "+
			"(renderfarm workspaces set %s --max-render-hours-per-month H)",
			formatHours(spent), formatHours(budget), now.Format("January 2006"), next.Format("2 January"), strconv.Quote(name)), nil
	}
	return "", nil
}

// formatHours writes render seconds as hours, as budgets are set.
func formatHours(seconds float64) string {
	return strconv.FormatFloat(math.Round(seconds/36)/100, 'f', -1, 64) + " render hours"
}

// waitingForTaker says, when every live render node that runs the job's
// Blender is sick or blocked on the job (blocked), that its work waits
// for one that may take it (farm.MayTake), naming those set aside.
func (fr *farmReads) waitingForTaker(blenderVersion string, blocked []string) (string, error) {
	takers, err := fr.takers.get(func() ([]store.Taker, error) { return fr.s.store.LiveTakers(fr.ctx, fr.liveSince) })
	if err != nil || slices.ContainsFunc(takers, func(t store.Taker) bool { return t.Takes(blenderVersion, blocked) }) {
		return "", err
	}
	var aside []string
	for _, name := range blocked {
		aside = append(aside, name+" is blocked on this job (its chunks failed there)")
	}
	sick, err := fr.sick.get(func() ([]store.WorkerHealth, error) { return fr.s.store.SickWorkers(fr.ctx) })
	if err != nil {
		return "", err
	}
	for _, h := range sick {
		aside = append(aside, fmt.Sprintf("%s is sick (`renderfarm workers enable %s` once it is mended)", h.Name, h.Name))
	}
	if len(aside) == 0 {
		return "", nil
	}
	return "a render node that may take the job's chunks: " + strings.Join(aside, "; "), nil
}

func offeredNames(versions []string) string {
	if len(versions) == 0 {
		return "none"
	}
	return strings.Join(versions, ", ")
}

// jobsInProgress are the statuses of the jobs that are the farm's work,
// running or paused: GET /jobs/progress reports them, and their frames
// count against the workspace's MaxFramesInProgress.
var jobsInProgress = []farm.Status{farm.StatusValidating, farm.StatusBooting, farm.StatusRendering, farm.StatusFinalizing, farm.StatusSuspended}

// checkRoomForFrames refuses a request that put adding frames in progress
// once its transaction wrote them, if the workspace's jobs in progress,
// this one's now among them, have more frames than the workspace may, the
// parts of a split frame counting as frames too; doing says what the
// request does. The refusal rolls the request back.
//
// It takes the workspace's row, so that requests of one workspace count
// one after the other, each seeing the frames of those before it (on
// PostgreSQL each statement reads what was committed before it began).
// It takes it last, after the job and tasks the request wrote, as a
// render node's and the dispatcher's transactions take it after the tasks
// they write (store.CountTowardsBudget, MarkServed), so that no two wait
// for each other.
func (s *Service) checkRoomForFrames(ctx context.Context, tx *store.Tx, workspaceID string, adding int, doing string) error {
	if err := tx.LockWorkspace(ctx, workspaceID); err != nil {
		return err
	}
	max := s.cfg.MaxFramesInProgress
	held, err := tx.CountFramesOfJobsWithStatus(ctx, workspaceID, max+1, jobsInProgress...)
	if err != nil {
		return err
	}
	if held <= max {
		return nil
	}
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest,
		Message: fmt.Sprintf("%s %d frames, which with the frames of this workspace's other jobs in progress would pass the %d frames a workspace may have in progress (each part of a split frame counting as a frame too); nothing was done. "+
			"Wait for some of those jobs to end, cancel some (POST /jobs/{id}/cancel), or render fewer frames", doing, adding, max)}
}

// toTheMicrosecond rounds a sum of render seconds to the microsecond. A
// report with its frames adds them up in Go, in frame order; one without
// has the database add them, in its own order and way (SQLite
// compensates for rounding). The sums then differ in their last bits,
// which could move an estimate rounded to a tenth of a second to the
// other side: rounded first, both reports estimate the same.
func toTheMicrosecond(seconds float64) float64 {
	return math.Round(seconds*1e6) / 1e6
}

// progressOf reports a job's frames, counted and, when read, listed,
// and estimates the time left.
func progressOf(job store.Progress) *farm.Progress {
	c := job.Counts
	pr := &farm.Progress{JobID: job.JobID, Status: job.Status, Frames: job.Frames,
		FramesTotal: c.Total, FramesCompleted: c.Completed, FramesRendering: c.Rendering, FramesFailed: c.Failed,
		RenderSeconds: c.CompletedSeconds}
	switch {
	case job.Status == farm.StatusCompleted:
		pr.PercentComplete = 100
	case pr.FramesTotal > 0:
		pr.PercentComplete = math.Round(1000*float64(pr.FramesCompleted)/float64(pr.FramesTotal)) / 10
	}
	if job.Status.IsRunning() && pr.FramesCompleted > 0 && pr.FramesTotal > 0 {
		// Frames left times the mean frame time, shared by the workers that
		// are rendering now.
		parallel := max(1, pr.FramesRendering)
		eta := float64(pr.FramesTotal-pr.FramesCompleted) * c.CompletedSeconds / float64(pr.FramesCompleted) / float64(parallel)
		eta = math.Round(eta*10) / 10
		pr.EtaSeconds = &eta
	}
	return pr
}

// addParts adds to a job's progress its split frames' parts
// (frames[].parts, when the frames are listed), counts by frame, and
// while no frame is merged yet, estimates the time left from the parts:
// the parts left times the mean part's render time, shared by the parts
// rendering now.
func addParts(pr *farm.Progress, counts map[int]store.PartCount) {
	if len(counts) == 0 {
		return
	}
	left, done, rendering := 0, 0, 0
	seconds := 0.0
	for _, c := range counts {
		if !c.FrameCompleted {
			left += c.Total - c.Completed
			rendering += c.Rendering
		}
		done += c.Completed
		seconds += c.Seconds
	}
	for i, f := range pr.Frames {
		c, ok := counts[f.Frame]
		if !ok {
			continue
		}
		parts := c.PartsProgress
		if c.FrameCompleted {
			// Merged: its parts' records are all it needs.
			parts.Completed = parts.Total
		}
		pr.Frames[i].Parts = &parts
	}
	if pr.EtaSeconds == nil && pr.Status.IsRunning() && done > 0 && seconds > 0 {
		eta := math.Round(float64(left)*seconds/float64(done)/float64(max(1, rendering))*10) / 10
		pr.EtaSeconds = &eta
	}
}

// Downloads lists presigned URLs of a job's frames as they land, and of
// the zip and preview video once finalizing made them: every file its
// frames made, or those of the frames and the page of them q asks for
// (the zip and the video are on every page).
func (s *Service) Downloads(ctx context.Context, p farm.Principal, id string, q farm.DownloadsQuery) (*farm.Downloads, error) {
	job, err := s.loadJob(ctx, p, id, s.store.GetJob)
	if err != nil {
		return nil, err
	}
	d := &farm.Downloads{Frames: []string{}, CompositeNodes: []string{}, FrameOutputs: []farm.FileOutput{}, CompositeNodeOutputs: []farm.FileOutput{}}
	if job.Output.IsDeletedForClient {
		return d, nil
	}
	var frames []store.Frame
	var outputs map[int][]farm.FrameOutput
	if span := q.Frames; span != nil {
		if frames, err = s.store.FramesOfJobBetween(ctx, job.ID, span.Start, span.End); err == nil {
			outputs, err = s.store.FrameOutputsOfJobBetween(ctx, job.ID, span.Start, span.End)
		}
	} else if frames, err = s.store.FramesOfJob(ctx, job.ID); err == nil {
		outputs, err = s.store.FrameOutputsOfJob(ctx, job.ID)
	}
	if err != nil {
		return nil, err
	}
	// Every file listed, in order, before any is signed: signing is what
	// costs, and only the page asked for is.
	type listed struct {
		frame int
		file  farm.FrameOutput
	}
	var files []listed
	for _, f := range frames {
		if f.Status != farm.FrameCompleted || f.ObjectKey == "" {
			continue
		}
		made := outputs[f.Frame]
		if len(made) == 0 {
			// Rendered before a frame's files were recorded one by one:
			// its image alone, named as its key.
			name := farm.DownloadName(f.ObjectKey)
			made = []farm.FrameOutput{{Kind: farm.OutputFrame, FileName: name, RelativePath: name, ObjectKey: f.ObjectKey, SizeBytes: f.SizeBytes}}
		}
		for _, o := range made {
			if o.Kind != farm.OutputPreview {
				files = append(files, listed{f.Frame, o})
			}
		}
	}
	page, err := pageOfDownloads(q, len(files), s.cfg.MaxDownloadFiles)
	if err != nil {
		return nil, err
	}
	if page != nil {
		d.Pagination = page
		first := min((page.Page-1)*page.PageSize, len(files))
		files = files[first:min(first+page.PageSize, len(files))]
	}
	for _, l := range files {
		out, err := s.fileOutputOf(ctx, l.file)
		if err != nil {
			return nil, err
		}
		frame := l.frame
		out.Frame = &frame
		if l.file.Kind == farm.OutputCompositeNode {
			d.CompositeNodes = append(d.CompositeNodes, out.URL)
			d.CompositeNodeOutputs = append(d.CompositeNodeOutputs, out)
			continue
		}
		d.Frames = append(d.Frames, out.URL)
		d.FrameOutputs = append(d.FrameOutputs, out)
	}
	if key := job.Files.FramesZipKey; key != "" {
		out, err := s.fileOutput(ctx, key, job.Files.FramesZipSize)
		if err != nil {
			return nil, err
		}
		d.Transforms.FramesZip = &out.URL
		d.Transforms.FramesZipOutputs = &out
	}
	if key := job.Files.CompositeNodesZipKey; key != "" {
		out, err := s.fileOutput(ctx, key, job.Files.CompositeNodesZipSize)
		if err != nil {
			return nil, err
		}
		d.Transforms.CompositeNodesZip = &out.URL
		d.Transforms.CompositeNodesZipOutputs = &out
	}
	if key := job.Files.VideoKey; key != "" {
		out, err := s.fileOutput(ctx, key, job.Files.VideoSize)
		if err != nil {
			return nil, err
		}
		d.Transforms.Video = &farm.VideoOutput{URL: out.URL, FileName: out.FileName, Codec: "h264", FPS: job.Files.VideoFPS, SizeBytes: job.Files.VideoSize}
	}
	return d, nil
}

// pageOfDownloads is the page q asks for of a job's total files, nil for
// all of them; all of more than most is refused, saying how to ask for
// them a page at a time.
func pageOfDownloads(q farm.DownloadsQuery, total, most int) (*farm.Pagination, error) {
	if q.Page == 0 && q.PageSize == 0 {
		if total > most {
			// The pages to ask for are of the span asked for: a client
			// following the message must keep it, or it walks every file.
			made, span := "this job made", ""
			if q.Frames != nil {
				made, span = fmt.Sprintf("frames %s of this job made", q.Frames), fmt.Sprintf("frames=%s&", q.Frames)
			}
			return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "page",
				Message: fmt.Sprintf("%s %d files to download, more than the %d one answer lists; ask for them a page at a time (GET /jobs/{id}/downloads?%spage=1&pageSize=%d, then page=2 …), or download transforms.framesZip, which holds every frame",
					made, total, most, span, min(most, farm.DefaultDownloadsPageSize*10))}
		}
		return nil, nil
	}
	page := farm.Pagination{Page: max(q.Page, 1), PageSize: q.PageSize, Total: total}
	if page.PageSize == 0 {
		page.PageSize = farm.DefaultDownloadsPageSize
	}
	page.TotalPages = (total + page.PageSize - 1) / page.PageSize
	return &page, nil
}

func (s *Service) fileOutput(ctx context.Context, key string, size int64) (farm.FileOutput, error) {
	name := farm.DownloadName(key)
	url, _, err := s.objects.PresignGet(ctx, key, s.cfg.DownloadURLTTL, name)
	if err != nil {
		return farm.FileOutput{}, err
	}
	return farm.FileOutput{URL: url, FileName: name, RelativePath: name, SizeBytes: size}, nil
}

// fileOutputOf is a file a frame made, as a download: its URL downloads it
// under its file name's last part.
func (s *Service) fileOutputOf(ctx context.Context, o farm.FrameOutput) (farm.FileOutput, error) {
	url, _, err := s.objects.PresignGet(ctx, o.ObjectKey, s.cfg.DownloadURLTTL, path.Base(o.FileName))
	if err != nil {
		return farm.FileOutput{}, err
	}
	out := farm.FileOutput{URL: url, FileName: o.FileName, View: o.View, RelativePath: o.RelativePath, SizeBytes: o.SizeBytes}
	if o.Kind == farm.OutputCompositeNode {
		name := o.CompositeNodeName
		out.CompositeNodeName = &name
	}
	return out, nil
}
