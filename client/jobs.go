package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// replayHeader is set to "true" on a render answer when rendering had
// already started, so that a retried request is told apart from a new one.
const replayHeader = "X-Idempotent-Replay"

// CreateUpload asks the server where to put a file. fileType must be
// [FileTypeBlend] or [FileTypeZip] and match fileName's extension. Most
// callers want [Client.UploadFile], which does this and the upload.
func (c *Client) CreateUpload(ctx context.Context, fileName, fileType string) (*UploadTicket, error) {
	in := struct {
		FileName string `json:"fileName"`
		FileType string `json:"fileType"`
	}{fileName, fileType}
	var t UploadTicket
	if _, err := c.call(ctx, "create upload", http.MethodPost, "/uploads", nil, in, &t); err != nil {
		return nil, err
	}
	if t.UploadURL == "" || t.Slug == "" {
		return nil, errors.New("create upload: the answer has no uploadUrl or slug")
	}
	return &t, nil
}

// CreateJob makes a job of an uploaded file, named by the slug its upload
// ticket gave. The job starts in [StatusCreated]; nothing is checked or
// rendered until [Client.Validate] and [Client.Render]. A slug makes at most
// one job, so retrying a CreateJob that may have succeeded fails with
// [CodeSlugUsed] rather than making a second job.
func (c *Client) CreateJob(ctx context.Context, slug string) (*Job, error) {
	in := struct {
		Slug string `json:"slug"`
	}{slug}
	return c.jobCall(ctx, "create job", http.MethodPost, "/jobs", in)
}

// GetJob returns a job as it is now.
func (c *Client) GetJob(ctx context.Context, id string) (*Job, error) {
	var out struct {
		Data *Job `json:"data"`
	}
	op := "get job " + id
	path, err := jobPath(op, id, "")
	if err != nil {
		return nil, err
	}
	if _, err := c.call(ctx, op, http.MethodGet, path, nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Data == nil || out.Data.ID == "" {
		return nil, fmt.Errorf("%s: the answer has no job in its data field", op)
	}
	return out.Data, nil
}

// ListJobs returns one page of the workspace's jobs. To walk all of them,
// ask for pages 1 to Pagination.TotalPages.
func (c *Client) ListJobs(ctx context.Context, opts ListOptions) (*JobList, error) {
	q := url.Values{}
	if opts.Page > 0 {
		q.Set("page", strconv.Itoa(opts.Page))
	}
	if opts.PageSize > 0 {
		q.Set("pageSize", strconv.Itoa(opts.PageSize))
	}
	if opts.Status != "" {
		q.Set("status", string(opts.Status))
	}
	var out JobList
	if _, err := c.call(ctx, "list jobs", http.MethodGet, "/jobs", q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Validate asks the farm to inspect the job's file. It returns at once with
// the job in [StatusValidating]; wait for [StatusValidated] with
// [Client.Wait], then read Job.Analysis before choosing render settings.
// Validating a job that is already validating or validated fails with
// [CodeInvalidState].
func (c *Client) Validate(ctx context.Context, id string) (*Job, error) {
	return c.jobAction(ctx, "validate job "+id, id, "/validate")
}

// Render starts rendering a validated job with cfg, of which only
// ColorManagementPreset is required. Sending the same request again is
// safe: when rendering had already started, the server answers with the
// job as it is and replay is true, so a pipeline can retry a Render whose
// answer it lost without starting a second render. A setting the workers
// cannot honour fails with [CodeInvalidConfig] and the field named in
// [APIError.Field].
func (c *Client) Render(ctx context.Context, id string, cfg RenderConfig) (job *Job, replay bool, err error) {
	in := struct {
		Config RenderConfig `json:"requestedRenderConfig"`
	}{cfg}
	var out Job
	op := "render job " + id
	path, err := jobPath(op, id, "/render")
	if err != nil {
		return nil, false, err
	}
	h, err := c.call(ctx, op, http.MethodPost, path, nil, in, &out)
	if err != nil {
		return nil, false, err
	}
	if out.ID == "" {
		return nil, false, fmt.Errorf("%s: the answer has no job id", op)
	}
	return &out, strings.EqualFold(h.Get(replayHeader), "true"), nil
}

// Cancel stops a job that is in progress: queued frames are dropped and
// running Blender processes are stopped. Canceling a job that is completed,
// failed or already canceled fails with [CodeInvalidState].
func (c *Client) Cancel(ctx context.Context, id string) (*Job, error) {
	return c.jobAction(ctx, "cancel job "+id, id, "/cancel")
}

// Suspend pauses a booting or rendering job: its running Blender
// processes stop, frames already saved stay, and the rest wait for
// [Client.Resume]. replay is true when the job was already suspended.
// Other statuses fail with [CodeInvalidState].
func (c *Client) Suspend(ctx context.Context, id string) (job *Job, replay bool, err error) {
	return c.replayableAction(ctx, "suspend job "+id, id, "/suspend")
}

// Resume renders the frames of a suspended job that are not completed
// yet (and approves a job whose scout frames are ready). replay is true
// when it had already been resumed. Other statuses fail with
// [CodeInvalidState].
func (c *Client) Resume(ctx context.Context, id string) (job *Job, replay bool, err error) {
	return c.replayableAction(ctx, "resume job "+id, id, "/resume")
}

// RetryRequest says which frames [Client.Retry] renders again: set
// exactly one field.
type RetryRequest struct {
	// Frames is "failed": every frame that did not complete.
	Frames string `json:"frames,omitempty"`
	// FrameRanges are frames of the job's own, such as "12" or "40-45".
	FrameRanges []string `json:"frameRanges,omitempty"`
}

// RetryFailed is [RetryRequest.Frames]' one value.
const RetryFailed = "failed"

// Retry renders again some frames of a completed, failed or canceled job
// with its final configuration; the job then makes its zip and preview
// again and completes. A job in another status, or whose files were
// deleted, fails with [CodeInvalidState].
func (c *Client) Retry(ctx context.Context, id string, req RetryRequest) (*Job, error) {
	op := "retry job " + id
	path, err := jobPath(op, id, "/retry")
	if err != nil {
		return nil, err
	}
	return c.jobCall(ctx, op, http.MethodPost, path, req)
}

// replayableAction posts an action whose repeat is answered as a replay.
func (c *Client) replayableAction(ctx context.Context, op, id, action string) (*Job, bool, error) {
	path, err := jobPath(op, id, action)
	if err != nil {
		return nil, false, err
	}
	var out Job
	h, err := c.call(ctx, op, http.MethodPost, path, nil, nil, &out)
	if err != nil {
		return nil, false, err
	}
	if out.ID == "" {
		return nil, false, fmt.Errorf("%s: the answer has no job id", op)
	}
	return &out, strings.EqualFold(h.Get(replayHeader), "true"), nil
}

// SetPriority changes a job's priority (renderfarm's own), 0 (lowest) to
// 100 (highest), at any status: its waiting chunks take it at the next
// chunk a worker takes, its running chunks go on. Out of range: an
// [*Error] naming the field "priority".
func (c *Client) SetPriority(ctx context.Context, id string, priority int) (*Job, error) {
	op := "set the priority of job " + id
	path, err := jobPath(op, id, "")
	if err != nil {
		return nil, err
	}
	return c.jobCall(ctx, op, http.MethodPatch, path, map[string]int{"priority": priority})
}

// DeleteJob removes a finished job's files: the uploaded input and every
// output (frames, zip, preview video, logs). The job itself stays, with
// Output.IsDeletedForClient set, and its downloads are empty from then on.
// A job still in progress fails with [CodeInvalidState]; cancel it first.
// Deleting a job again is safe and answers it as it is.
func (c *Client) DeleteJob(ctx context.Context, id string) (*Job, error) {
	op := "delete job " + id
	path, err := jobPath(op, id, "")
	if err != nil {
		return nil, err
	}
	return c.jobCall(ctx, op, http.MethodDelete, path, nil)
}

// Progress returns the job's render counters and per-frame state. It
// answers at any status; before rendering, the counters are zero.
func (c *Client) Progress(ctx context.Context, id string) (*Progress, error) {
	return c.progress(ctx, id, "")
}

// ProgressCounts is [Client.Progress] without the per-frame state
// (Frames is empty): the counters, the estimate of the time left and
// what the job waits for. Prefer it wherever the frames are not shown:
// a job of 100,000 frames is a report of several megabytes with them,
// and of a few hundred bytes without. A farm that cannot leave the
// frames out lists them anyway, and one that refuses to be asked (400)
// is asked for the whole report.
func (c *Client) ProgressCounts(ctx context.Context, id string) (*Progress, error) {
	return countsOrWhole(func(query string) (*Progress, error) { return c.progress(ctx, id, query) })
}

// ProgressOfFrames is [Client.Progress] listing only the frames numbered
// from first to last, both included (renderfarm's), 0 <= first <= last
// <= 1048574: every frame is counted, a page of them listed, as a grid of
// a large job's frames shows them. A thousand frames are about 77 KB,
// whatever the job's size. A farm that does not know spans lists every
// frame, of which the span's are kept, and one that refuses to be asked
// (400) is asked for the whole report.
func (c *Client) ProgressOfFrames(ctx context.Context, id string, first, last int) (*Progress, error) {
	op := "get progress of job " + id
	if err := checkFrameSpan(op, first, last); err != nil {
		return nil, err
	}
	p, err := c.progress(ctx, id, "?frames="+frameSpan(first, last))
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
		// The span is one a farm that knows spans takes (checked above),
		// so a 400 is a farm that does not.
		p, err = c.progress(ctx, id, "")
	}
	if err != nil {
		return nil, err
	}
	kept := p.Frames[:0]
	for _, f := range p.Frames {
		if f.Frame >= first && f.Frame <= last {
			kept = append(kept, f)
		}
	}
	p.Frames = kept
	return p, nil
}

// maxFrame is the highest frame number Blender, and so a span, accepts.
const maxFrame = 1_048_574

// checkFrameSpan refuses a span of frames no farm takes, before asking.
func checkFrameSpan(op string, first, last int) error {
	if first < 0 || last < first || last > maxFrame {
		return fmt.Errorf("%s: frames %d to %d: a span goes from a frame to one at or after it, each from 0 to %d", op, first, last, maxFrame)
	}
	return nil
}

// frameSpan is how a span of frames is asked for: "1001-2000".
func frameSpan(first, last int) string { return strconv.Itoa(first) + "-" + strconv.Itoa(last) }

// countsOrWhole reads a progress report with the query frames=none, and
// again with none when the server refuses it (400): a server that checks
// the parameters it is sent and does not know this one (renderfarm takes
// it; most servers ignore what they do not know). The request sends
// nothing else a server could refuse.
func countsOrWhole[T any](read func(query string) (T, error)) (T, error) {
	v, err := read("?frames=none")
	var ae *APIError
	if errors.As(err, &ae) && ae.StatusCode == http.StatusBadRequest {
		return read("")
	}
	return v, err
}

func (c *Client) progress(ctx context.Context, id, query string) (*Progress, error) {
	var out Progress
	op := "get progress of job " + id
	path, err := jobPath(op, id, "/progress")
	if err != nil {
		return nil, err
	}
	if _, err := c.call(ctx, op, http.MethodGet, path+query, nil, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// RunningProgress returns the progress of every job of the workspace that
// the farm is working on, for a dashboard of everything at once. It is
// empty when nothing runs.
func (c *Client) RunningProgress(ctx context.Context) ([]Progress, error) {
	return c.runningProgress(ctx, "")
}

// RunningProgressCounts is [Client.RunningProgress] without each job's
// per-frame state, as [Client.ProgressCounts] is.
func (c *Client) RunningProgressCounts(ctx context.Context) ([]Progress, error) {
	return countsOrWhole(func(query string) ([]Progress, error) { return c.runningProgress(ctx, query) })
}

func (c *Client) runningProgress(ctx context.Context, query string) ([]Progress, error) {
	var out []Progress
	if _, err := c.call(ctx, "get progress of running jobs", http.MethodGet, "/jobs/progress"+query, nil, nil, &out); err != nil {
		return nil, err
	}
	if out == nil {
		out = []Progress{}
	}
	return out, nil
}

// BlenderVersions lists the Blender versions the farm's live render nodes
// run, with how many run each. A render request may pin one of them
// ([RenderConfig.BlenderVersion]); by default a job renders with the one
// that validated its file.
func (c *Client) BlenderVersions(ctx context.Context) (*BlenderVersions, error) {
	var out BlenderVersions
	if _, err := c.call(ctx, "list Blender versions", http.MethodGet, "/blender", nil, nil, &out); err != nil {
		return nil, err
	}
	if out.Versions == nil {
		out.Versions = []BlenderVersion{}
	}
	return &out, nil
}

// Downloads returns the job's output files as presigned URLs. Before the
// job is completed the lists are empty; fetch files with
// [Client.DownloadFile]. The files are asked for a page at a time
// ([Client.DownloadsPage], DownloadsPageSize each), so a job of any size
// is listed whole; a job still rendering may complete frames between two
// pages, which the list then holds or not. Files removed between two
// pages (a retry replaced frames, the job's files were deleted) move the
// ones after them back onto pages already read, so the pages are then
// read again from the first. A farm that does not page its downloads
// answers them whole at the first.
func (c *Client) Downloads(ctx context.Context, id string) (*Downloads, error) {
	var all *Downloads
	seen := map[string]bool{}
	for page := 1; ; page++ {
		d, err := c.DownloadsPage(ctx, id, page, DownloadsPageSize)
		if err != nil {
			return nil, err
		}
		switch {
		case all == nil, d.Pagination == nil:
			// The first page; or a later one answered whole, which a job
			// whose files were deleted meanwhile answers: none is left.
			all = d
			clear(seen)
			for _, o := range d.FrameOutputs {
				seen[outputKey(o)] = true
			}
			for _, o := range d.CompositeNodeOutputs {
				seen[outputKey(o)] = true
			}
		case all.Pagination != nil && d.Pagination.Total < all.Pagination.Total:
			// Files went: those read may be gone, and some not read yet
			// moved back onto a page read.
			all, page = nil, 0
			continue
		default:
			// A frame completed meanwhile moves the files after it on by
			// one: the first of a page may be the last of the one before.
			all.FrameOutputs, all.Frames = appendUnseen(all.FrameOutputs, all.Frames, d.FrameOutputs, seen)
			all.CompositeNodeOutputs, all.CompositeNodes = appendUnseen(all.CompositeNodeOutputs, all.CompositeNodes, d.CompositeNodeOutputs, seen)
			all.Transforms = d.Transforms
			all.Pagination = d.Pagination
		}
		if d.Pagination == nil || page >= d.Pagination.TotalPages {
			break
		}
	}
	all.Pagination = nil
	return all, nil
}

// outputKey tells one file of a job's downloads from the others: its
// file name (unique within a job the farm renders today), with its frame
// and place in the zip, since a job an older farm rendered may repeat a
// file name.
func outputKey(o FileOutput) string {
	frame := -1
	if o.Frame != nil {
		frame = *o.Frame
	}
	return fmt.Sprintf("%d\x00%s\x00%s", frame, o.FileName, o.RelativePath)
}

// appendUnseen adds to outputs, and their URLs to urls (the legacy list,
// in step), the outputs of a page whose keys (outputKey) are not in seen,
// and marks them seen. The URL is the output's own, so that a legacy list
// that a server answers out of step cannot take the client past its end.
func appendUnseen(outputs []FileOutput, urls []string, more []FileOutput, seen map[string]bool) ([]FileOutput, []string) {
	for _, o := range more {
		if k := outputKey(o); !seen[k] {
			seen[k] = true
			outputs = append(outputs, o)
			urls = append(urls, o.URL)
		}
	}
	return outputs, urls
}

// DownloadsPageSize is how many files [Client.Downloads] asks for at a
// time.
const DownloadsPageSize = 10_000

// DownloadsPage returns one page of the job's output files: pageSize of
// them (at most 100,000) in frame order, frames and compositor outputs
// together, with the zip and the video on every page. Pagination says
// how many pages there are; a farm that does not page its downloads
// answers every file, without it.
func (c *Client) DownloadsPage(ctx context.Context, id string, page, pageSize int) (*Downloads, error) {
	var out Downloads
	op := "get downloads of job " + id
	path, err := jobPath(op, id, "/downloads")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("page", strconv.Itoa(page))
	q.Set("pageSize", strconv.Itoa(pageSize))
	if _, err := c.call(ctx, op, http.MethodGet, path, q, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DownloadsOfFrames lists the files of the frames numbered from first to
// last, both included (renderfarm's), and the zip and the video: only
// their URLs are signed. A span of more files than the server lists in
// one answer is an error; ask a smaller span. A farm that does not know
// spans (one before them ignores the parameter) lists every file, of
// which those of the span are kept; an answer that does not say which
// frame a file shows is an error, as no span can be told from it.
func (c *Client) DownloadsOfFrames(ctx context.Context, id string, first, last int) (*Downloads, error) {
	var out Downloads
	op := "get downloads of job " + id
	if err := checkFrameSpan(op, first, last); err != nil {
		return nil, err
	}
	path, err := jobPath(op, id, "/downloads")
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	q.Set("frames", frameSpan(first, last))
	if _, err := c.call(ctx, op, http.MethodGet, path, q, nil, &out); err != nil {
		return nil, err
	}
	var unnumbered bool
	keep := func(outputs []FileOutput) ([]FileOutput, []string) {
		kept, urls := []FileOutput{}, []string{}
		for _, o := range outputs {
			switch {
			case o.Frame == nil:
				unnumbered = true
			case *o.Frame >= first && *o.Frame <= last:
				kept, urls = append(kept, o), append(urls, o.URL)
			}
		}
		return kept, urls
	}
	// The legacy lists are made again of the outputs kept, each URL the
	// output's own, as Downloads makes them of its pages.
	out.FrameOutputs, out.Frames = keep(out.FrameOutputs)
	out.CompositeNodeOutputs, out.CompositeNodes = keep(out.CompositeNodeOutputs)
	if unnumbered {
		return nil, fmt.Errorf("%s: the server does not say which frame each file shows, so the files of frames %d to %d cannot be told from the others; list them all with Downloads", op, first, last)
	}
	return &out, nil
}

// jobAction posts an action without a body to one job, such as /validate.
func (c *Client) jobAction(ctx context.Context, op, id, action string) (*Job, error) {
	path, err := jobPath(op, id, action)
	if err != nil {
		return nil, err
	}
	return c.jobCall(ctx, op, http.MethodPost, path, nil)
}

// jobCall sends a request whose answer is a bare Job. An answer without an
// id is refused, because a server that wrapped the job differently would
// otherwise give the caller an empty Job and no error.
func (c *Client) jobCall(ctx context.Context, op, method, path string, in any) (*Job, error) {
	var out Job
	if _, err := c.call(ctx, op, method, path, nil, in, &out); err != nil {
		return nil, err
	}
	if out.ID == "" {
		return nil, fmt.Errorf("%s: the answer has no job id", op)
	}
	return &out, nil
}

// jobPath escapes id so that an id typed by a user cannot reach another
// route. An empty id is refused here, because "/jobs/" + action would
// otherwise reach a different route and fail in a confusing way.
func jobPath(op, id, action string) (string, error) {
	if id == "" {
		return "", fmt.Errorf("%s: the job id is empty", op)
	}
	return "/jobs/" + url.PathEscape(id) + action, nil
}
