package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// UsageRow is what a workspace used in one day or on one job.
type UsageRow struct {
	// Day (YYYY-MM-DD, UTC) or JobID, whichever the report groups by;
	// both empty in a report's Total.
	Day   string `json:"day,omitempty"`
	JobID string `json:"jobId,omitempty"`
	// RenderSeconds is worker-seconds: Blender's render time on each
	// chunk times the threads its worker gave Blender.
	RenderSeconds float64 `json:"renderSeconds"`
	// GPUSeconds is the same for chunks rendered on GPUs: their render
	// time times the GPUs they rendered with (such a chunk counts no
	// RenderSeconds).
	GPUSeconds float64 `json:"gpuSeconds"`
	// Frames counts the frames completed.
	Frames int `json:"frames"`
	// BytesStored is what the files made then (inputs, frames, zips,
	// preview videos, logs) hold now.
	BytesStored int64 `json:"bytesStored"`
	// BytesTransferred is what the farm served through its own download
	// URLs (not a bucket's presigned ones).
	BytesTransferred int64 `json:"bytesTransferred"`
}

// Usage is the workspace's use of the farm over [From, To).
type Usage struct {
	From    time.Time  `json:"from"`
	To      time.Time  `json:"to"`
	GroupBy string     `json:"groupBy"`
	Rows    []UsageRow `json:"rows"`
	Total   UsageRow   `json:"total"`
}

// Usage reports what the workspace used of the farm over [from, to),
// grouped by "day" or "job". Zero times take the server's defaults (the
// last 30 days up to now), and "" groups by day.
func (c *Client) Usage(ctx context.Context, from, to time.Time, groupBy string) (*Usage, error) {
	q := url.Values{}
	if !from.IsZero() {
		q.Set("from", from.UTC().Format(time.RFC3339))
	}
	if !to.IsZero() {
		q.Set("to", to.UTC().Format(time.RFC3339))
	}
	if groupBy != "" {
		q.Set("groupBy", groupBy)
	}
	var out Usage
	if _, err := c.call(ctx, "get usage", http.MethodGet, "/usage", q, nil, &out); err != nil {
		return nil, err
	}
	if out.Rows == nil {
		out.Rows = []UsageRow{}
	}
	return &out, nil
}
