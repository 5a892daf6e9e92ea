package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/outage"
	"github.com/renderfarm/renderfarm/internal/store"
)

// CreateJob makes a job from an upload whose file has arrived.
func (s *Service) CreateJob(ctx context.Context, p farm.Principal, slug string) (*farm.Job, error) {
	slug = strings.TrimSpace(slug)
	if slug == "" {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "slug", Message: "slug is required: the slug that POST /uploads answered"}
	}
	// Every slug is a uuid.NewString(), so nothing else can name an
	// upload; refusing it here also keeps text PostgreSQL cannot store (a
	// NUL) from reaching the database as a query's parameter.
	if !isSlug(slug) {
		return nil, uploadNotFound(slug)
	}
	up, err := s.store.GetUpload(ctx, p.WorkspaceID, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, uploadNotFound(slug)
	}
	if err != nil {
		return nil, err
	}
	if up.JobID != "" {
		return nil, slugUsed(slug, up.JobID)
	}
	info, err := s.objects.Stat(ctx, up.ObjectKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, s.uploadGone(ctx, p, up)
	}
	if err != nil {
		return nil, err
	}
	if max := s.maxInputBytes(); info.Size > max {
		return nil, s.refuseTooLarge(ctx, up, info.Size, max)
	}
	if err := s.checkRoomForUploadedFile(ctx, up, info.Size); err != nil {
		return nil, err
	}
	// The job renders a copy of the file that no URL can write: the upload
	// URL stays valid until it expires (on a bucket it cannot be revoked),
	// so a file sent to it after this moment must not be what validation
	// checks or Blender opens.
	jobID := uuid.NewString()
	inputKey := farm.JobInputKey(jobID, up.FileName)
	// Should this process die once the copy is made and before the job
	// is, no row would name the copy: its removal is queued first, and
	// the transaction that makes the job takes it back.
	guard, err := s.engine.GuardInputCopy(ctx, jobID, inputKey)
	if err != nil {
		return nil, err
	}
	input, err := s.objects.Copy(ctx, up.ObjectKey, inputKey, s.maxInputBytes())
	if err != nil {
		// A copy that failed may still have landed (a bucket made it and
		// the answer was lost): no job will name this key.
		s.removeUnusedInput(ctx, inputKey, guard)
	}
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return nil, s.uploadGone(ctx, p, up)
	case errors.Is(err, objstore.ErrTooLarge):
		// Replaced by a larger file since the size was checked.
		return nil, s.refuseTooLarge(ctx, up, 0, s.maxInputBytes())
	case errors.Is(err, objstore.ErrChanged):
		return nil, &farm.Error{Kind: farm.KindConflict, Code: farm.CodeConflict, Field: "slug",
			Message: fmt.Sprintf("the file of slug %q was replaced while the job was being made from it, so no job was made; create the job again once the upload is done", slug)}
	case err != nil:
		return nil, fmt.Errorf("copy the upload of slug %s: %w", slug, err)
	}
	now := time.Now().UTC()
	job := &farm.Job{
		ID: jobID, Status: farm.StatusCreated, WorkspaceID: p.WorkspaceID, UserID: p.KeyID,
		CreatedAt: now, UpdatedAt: now, Slug: slug, Priority: farm.DefaultPriority,
		SceneFile: &farm.SceneFile{FileName: up.FileName, FileType: up.FileType, SizeBytes: input.Size},
	}
	overQuota := false
	err = s.makeJobTx(ctx, func(tx *store.Tx) error {
		// The room counted above may have been taken since by a job made
		// at the same moment from another of the workspace's uploads. The
		// workspace's lock makes the jobs of one workspace count the room
		// and take it one after the other, each seeing the jobs made
		// before it.
		if err := tx.LockWorkspace(ctx, p.WorkspaceID); err != nil {
			return err
		}
		// A job made from this very slug meanwhile holds its file: that
		// is what to answer, not the quota it now takes.
		current, err := tx.GetUpload(ctx, p.WorkspaceID, slug)
		if err != nil {
			return err
		}
		if current.JobID != "" {
			return slugUsed(slug, current.JobID)
		}
		st, err := tx.GetWorkspaceStorage(ctx, p.WorkspaceID, slug)
		if err != nil {
			return err
		}
		if input.Size > st.Left() {
			overQuota = true
			return uploadOverQuota(st, input.Size)
		}
		if err := tx.ClaimUpload(ctx, slug, job.ID, inputKey); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return slugUsed(slug, "")
			}
			return err
		}
		if err := tx.RecordUploadSize(ctx, slug, input.Size); err != nil {
			return err
		}
		if err := s.engine.KeepInputCopy(ctx, tx, guard); err != nil {
			return err
		}
		return tx.InsertJob(ctx, job)
	})
	if outage.Is(err) {
		// The transaction may have committed and only its answer been
		// lost (the connection dropped as the database answered): the
		// upload says whether it made the job. Should the database not
		// say, the copy is left to its guard, which the job, if made,
		// took back.
		switch made, known := s.jobMadeFrom(ctx, slug, jobID); {
		case made:
			s.log.Warn("the job was made though the answer of its transaction was lost", "job", jobID, "err", err)
			err = nil
		case !known:
			return nil, err
		}
	}
	if err != nil {
		// No job reads the copy; the claim that won has its own.
		s.removeUnusedInput(ctx, inputKey, guard)
		if overQuota {
			s.removeUploadOverQuota(context.WithoutCancel(ctx), up)
		}
		return nil, err
	}
	// The upload's object has served its purpose. Should this fail, or a
	// PUT land there later, the sweep of stray uploads removes it.
	if err := s.objects.Delete(context.WithoutCancel(ctx), up.ObjectKey); err != nil {
		s.log.Warn("could not remove an upload made into a job", "key", up.ObjectKey, "err", err)
	}
	s.cfg.Metrics.Uploaded(input.Size)
	return s.present(ctx, job), nil
}

// jobMadeFrom reports whether the upload of slug made job jobID, and
// whether the database could say.
func (s *Service) jobMadeFrom(ctx context.Context, slug, jobID string) (made, known bool) {
	up, err := s.store.GetUploadState(context.WithoutCancel(ctx), slug)
	if err != nil {
		return false, false
	}
	return up.JobID == jobID, true
}

// removeUnusedInput removes the copy of an upload made at key for a job
// that was not made, and then the removal guard queued for it
// (engine.GuardInputCopy); should the copy stay, the guard removes it in
// its time.
func (s *Service) removeUnusedInput(ctx context.Context, key string, guard int64) {
	ctx = context.WithoutCancel(ctx)
	if err := s.objects.Delete(ctx, key); err != nil {
		s.log.Warn("could not remove the input copy of a job that was not made; it is removed later", "key", key, "err", err)
		return
	}
	s.engine.DropInputCopyGuard(ctx, guard)
}

// GetJob returns one job of the workspace.
func (s *Service) GetJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	job, err := s.loadJob(ctx, p, id, s.store.GetJob)
	if err != nil {
		return nil, err
	}
	return s.present(ctx, job), nil
}

// ListJobs returns a page of the workspace's jobs, newest first.
func (s *Service) ListJobs(ctx context.Context, p farm.Principal, q farm.ListQuery) (*farm.JobPage, error) {
	if q.Page < 1 {
		q.Page = 1
	}
	if q.PageSize < 1 {
		q.PageSize = farm.DefaultPageSize
	}
	q.PageSize = min(q.PageSize, farm.MaxPageSize)
	jobs, total, err := s.store.ListJobs(ctx, p.WorkspaceID, q.Status, q.PageSize, (q.Page-1)*q.PageSize)
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		jobs[i] = *s.present(ctx, &jobs[i])
	}
	return &farm.JobPage{Jobs: jobs, Pagination: farm.Pagination{
		Page: q.Page, PageSize: q.PageSize, Total: total, TotalPages: (total + q.PageSize - 1) / q.PageSize,
	}}, nil
}

// Validate starts checking the job's file.
func (s *Service) Validate(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		switch job.Status {
		case farm.StatusCreated:
		case farm.StatusValidating:
			return farm.InvalidState("validate", job.Status, "validation is already running; follow it with GET /jobs/"+id)
		case farm.StatusValidated:
			return farm.InvalidState("validate", job.Status, "it is already validated; start it with POST /jobs/"+id+"/render")
		default:
			return farm.InvalidState("validate", job.Status, "only a job in status created can be validated")
		}
		if err := s.engine.MoveJob(ctx, tx, job, farm.StatusValidating); err != nil {
			return err
		}
		_, err = s.engine.Enqueue(ctx, tx, job, store.TaskValidate)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.present(ctx, job), nil
}

// Render checks the request against the analysis and the farm's
// workers, fixes the final configuration and queues the job's chunks,
// which wait for workers that can render them; once that is committed,
// the idle workers' free slots take the chunks the farm's rule picks. A
// repeated request for a job that already started answers the job as it
// is, with replay set.
func (s *Service) Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (*farm.Job, bool, error) {
	var job *farm.Job
	replay := false
	chunks := 0
	expected, err := s.expectedWorkers(ctx)
	if err != nil {
		return nil, false, err
	}
	offers, err := s.store.LiveBlenderVersions(ctx, s.liveSince())
	if err != nil {
		return nil, false, err
	}
	workers, err := s.store.RegisteredWorkers(ctx)
	if err != nil {
		return nil, false, err
	}
	caps := farm.WorkerCaps{ExpectedWorkers: expected, BlenderVersions: versionsOf(offers), Workers: workers}
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		if job.Status.HasStartedRendering() {
			replay = true
			return nil
		}
		switch job.Status {
		case farm.StatusValidated:
		case farm.StatusCreated:
			return farm.InvalidState("render", job.Status, "validate it first with POST /jobs/"+id+"/validate")
		case farm.StatusValidating:
			return farm.InvalidState("render", job.Status, "wait until validation is done (status validated)")
		default:
			return farm.InvalidState("render", job.Status, "")
		}
		if cfg.IsEmpty() {
			return farm.Invalid(farm.CodeInvalidConfig, "requestedRenderConfig is missing or empty; send at least {\"colorManagementPreset\": \"default\"}")
		}
		final, frames, err := farm.ResolveConfig(cfg, job.Analysis, caps)
		if err != nil {
			return err
		}
		if err := checkSplit(final); err != nil {
			return err
		}
		// What the render puts in progress: its frames, and the parts
		// of each when they are split.
		adding, doing := len(frames), "this render asks for"
		if parts := final.PartsPerFrame(); parts > 1 {
			adding += len(frames) * parts
			doing = "this render, its frames in parts, asks for"
		}
		job.RequestedConfig, job.FinalConfig = cfg, final
		if cfg.Priority != nil {
			job.Priority = *cfg.Priority
		}
		if err := s.engine.MoveJob(ctx, tx, job, farm.StatusBooting); err != nil {
			return err
		}
		// Every chunk waits for a worker that runs the job's Blender and
		// has what the request asks for; while none is live, they wait
		// (progress says so).
		scouts := final.Scouts()
		if scouts == nil {
			all := farm.Chunks(frames, final.ChunkSize)
			chunks = len(all)
			if err := s.engine.EnqueueChunks(ctx, tx, job, all); err != nil {
				return err
			}
			return s.checkRoomForFrames(ctx, tx, p.WorkspaceID, adding, doing)
		}
		// The scout frames render first; the others are held, with no
		// chunk, until the job is resumed (node.recordChunk suspends it
		// once the scouts are done).
		if err := s.engine.EnqueueChunks(ctx, tx, job, farm.Chunks(scouts, final.ChunkSize)); err != nil {
			return err
		}
		now := time.Now().UTC()
		for _, f := range frames {
			if _, scout := slices.BinarySearch(scouts, f); scout {
				continue
			}
			if err := tx.QueueFrame(ctx, store.Frame{JobID: job.ID, Frame: f, Status: farm.FrameQueued, UpdatedAt: now}); err != nil {
				return err
			}
		}
		return s.checkRoomForFrames(ctx, tx, p.WorkspaceID, adding, doing)
	})
	if err != nil {
		return nil, false, err
	}
	if chunks >= store.ManyChunks {
		// Before the dispatch, whose reads these statistics plan.
		if err := s.store.RefreshPlannerStats(context.WithoutCancel(ctx)); err != nil {
			s.log.Warn("could not refresh the database's statistics after a large render request; autovacuum will", "chunks", chunks, "err", err)
		}
	}
	if !replay {
		s.dispatch(ctx)
	}
	return s.present(ctx, job), replay, nil
}

// dispatch gives waiting chunks to the idle workers' free slots. The
// request it follows is committed already, so a failure here is only
// logged: the reaper's periodic dispatch gives the chunks out.
func (s *Service) dispatch(ctx context.Context) {
	if _, err := s.engine.DispatchIdle(context.WithoutCancel(ctx)); err != nil {
		s.log.Warn("could not give waiting chunks to idle workers; the next periodic dispatch will", "err", err)
	}
}

// SetPriority changes a job's priority, at any status: its waiting
// chunks take it at the next dispatch; its running chunks go on.
func (s *Service) SetPriority(ctx context.Context, p farm.Principal, id string, priority int) (*farm.Job, error) {
	if err := farm.CheckPriority("priority", priority); err != nil {
		return nil, err
	}
	var job *farm.Job
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		job.Priority = priority
		if err := tx.UpdateJob(ctx, job); err != nil {
			return err
		}
		return tx.SetWaitingPriority(ctx, job.ID, priority)
	})
	if err != nil {
		return nil, err
	}
	return s.present(ctx, job), nil
}

// expectedWorkers is how many workers a new job's frames are spread over.
func (s *Service) expectedWorkers(ctx context.Context) (int, error) {
	if s.cfg.LocalRenderSlots > 0 {
		return s.cfg.LocalRenderSlots, nil
	}
	n, err := s.store.LiveWorkers(ctx, s.liveSince())
	return max(n, 1), err
}

// liveSince is the oldest heartbeat of a worker that counts as alive.
func (s *Service) liveSince() time.Time { return time.Now().Add(-s.cfg.WorkerTimeout) }

// BlenderVersions lists the Blender versions the farm's live render nodes
// offer, with how many offer each: what a render request's blenderVersion
// may pin.
func (s *Service) BlenderVersions(ctx context.Context, _ farm.Principal) (*farm.BlenderOffers, error) {
	offers, err := s.store.LiveBlenderVersions(ctx, s.liveSince())
	if err != nil {
		return nil, err
	}
	return &farm.BlenderOffers{Versions: offers}, nil
}

func versionsOf(offers []farm.BlenderOffer) []string {
	versions := make([]string, len(offers))
	for i, o := range offers {
		versions[i] = o.Version
	}
	return versions
}

// Cancel stops a job: queued chunks are dropped, running ones are killed,
// and frames already rendered stay downloadable.
func (s *Service) Cancel(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := s.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = s.loadJob(ctx, p, id, tx.LockJob); err != nil {
			return err
		}
		if job.Status.IsFinal() {
			return farm.InvalidState("cancel", job.Status, "only a job in progress can be canceled")
		}
		finalizing := job.Status == farm.StatusFinalizing
		if err := s.engine.MoveJob(ctx, tx, job, farm.StatusCanceled); err != nil {
			return err
		}
		if finalizing {
			// A finalizing may have stored the zips or the preview, which
			// only a completed job records: its holder removes them as it
			// ends, but not one whose node died.
			if err := s.engine.Insert(ctx, tx, engine.DeleteObjectsArgs{JobID: job.ID, Outputs: true}); err != nil {
				return err
			}
		}
		return s.engine.CancelWork(ctx, tx, job.ID)
	})
	if err != nil {
		return nil, err
	}
	// The slots its chunks held, started or only given, take other work.
	s.dispatch(ctx)
	return s.present(ctx, job), nil
}

// checkSplit refuses a split frame the farm cannot render
// (blender.CheckSplit), as a 400 naming the request's field.
func checkSplit(fc *farm.FinalConfig) error {
	if fc.SplitFrame == nil {
		return nil
	}
	err := blender.CheckSplit(blender.SplitRequest{
		Mode:         blender.SplitMode(fc.SplitFrame.Mode),
		Parts:        fc.SplitFrame.Parts,
		Engine:       fc.RenderEngine,
		OutputFormat: fc.OutputFormat,
		Samples:      fc.SampleCount,
		Denoising:    fc.DenoisingEnabled,
	})
	var se *blender.SplitError
	if !errors.As(err, &se) {
		return err
	}
	field := se.Field
	if field == "engine" {
		field = "renderEngine" // the request's name for it
	}
	return farm.InvalidField(field, "%s", se.Message)
}
