package httpapi

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

func (a *api) createUpload(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	const example = `{"fileName": "scene.blend", "fileType": "blend"}`
	var req struct {
		FileName string `json:"fileName"`
		FileType string `json:"fileType"`
	}
	if err := a.decode(w, r, &req, example); err != nil {
		return err
	}
	if req.FileName == "" {
		return missing("fileName", "send the name of the file you will upload, as in "+example)
	}
	if req.FileType == "" {
		return missing("fileType", `send "blend" for a .blend file or "zip" for a project .zip, matching the file name`)
	}
	t, err := a.farm.CreateUpload(r.Context(), p, req.FileName, req.FileType)
	if err != nil {
		return err
	}
	if t == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireTicket(*t))
}

func (a *api) createJob(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	var req struct {
		Slug string `json:"slug"`
	}
	if err := a.decode(w, r, &req, `{"slug": "…"}`); err != nil {
		return err
	}
	if req.Slug == "" {
		return missing("slug", `send the slug that POST /uploads answered, as {"slug": "…"}`)
	}
	job, err := a.farm.CreateJob(r.Context(), p, req.Slug)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusCreated, job)
}

func (a *api) listJobs(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	q, err := parseListQuery(r.URL.Query())
	if err != nil {
		return err
	}
	page, err := a.farm.ListJobs(r.Context(), p, q)
	if err != nil {
		return err
	}
	if page == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireJobPage(*page))
}

// maxPage keeps the row offset a page implies far from overflowing.
const maxPage = 1<<31 - 1

func parseListQuery(v url.Values) (farm.ListQuery, error) {
	q := farm.ListQuery{Page: 1, PageSize: farm.DefaultPageSize}
	if err := parsePage(v, &q.Page, &q.PageSize, farm.MaxPageSize); err != nil {
		return q, err
	}
	if s := v.Get("status"); s != "" {
		st, ok := farm.ParseStatus(s)
		if !ok {
			names := make([]string, len(farm.AllStatuses))
			for i, st := range farm.AllStatuses {
				names[i] = string(st)
			}
			return q, badParam("status", "status must be one of %s, not %q", strings.Join(names, ", "), s)
		}
		q.Status = st
	}
	return q, nil
}

// parseDownloadsQuery reads what a job's downloads are to list (ours):
// every file, or page and pageSize, either defaulting; of every frame, or
// of frames=A-B.
func parseDownloadsQuery(v url.Values) (farm.DownloadsQuery, error) {
	var q farm.DownloadsQuery
	if s := v.Get("frames"); s != "" {
		span, err := farm.ParseFrameSpan(s)
		if err != nil {
			return q, badParam("frames", "frames must be a span of frame numbers such as 1001-2000, or one frame such as 7, to list only those frames' files; %v", err)
		}
		q.Frames = &span
	}
	err := parsePage(v, &q.Page, &q.PageSize, farm.MaxDownloadFiles)
	return q, err
}

// parseProgressQuery reads what a progress report is to list (ours):
// frames=all, the default, lists every frame; frames=none only counts
// them; frames=A-B (of one job's report, oneJob) lists the frames
// numbered A to B and counts them all.
func parseProgressQuery(v url.Values, oneJob bool) (farm.ProgressQuery, error) {
	var q farm.ProgressQuery
	switch s := v.Get("frames"); s {
	case "", "all":
	case "none":
		q.WithoutFrames = true
	default:
		if !oneJob {
			return q, badParam("frames", "frames must be all (every frame listed, the default) or none (their counts only), not %q; a span of frames is for one job's progress (GET /jobs/{id}/progress?frames=1001-2000)", s)
		}
		span, err := farm.ParseFrameSpan(s)
		if err != nil {
			return q, badParam("frames", "frames must be all (every frame listed, the default), none (their counts only), or a span of frame numbers such as 1001-2000 (those frames listed, all of them counted); %v", err)
		}
		q.Frames = &span
	}
	return q, nil
}

// parsePage reads the page and pageSize parameters a request sent into
// page and size, leaving either not sent as it is: a page from 1 to
// maxPage, a size from 1 to maxSize.
func parsePage(v url.Values, page, size *int, maxSize int) error {
	if s := v.Get("page"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPage {
			return badParam("page", "page must be a whole number from 1 (the first page) to %d, not %q", maxPage, s)
		}
		*page = n
	}
	if s := v.Get("pageSize"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxSize {
			return badParam("pageSize", "pageSize must be a whole number from 1 to %d, not %q", maxSize, s)
		}
		*size = n
	}
	return nil
}

func (a *api) runningProgress(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	q, err := parseProgressQuery(r.URL.Query(), false)
	if err != nil {
		return err
	}
	list, err := a.farm.RunningProgress(r.Context(), p, q)
	if err != nil {
		return err
	}
	out := make([]farm.Progress, len(list))
	for i, pr := range list {
		out[i] = wireProgress(pr, q)
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *api) getJob(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := a.farm.GetJob(r.Context(), p, id)
	if err != nil {
		return err
	}
	if job == nil {
		return errNoResult
	}
	// The one answer Renderjuice wraps.
	return writeJSON(w, http.StatusOK, struct {
		Data farm.Job `json:"data"`
	}{wireJob(*job)})
}

func (a *api) validate(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := a.farm.Validate(r.Context(), p, id)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusOK, job)
}

// renderConfigField is the body field of a render request, and the prefix
// of every field error about it.
const renderConfigField = "requestedRenderConfig"

func (a *api) render(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	const example = `{"requestedRenderConfig": {"colorManagementPreset": "default"}}`
	id, err := jobID(r)
	if err != nil {
		return err
	}
	var req struct {
		Config *farm.RenderConfig `json:"requestedRenderConfig"`
	}
	if err := a.decode(w, r, &req, example); err != nil {
		return err
	}
	if req.Config == nil {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidConfig, Field: renderConfigField,
			Message: renderConfigField + " is required; send at least " + example}
	}
	if req.Config.IsEmpty() {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidConfig, Field: renderConfigField,
			Message: renderConfigField + " sets no known field; set at least colorManagementPreset, as in " + example}
	}
	job, replay, err := a.farm.Render(r.Context(), p, id, req.Config)
	if err != nil {
		return inRenderConfig(err)
	}
	if replay {
		w.Header().Set("X-Idempotent-Replay", "true")
	}
	return writeJob(w, http.StatusOK, job)
}

// inRenderConfig makes a field error of the farm, which knows the render
// configuration but not the body around it, name the field by its full path
// in the request, as decoding errors do.
func inRenderConfig(err error) error {
	fe, ok := errors.AsType[*farm.Error](err)
	if !ok || fe.Kind != farm.KindInvalid || fe.Field == "" || strings.HasPrefix(fe.Field, renderConfigField) {
		return err
	}
	c := *fe
	c.Field = renderConfigField + "." + fe.Field
	return &c
}

func (a *api) cancel(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := a.farm.Cancel(r.Context(), p, id)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusOK, job)
}

func (a *api) suspend(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	return a.control(w, r, p, a.farm.Suspend)
}

func (a *api) resume(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	return a.control(w, r, p, a.farm.Resume)
}

// control answers a suspend or a resume: the job, with
// X-Idempotent-Replay when it was already where the request takes it.
func (a *api) control(w http.ResponseWriter, r *http.Request, p farm.Principal,
	move func(ctx context.Context, p farm.Principal, id string) (*farm.Job, bool, error)) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, replay, err := move(r.Context(), p, id)
	if err != nil {
		return err
	}
	if replay {
		w.Header().Set("X-Idempotent-Replay", "true")
	}
	return writeJob(w, http.StatusOK, job)
}

func (a *api) retry(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	const example = `{"frames": "failed"} or {"frameRanges": ["12", "40-45"]}`
	id, err := jobID(r)
	if err != nil {
		return err
	}
	var req farm.RetryRequest
	if err := a.decode(w, r, &req, example); err != nil {
		return err
	}
	job, err := a.farm.Retry(r.Context(), p, id, req)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusOK, job)
}

// updateJob is PATCH /jobs/{id}: today, the job's priority.
func (a *api) updateJob(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	const example = `{"priority": 80}`
	id, err := jobID(r)
	if err != nil {
		return err
	}
	var req struct {
		Priority *int `json:"priority"`
	}
	if err := a.decode(w, r, &req, example); err != nil {
		return err
	}
	if req.Priority == nil {
		return farm.InvalidField("priority", "is required: the job's new priority, from %d (lowest) to %d (highest), as in %s", farm.MinPriority, farm.MaxPriority, example)
	}
	job, err := a.farm.SetPriority(r.Context(), p, id, *req.Priority)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusOK, job)
}

func (a *api) deleteJob(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	job, err := a.farm.DeleteJob(r.Context(), p, id)
	if err != nil {
		return err
	}
	return writeJob(w, http.StatusOK, job)
}

func (a *api) progress(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	q, err := parseProgressQuery(r.URL.Query(), true)
	if err != nil {
		return err
	}
	pr, err := a.farm.Progress(r.Context(), p, id, q)
	if err != nil {
		return err
	}
	if pr == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireProgress(*pr, q))
}

func (a *api) downloads(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	q, err := parseDownloadsQuery(r.URL.Query())
	if err != nil {
		return err
	}
	d, err := a.farm.Downloads(r.Context(), p, id, q)
	if err != nil {
		return err
	}
	if d == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireDownloads(*d))
}

func (a *api) jobLog(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	l, err := a.farm.JobLog(r.Context(), p, id)
	if err != nil {
		return err
	}
	if l == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireJobLog(*l))
}

func writeJob(w http.ResponseWriter, status int, job *farm.Job) error {
	if job == nil {
		return errNoResult
	}
	return writeJSON(w, status, wireJob(*job))
}

// jobID reads the job id from the path. Ids are UUIDs, so anything else
// cannot name a job: it is answered 404 like any unknown id, without
// troubling the farm (whose database might reject it less politely).
func jobID(r *http.Request) (string, error) {
	return pathID(r, "job")
}

// webhookID reads the webhook id from the path, as jobID does a job's.
func webhookID(r *http.Request) (string, error) {
	return pathID(r, "webhook")
}

func pathID(r *http.Request, what string) (string, error) {
	id := r.PathValue("id")
	if !isUUID(id) {
		return "", farm.NotFound(what, id)
	}
	return id, nil
}

// isUUID accepts the canonical 8-4-4-4-12 hex form only.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func missing(field, hint string) *farm.Error {
	return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: field,
		Message: field + " is required; " + hint}
}

func badParam(name, format string, args ...any) *farm.Error {
	e := farm.Invalid(farm.CodeInvalidRequest, format, args...)
	e.Field = name
	return e
}

func (a *api) blenderVersions(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	offers, err := a.farm.BlenderVersions(r.Context(), p)
	if err != nil {
		return err
	}
	if offers == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireBlenderOffers(*offers))
}

func (a *api) usage(w http.ResponseWriter, r *http.Request, p farm.Principal) error {
	q := r.URL.Query()
	// A bound not given is nil, whatever time a given one names: the
	// zero time.Time is 0001-01-01, which a client may send.
	var period [2]*time.Time
	for i, name := range []string{"from", "to"} {
		v := q.Get(name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			if t, err = time.Parse(time.DateOnly, v); err != nil {
				return badParam(name, "%s must be a date (2026-01-31) or a time (2026-01-31T12:00:00Z), not %q", name, v)
			}
		}
		period[i] = &t
	}
	u, err := a.farm.Usage(r.Context(), p, period[0], period[1], q.Get("groupBy"))
	if err != nil {
		return err
	}
	if u == nil {
		return errNoResult
	}
	return writeJSON(w, http.StatusOK, wireUsage(*u))
}
