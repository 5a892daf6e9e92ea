package httpapi

import (
	"context"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// Farm is what the API needs from the job engine. Every method but
// Authenticate is scoped to the principal's workspace and answers
// *farm.Error values for anything the client did wrong.
type Farm interface {
	Authenticate(ctx context.Context, apiKey string) (farm.Principal, error)
	CreateUpload(ctx context.Context, p farm.Principal, fileName, fileType string) (*farm.UploadTicket, error)
	CreateJob(ctx context.Context, p farm.Principal, slug string) (*farm.Job, error)
	GetJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error)
	ListJobs(ctx context.Context, p farm.Principal, q farm.ListQuery) (*farm.JobPage, error)
	Validate(ctx context.Context, p farm.Principal, id string) (*farm.Job, error)
	// Render starts rendering; replay is true when rendering had already
	// started, in which case the current job is returned unchanged.
	Render(ctx context.Context, p farm.Principal, id string, cfg *farm.RenderConfig) (job *farm.Job, replay bool, err error)
	Cancel(ctx context.Context, p farm.Principal, id string) (*farm.Job, error)
	// Suspend pauses a booting or rendering job, and Resume renders the
	// rest of a suspended one; replay is true when the job was already
	// where the request takes it, and is answered unchanged.
	Suspend(ctx context.Context, p farm.Principal, id string) (job *farm.Job, replay bool, err error)
	Resume(ctx context.Context, p farm.Principal, id string) (job *farm.Job, replay bool, err error)
	// Retry renders again some frames of a job that ended.
	Retry(ctx context.Context, p farm.Principal, id string, req farm.RetryRequest) (*farm.Job, error)
	// SetPriority changes a job's priority (farm.MinPriority to
	// farm.MaxPriority) at any status; its waiting chunks take it at the
	// next dispatch.
	SetPriority(ctx context.Context, p farm.Principal, id string, priority int) (*farm.Job, error)
	// DeleteJob removes the input and outputs of a finished job and marks
	// its output deleted; the job itself stays, for the workspace's history.
	DeleteJob(ctx context.Context, p farm.Principal, id string) (*farm.Job, error)
	// Progress and RunningProgress list every frame, or only count them
	// (q).
	Progress(ctx context.Context, p farm.Principal, id string, q farm.ProgressQuery) (*farm.Progress, error)
	RunningProgress(ctx context.Context, p farm.Principal, q farm.ProgressQuery) ([]farm.Progress, error)
	Downloads(ctx context.Context, p farm.Principal, id string, q farm.DownloadsQuery) (*farm.Downloads, error)
	// JobLog answers the tail of the newest Blender log kept for a job.
	JobLog(ctx context.Context, p farm.Principal, id string) (*farm.JobLog, error)
	// BlenderVersions lists the Blender versions the farm's live render
	// nodes run, which a render request may pin.
	BlenderVersions(ctx context.Context, p farm.Principal) (*farm.BlenderOffers, error)
	// Usage reports the workspace's use of the farm over [from, to) (nil
	// when not given: the defaults), grouped by "day" or "job" ("": day).
	Usage(ctx context.Context, p farm.Principal, from, to *time.Time, groupBy string) (*farm.Usage, error)

	// CreateWebhook and RotateWebhookSecret answer the webhook with its
	// secret; the other webhook methods answer it without.
	CreateWebhook(ctx context.Context, p farm.Principal, url string, events []string) (*farm.Webhook, error)
	ListWebhooks(ctx context.Context, p farm.Principal) ([]farm.Webhook, error)
	GetWebhook(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error)
	DeleteWebhook(ctx context.Context, p farm.Principal, id string) error
	RotateWebhookSecret(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error)
	// WebhookDeliveries lists a webhook's delivery attempts, newest first.
	WebhookDeliveries(ctx context.Context, p farm.Principal, id string) ([]farm.WebhookDelivery, error)
}
