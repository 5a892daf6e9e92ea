package farm

import "time"

// Ways a usage report groups its rows.
const (
	UsageByDay = "day"
	UsageByJob = "job"
)

// MaxUsageSpan is the longest period one usage report covers, so that a
// report reads a bounded number of rows.
const MaxUsageSpan = 366 * 24 * time.Hour

// UsageRow is what a workspace used in one day or on one job.
type UsageRow struct {
	// Day (YYYY-MM-DD, UTC) or JobID, whichever the report groups by;
	// both empty for a report's total.
	Day   string
	JobID string
	// RenderSeconds is worker-seconds: each chunk's Blender render time
	// times the threads its worker gave Blender, counted when the chunk
	// ended.
	RenderSeconds float64
	// GPUSeconds is the same for chunks rendered on GPUs: each chunk's
	// Blender render time times the GPUs it rendered with. Such a chunk
	// counts no RenderSeconds.
	GPUSeconds float64
	// Frames counts the frames completed.
	Frames int
	// BytesStored is what the objects made then hold now: by day, the
	// frames' files completed that day, and the input, zips, preview
	// video and logs of the jobs made that day; by job, all of the job's.
	BytesStored int64
	// BytesTransferred is what the farm served of the workspace's jobs
	// through its own download URLs; it is counted by UTC day, so a
	// period counts the downloads of every day it touches.
	BytesTransferred int64
}

// Add adds o's amounts to r.
func (r *UsageRow) Add(o UsageRow) {
	r.RenderSeconds += o.RenderSeconds
	r.GPUSeconds += o.GPUSeconds
	r.Frames += o.Frames
	r.BytesStored += o.BytesStored
	r.BytesTransferred += o.BytesTransferred
}

// Usage is a workspace's use of the farm over [From, To).
type Usage struct {
	From, To time.Time
	GroupBy  string
	Rows     []UsageRow
	Total    UsageRow
}
