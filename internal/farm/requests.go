package farm

import "time"

// Principal is who a request acts for: the workspace of its API key. Every
// query is scoped by it.
type Principal struct {
	WorkspaceID string
	KeyID       string
	// KeyExpiresAt is when the key stops working (zero: never), so that
	// nothing that remembers a principal trusts it past then.
	KeyExpiresAt time.Time
}

// UploadTicket is the answer of POST /uploads: where to PUT the file, and
// the slug that names the upload when the job is created.
type UploadTicket struct {
	UploadURL string    `json:"uploadUrl"`
	Slug      string    `json:"slug"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// ListQuery selects a page of a workspace's jobs.
type ListQuery struct {
	Page     int // 1-based
	PageSize int
	Status   Status // "" for all
}

// Paging limits for job lists.
const (
	DefaultPageSize = 10
	MaxPageSize     = 100
)

// Pagination describes a page of a list.
type Pagination struct {
	Page       int `json:"page"`
	PageSize   int `json:"pageSize"`
	Total      int `json:"total"`
	TotalPages int `json:"totalPages"`
}

// JobPage is the answer of GET /jobs.
type JobPage struct {
	Jobs       []Job      `json:"jobs"`
	Pagination Pagination `json:"pagination"`
}

// File types an upload may declare.
const (
	FileTypeBlend = "blend"
	FileTypeZip   = "zip"
)

// Webhook is a receiver of a workspace's job events. Secret is shown only
// when the webhook is created and when its secret is rotated.
type Webhook struct {
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Events    []string  `json:"events"`
	Secret    string    `json:"secret,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// WebhookDelivery is one attempt to deliver an event to a webhook.
type WebhookDelivery struct {
	ID          string     `json:"id"`
	DeliveryID  string     `json:"deliveryId"`
	Event       string     `json:"event"`
	JobID       string     `json:"jobId"`
	Attempt     int        `json:"attempt"`
	AttemptedAt time.Time  `json:"attemptedAt"`
	HTTPStatus  *int       `json:"httpStatus"`
	Error       *string    `json:"error"`
	DurationMs  int64      `json:"durationMs"`
	NextRetryAt *time.Time `json:"nextRetryAt"`
}

// MaxWebhooksPerWorkspace bounds how many receivers a workspace registers:
// every event is sent to each of them.
const MaxWebhooksPerWorkspace = 20

// MaxUnusedUploadsPerWorkspace bounds the uploads no job was made from
// that a workspace holds at once. Each is a row and may be a file of up to
// the farm's upload limit, kept until the upload retention removes it; a
// pipeline makes a job from its upload moments after sending the file, so
// a thousand waiting is far more than one ever has, while without a bound
// a key could ask for ten a second all day.
const MaxUnusedUploadsPerWorkspace = 1000

// MaxFramesInProgressPerWorkspace bounds the frames of a workspace's jobs
// in progress (booting to finalizing, and suspended) at once. Each is a
// row that the farm's progress answers list, GET /jobs/progress all of
// them in one answer; a million frames is months of a large farm's work,
// while without a bound a key could queue a job of 100,000 frames a
// second.
const MaxFramesInProgressPerWorkspace = 1_000_000

// JobLog is the tail of the last Blender log kept for a job, the one that
// explains a failure.
type JobLog struct {
	Lines []string `json:"lines"`
}
