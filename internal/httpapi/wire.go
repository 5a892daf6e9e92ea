package httpapi

import (
	"errors"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// The functions here hold the wire contract that the API promises whatever
// the farm hands back: times in UTC, and empty arrays as [] rather than
// null, so that clients can iterate without a nil check. They copy rather
// than change the farm's values, which may be shared.

// errNoResult stands for a farm method that returned neither a value nor
// an error: a bug on the farm's side, answered as an internal error.
var errNoResult = errors.New("farm returned no result and no error")

func wireJob(j farm.Job) farm.Job {
	j.CreatedAt = j.CreatedAt.UTC()
	j.UpdatedAt = j.UpdatedAt.UTC()
	if j.Analysis != nil {
		j.Analysis = wireAnalysis(*j.Analysis)
	}
	return j
}

func wireAnalysis(a farm.Analysis) *farm.Analysis {
	a.Warnings = orEmpty(a.Warnings)
	a.ExternalFiles = orEmpty(a.ExternalFiles)
	a.ViewTransforms = orEmpty(a.ViewTransforms)
	scenes := make([]farm.Scene, len(a.Scenes))
	for i, s := range a.Scenes {
		s.ViewLayers = orEmpty(s.ViewLayers)
		scenes[i] = s
	}
	a.Scenes = scenes
	return &a
}

func wireBlenderOffers(o farm.BlenderOffers) farm.BlenderOffers {
	o.Versions = orEmpty(o.Versions)
	return o
}

func wireJobPage(p farm.JobPage) farm.JobPage {
	jobs := make([]farm.Job, len(p.Jobs))
	for i, j := range p.Jobs {
		jobs[i] = wireJob(j)
	}
	p.Jobs = jobs
	return p
}

// wireProgress lists the frames, [] for a job without any, unless q
// left them out: then the answer has no frames key.
func wireProgress(p farm.Progress, q farm.ProgressQuery) farm.Progress {
	if q.WithoutFrames {
		p.Frames = nil
	} else {
		p.Frames = orEmpty(p.Frames)
	}
	return p
}

func wireDownloads(d farm.Downloads) farm.Downloads {
	d.Frames = orEmpty(d.Frames)
	d.CompositeNodes = orEmpty(d.CompositeNodes)
	d.FrameOutputs = orEmpty(d.FrameOutputs)
	d.CompositeNodeOutputs = orEmpty(d.CompositeNodeOutputs)
	return d
}

func wireTicket(t farm.UploadTicket) farm.UploadTicket {
	t.ExpiresAt = t.ExpiresAt.UTC()
	return t
}

func wireJobLog(l farm.JobLog) farm.JobLog {
	l.Lines = orEmpty(l.Lines)
	return l
}

// wireWebhook shows the secret only where the API promises it, in the
// answers to creating a webhook and to rotating its secret.
func wireWebhook(h farm.Webhook, withSecret bool) farm.Webhook {
	h.CreatedAt = h.CreatedAt.UTC()
	h.Events = orEmpty(h.Events)
	if !withSecret {
		h.Secret = ""
	}
	return h
}

func wireDelivery(d farm.WebhookDelivery) farm.WebhookDelivery {
	d.AttemptedAt = d.AttemptedAt.UTC()
	if d.NextRetryAt != nil {
		next := d.NextRetryAt.UTC()
		d.NextRetryAt = &next
	}
	return d
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// usageRowJSON is one row of a usage report on the wire.
type usageRowJSON struct {
	Day              string  `json:"day,omitempty"`
	JobID            string  `json:"jobId,omitempty"`
	RenderSeconds    float64 `json:"renderSeconds"`
	GPUSeconds       float64 `json:"gpuSeconds"`
	Frames           int     `json:"frames"`
	BytesStored      int64   `json:"bytesStored"`
	BytesTransferred int64   `json:"bytesTransferred"`
}

// usageJSON is GET /usage's answer.
type usageJSON struct {
	From    time.Time      `json:"from"`
	To      time.Time      `json:"to"`
	GroupBy string         `json:"groupBy"`
	Rows    []usageRowJSON `json:"rows"`
	Total   usageRowJSON   `json:"total"`
}

func wireUsageRow(r farm.UsageRow) usageRowJSON {
	return usageRowJSON{Day: r.Day, JobID: r.JobID, RenderSeconds: r.RenderSeconds, GPUSeconds: r.GPUSeconds, Frames: r.Frames,
		BytesStored: r.BytesStored, BytesTransferred: r.BytesTransferred}
}

func wireUsage(u farm.Usage) usageJSON {
	out := usageJSON{From: u.From.UTC(), To: u.To.UTC(), GroupBy: u.GroupBy, Rows: make([]usageRowJSON, len(u.Rows)), Total: wireUsageRow(u.Total)}
	for i, r := range u.Rows {
		out.Rows[i] = wireUsageRow(r)
	}
	return out
}
