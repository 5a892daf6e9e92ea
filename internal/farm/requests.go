package farm

import "time"

// Principal is who a request acts for: the workspace of its API key. Every
// query is scoped by it.
type Principal struct {
	WorkspaceID string
	KeyID       string
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
