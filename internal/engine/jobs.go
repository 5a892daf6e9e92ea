package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// maxFileNameBytes bounds an upload's file name, as file systems do.
const maxFileNameBytes = 255

// CreateUpload checks the file name and type and returns a presigned URL
// that the file is PUT to.
func (e *Engine) CreateUpload(ctx context.Context, p farm.Principal, fileName, fileType string) (*farm.UploadTicket, error) {
	if err := checkFileName(fileName, fileType); err != nil {
		return nil, err
	}
	slug := uuid.NewString()
	key := farm.UploadKey(slug, fileName)
	if err := objstore.ValidateKey(key); err != nil {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "fileName",
			Message: fmt.Sprintf("fileName %q cannot be stored: %v; rename the file", fileName, err)}
	}
	url, expires, err := e.objects.PresignPut(ctx, key, e.cfg.UploadURLTTL)
	if err != nil {
		return nil, fmt.Errorf("presign upload: %w", err)
	}
	err = e.store.InsertUpload(ctx, store.Upload{
		Slug: slug, WorkspaceID: p.WorkspaceID, FileName: fileName, FileType: fileType, ObjectKey: key,
		CreatedAt: time.Now().UTC(), ExpiresAt: expires.UTC(),
	})
	if err != nil {
		return nil, err
	}
	return &farm.UploadTicket{UploadURL: url, Slug: slug, ExpiresAt: expires.UTC()}, nil
}

func checkFileName(fileName, fileType string) error {
	invalid := func(field, format string, args ...any) error {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case fileName == "":
		return invalid("fileName", "fileName is required, for example \"scene.blend\"")
	case len(fileName) > maxFileNameBytes:
		return invalid("fileName", "fileName is %d bytes long; keep it under %d", len(fileName), maxFileNameBytes)
	case !utf8.ValidString(fileName) || strings.ContainsAny(fileName, "/\\\x00") || fileName == "." || fileName == "..":
		return invalid("fileName", "fileName %q must be a plain file name, without folders", fileName)
	}
	ext := strings.ToLower(path.Ext(fileName))
	switch fileType {
	case farm.FileTypeBlend, farm.FileTypeZip:
	case "":
		return invalid("fileType", "fileType is required: \"blend\" or \"zip\"")
	default:
		return invalid("fileType", "fileType must be \"blend\" or \"zip\", not %q", fileType)
	}
	if ext != "."+fileType {
		return invalid("fileType", "fileType %q does not match the extension of %q; a .blend file is \"blend\", a .zip project is \"zip\"", fileType, fileName)
	}
	return nil
}

// CreateJob makes a job from an upload whose file has arrived.
func (e *Engine) CreateJob(ctx context.Context, p farm.Principal, slug string) (*farm.Job, error) {
	slug = strings.TrimSpace(slug)
	if slug == "" {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "slug", Message: "slug is required: the slug that POST /uploads answered"}
	}
	up, err := e.store.GetUpload(ctx, p.WorkspaceID, slug)
	if errors.Is(err, store.ErrNotFound) {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeUploadNotFound, Field: "slug",
			Message: fmt.Sprintf("no upload with slug %q in this workspace; create one with POST /uploads and PUT the file to its uploadUrl", slug)}
	}
	if err != nil {
		return nil, err
	}
	if up.JobID != "" {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeSlugUsed, Field: "slug",
			Message: fmt.Sprintf("slug %q was already used for job %s; upload the file again to make another job", slug, up.JobID)}
	}
	info, err := e.objects.Stat(ctx, up.ObjectKey)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, uploadMissing(slug, up)
	}
	if err != nil {
		return nil, err
	}
	if max := e.maxInputBytes(); info.Size > max {
		return nil, e.refuseTooLarge(ctx, up, info.Size, max)
	}
	// The job renders a copy of the file that no URL can write: the upload
	// URL stays valid until it expires (on a bucket it cannot be revoked),
	// so a file sent to it after this moment must not be what validation
	// checks or Blender opens.
	jobID := uuid.NewString()
	inputKey := farm.JobInputKey(jobID, up.FileName)
	input, err := e.objects.Copy(ctx, up.ObjectKey, inputKey, e.maxInputBytes())
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return nil, uploadMissing(slug, up)
	case errors.Is(err, objstore.ErrTooLarge):
		// Replaced by a larger file since the size was checked.
		return nil, e.refuseTooLarge(ctx, up, 0, e.maxInputBytes())
	case errors.Is(err, objstore.ErrChanged):
		return nil, &farm.Error{Kind: farm.KindConflict, Code: farm.CodeConflict, Field: "slug",
			Message: fmt.Sprintf("the file of slug %q was replaced while the job was being made from it, so no job was made; create the job again once the upload is done", slug)}
	case err != nil:
		return nil, fmt.Errorf("copy the upload of slug %s: %w", slug, err)
	}
	now := time.Now().UTC()
	job := &farm.Job{
		ID: jobID, Status: farm.StatusCreated, WorkspaceID: p.WorkspaceID, UserID: p.KeyID,
		CreatedAt: now, UpdatedAt: now, Slug: slug,
		SceneFile: &farm.SceneFile{FileName: up.FileName, FileType: up.FileType, SizeBytes: input.Size},
	}
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.ClaimUpload(ctx, slug, job.ID, inputKey); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeSlugUsed, Field: "slug", Message: fmt.Sprintf("slug %q was already used for another job", slug)}
			}
			return err
		}
		return tx.InsertJob(ctx, job)
	})
	if err != nil {
		// No job reads the copy; the claim that won has its own.
		if delErr := e.objects.Delete(context.WithoutCancel(ctx), inputKey); delErr != nil {
			e.log.Warn("could not remove the input copy of a job that was not made", "key", inputKey, "err", delErr)
		}
		return nil, err
	}
	// The upload's object has served its purpose. Should this fail, or a
	// PUT land there later, the sweep of stray uploads removes it.
	if err := e.objects.Delete(context.WithoutCancel(ctx), up.ObjectKey); err != nil {
		e.log.Warn("could not remove an upload made into a job", "key", up.ObjectKey, "err", err)
	}
	e.cfg.Metrics.Uploaded(input.Size)
	return e.present(ctx, job), nil
}

func uploadMissing(slug string, up store.Upload) error {
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeUploadMissing, Field: "slug",
		Message: fmt.Sprintf("the file for slug %q never arrived; PUT it to the uploadUrl (valid until %s) before creating the job", slug, up.ExpiresAt.Format(time.RFC3339))}
}

// refuseTooLarge drops an upload over the limit (a bucket takes any size
// through a presigned PUT) and says so; size is 0 when unknown.
func (e *Engine) refuseTooLarge(ctx context.Context, up store.Upload, size, max int64) error {
	if err := e.objects.Delete(ctx, up.ObjectKey); err != nil {
		e.log.Warn("could not remove an upload over the size limit", "key", up.ObjectKey, "err", err)
	}
	what := "the uploaded file is"
	if size > 0 {
		what = fmt.Sprintf("the uploaded file is %d bytes,", size)
	}
	return &farm.Error{Kind: farm.KindTooLarge, Code: farm.CodeTooLarge, Field: "slug",
		Message: fmt.Sprintf("%s over this farm's limit of %d bytes; it was removed", what, max)}
}

// Codes of the refusals an upload URL answers once its upload is closed.
const (
	codeUploadUsed     = "UPLOAD_USED"
	codeUploadDeleted  = "UPLOAD_DELETED"
	codeUploadNotFound = farm.CodeUploadNotFound
)

// AcceptUploadPut answers, for the local store's upload URLs
// (objstore.LocalConfig.AcceptPut), whether key may still be written: only
// while its upload exists and no job was made from it. A job renders its
// own copy of the file, so writing the upload afterwards would change
// nothing the farm uses; refusing it tells the client so, and keeps a
// deleted job's file from coming back. A bucket's presigned URLs cannot be
// asked; there the sweep of stray uploads removes what arrives late.
func AcceptUploadPut(st *store.Store) func(ctx context.Context, key string) error {
	return func(ctx context.Context, key string) error {
		slug, ok := farm.UploadSlug(key)
		if !ok {
			return &objstore.PutRefusal{Status: http.StatusForbidden, Code: codeUploadNotFound,
				Message: "this URL does not take uploads; request an upload URL with POST /uploads"}
		}
		up, err := st.GetUploadState(ctx, slug)
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && up.ObjectKey != key:
			return &objstore.PutRefusal{Status: http.StatusNotFound, Code: codeUploadNotFound,
				Message: "this upload no longer exists: it expired and was removed; request a new upload URL with POST /uploads and send the file there"}
		case err != nil:
			return err
		case up.JobID != "" && up.JobDeleted:
			return &objstore.PutRefusal{Status: http.StatusConflict, Code: codeUploadDeleted,
				Message: fmt.Sprintf("this upload belongs to job %s, which was deleted, so nothing can be sent to it any more; to render a file, request a new upload URL with POST /uploads, send the file there and create a job from its slug", up.JobID)}
		case up.JobID != "":
			return &objstore.PutRefusal{Status: http.StatusConflict, Code: codeUploadUsed,
				Message: fmt.Sprintf("this upload was used to create job %s, which renders the file as it was then and cannot be changed; to render another file, request a new upload URL with POST /uploads, send the file there and create a job from its slug", up.JobID)}
		}
		return nil
	}
}

// GetJob returns one job of the workspace.
func (e *Engine) GetJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	job, err := e.loadJob(ctx, e.store.Queries, p, id)
	if err != nil {
		return nil, err
	}
	return e.present(ctx, job), nil
}

// ListJobs returns a page of the workspace's jobs, newest first.
func (e *Engine) ListJobs(ctx context.Context, p farm.Principal, q farm.ListQuery) (*farm.JobPage, error) {
	if q.Page < 1 {
		q.Page = 1
	}
	if q.PageSize < 1 {
		q.PageSize = farm.DefaultPageSize
	}
	q.PageSize = min(q.PageSize, farm.MaxPageSize)
	jobs, total, err := e.store.ListJobs(ctx, p.WorkspaceID, q.Status, q.PageSize, (q.Page-1)*q.PageSize)
	if err != nil {
		return nil, err
	}
	for i := range jobs {
		jobs[i] = *e.present(ctx, &jobs[i])
	}
	return &farm.JobPage{Jobs: jobs, Pagination: farm.Pagination{
		Page: q.Page, PageSize: q.PageSize, Total: total, TotalPages: (total + q.PageSize - 1) / q.PageSize,
	}}, nil
}

// Validate starts checking the job's file.
func (e *Engine) Validate(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = e.lockJob(ctx, tx, p, id); err != nil {
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
		if err := e.moveJob(ctx, tx, job, farm.StatusValidating); err != nil {
			return err
		}
		_, err = e.enqueue(ctx, tx, job.ID, store.TaskValidate, 0, func(ref taskRef) river.JobArgs { return validateArgs{ref} }, nil)
		return err
	})
	if err != nil {
		return nil, err
	}
	return e.present(ctx, job), nil
}

// Render checks the request against the analysis, fixes the final
// configuration and queues the job's chunks. A repeated request for a job
// that already started answers the job as it is, with replay set.
func (e *Engine) Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (*farm.Job, bool, error) {
	var job *farm.Job
	replay := false
	expected, err := e.expectedWorkers(ctx)
	if err != nil {
		return nil, false, err
	}
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = e.lockJob(ctx, tx, p, id); err != nil {
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
		final, frames, err := farm.ResolveConfig(cfg, job.Analysis, farm.WorkerCaps{ExpectedWorkers: expected})
		if err != nil {
			return err
		}
		job.RequestedConfig, job.FinalConfig = cfg, final
		if err := e.moveJob(ctx, tx, job, farm.StatusBooting); err != nil {
			return err
		}
		return e.enqueueChunks(ctx, tx, job.ID, farm.Chunks(frames, final.ChunkSize))
	})
	if err != nil {
		return nil, false, err
	}
	return e.present(ctx, job), replay, nil
}

// expectedWorkers is how many workers a new job's frames are spread over.
func (e *Engine) expectedWorkers(ctx context.Context) (int, error) {
	if e.cfg.RenderWorkers > 0 {
		return e.cfg.RenderWorkers, nil
	}
	n, err := e.store.LiveWorkers(ctx, time.Now().Add(-e.cfg.WorkerTimeout))
	return max(n, 1), err
}

// enqueueChunks records a task and its frames for every chunk and queues
// the chunks' River jobs with one insert. One insert for all of them,
// rather than one a chunk, is what keeps a request for thousands of chunks
// short: at 10,000 chunks of one frame on SQLite it took the render
// request from 1.9 s to 0.7 s (bench/suite, docs/performance.md).
func (e *Engine) enqueueChunks(ctx context.Context, tx *store.Tx, jobID string, chunks [][]int) error {
	now := time.Now().UTC()
	params := make([]river.InsertManyParams, 0, len(chunks))
	for i, frames := range chunks {
		task := store.Task{ID: uuid.NewString(), JobID: jobID, Kind: store.TaskRender, Chunk: i, Status: store.TaskQueued, Generation: 1, CreatedAt: now, UpdatedAt: now}
		if err := tx.InsertTask(ctx, task); err != nil {
			return err
		}
		for _, f := range frames {
			if err := tx.InsertFrame(ctx, store.Frame{JobID: jobID, Frame: f, TaskID: task.ID, Status: farm.FrameQueued, UpdatedAt: now}); err != nil {
				return err
			}
		}
		params = append(params, river.InsertManyParams{
			Args:       renderArgs{taskRef: taskRef{JobID: jobID, TaskID: task.ID, Generation: task.Generation}, Frames: frames},
			InsertOpts: &river.InsertOpts{MaxAttempts: e.cfg.RenderAttempts},
		})
	}
	results, err := e.river.InsertManyTx(ctx, tx.SQL(), params)
	if err != nil {
		return fmt.Errorf("queue %s: %w", store.TaskRender, err)
	}
	if len(results) != len(params) {
		return fmt.Errorf("queue %s: %d of %d chunks were queued", store.TaskRender, len(results), len(params))
	}
	// Each River job names its task in its arguments, which is surer than
	// the order the database returns the inserted rows in.
	for _, res := range results {
		var args renderArgs
		if err := json.Unmarshal(res.Job.EncodedArgs, &args); err != nil {
			return fmt.Errorf("queue %s: River job %d: %w", store.TaskRender, res.Job.ID, err)
		}
		if err := tx.SetTaskRiverJob(ctx, args.TaskID, res.Job.ID); err != nil {
			return err
		}
	}
	return nil
}

// enqueue records a task and inserts the River job that carries it out, in
// the caller's transaction.
func (e *Engine) enqueue(ctx context.Context, tx *store.Tx, jobID string, kind store.TaskKind, chunk int, args func(taskRef) river.JobArgs, opts *river.InsertOpts) (string, error) {
	now := time.Now().UTC()
	task := store.Task{ID: uuid.NewString(), JobID: jobID, Kind: kind, Chunk: chunk, Status: store.TaskQueued, Generation: 1, CreatedAt: now, UpdatedAt: now}
	if err := tx.InsertTask(ctx, task); err != nil {
		return "", err
	}
	return task.ID, e.insertRiverJob(ctx, tx, task, args(taskRef{JobID: jobID, TaskID: task.ID, Generation: task.Generation}), opts)
}

func (e *Engine) insertRiverJob(ctx context.Context, tx *store.Tx, task store.Task, args river.JobArgs, opts *river.InsertOpts) error {
	res, err := e.river.InsertTx(ctx, tx.SQL(), args, opts)
	if err != nil {
		return fmt.Errorf("queue %s: %w", task.Kind, err)
	}
	return tx.SetTaskRiverJob(ctx, task.ID, res.Job.ID)
}

// Cancel stops a job: queued chunks are dropped, running ones are killed,
// and frames already rendered stay downloadable.
func (e *Engine) Cancel(ctx context.Context, p farm.Principal, id string) (*farm.Job, error) {
	var job *farm.Job
	err := e.store.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if job, err = e.lockJob(ctx, tx, p, id); err != nil {
			return err
		}
		if job.Status.IsFinal() {
			return farm.InvalidState("cancel", job.Status, "only a job in progress can be canceled")
		}
		if err := e.moveJob(ctx, tx, job, farm.StatusCanceled); err != nil {
			return err
		}
		return e.cancelWork(ctx, tx, job.ID)
	})
	if err != nil {
		return nil, err
	}
	return e.present(ctx, job), nil
}

// cancelWork stops every unfinished task of a job: their River jobs are
// canceled (a running one's context ends, which kills its Blender) and
// their unfinished frames are marked canceled.
func (e *Engine) cancelWork(ctx context.Context, tx *store.Tx, jobID string) error {
	tasks, err := tx.CancelTasksOfJob(ctx, jobID)
	if err != nil {
		return err
	}
	for _, t := range tasks {
		if t.RiverJobID == 0 {
			continue
		}
		if _, err := e.river.JobCancelTx(ctx, tx.SQL(), t.RiverJobID); err != nil && !errors.Is(err, river.ErrNotFound) {
			return fmt.Errorf("cancel task %s: %w", t.ID, err)
		}
	}
	return tx.MoveFramesOfJob(ctx, jobID, farm.FrameCanceled)
}

// loadJob finds a job of the principal's workspace, as a 404 otherwise.
func (e *Engine) loadJob(ctx context.Context, q store.Queries, p farm.Principal, id string) (*farm.Job, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, farm.NotFound("job", id)
	}
	job, err := q.GetJob(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, farm.NotFound("job", id)
	}
	return job, err
}

// lockJob is loadJob for a transaction that changes the job: on
// PostgreSQL the row stays locked until the transaction ends, so two
// requests (or a request and a worker) cannot both act on what they read.
func (e *Engine) lockJob(ctx context.Context, tx *store.Tx, p farm.Principal, id string) (*farm.Job, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, farm.NotFound("job", id)
	}
	job, err := tx.LockJob(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, farm.NotFound("job", id)
	}
	return job, err
}

// present fills in what a job shows but does not store: its preview URL.
func (e *Engine) present(ctx context.Context, job *farm.Job) *farm.Job {
	job.PreviewURL = nil
	if job.Files.PreviewKey != "" && !job.Output.IsDeletedForClient {
		url, _, err := e.objects.PresignGet(ctx, job.Files.PreviewKey, e.cfg.DownloadURLTTL, path.Base(job.Files.PreviewKey))
		if err == nil {
			job.PreviewURL = &url
		}
	}
	return job
}
