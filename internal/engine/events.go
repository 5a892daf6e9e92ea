package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// enqueueWebhooks queues, in the transaction of a status change, the
// events it causes for every webhook of the job's workspace that wants
// them. Each event's body is fixed now, so every attempt sends the same.
func (e *Engine) enqueueWebhooks(ctx context.Context, tx *store.Tx, job *farm.Job, from farm.Status) error {
	hooks, err := tx.ListWebhooks(ctx, job.WorkspaceID)
	if err != nil || len(hooks) == 0 {
		return err
	}
	now := time.Now().UTC()
	bodies := map[string][]byte{}
	body := func(event string) ([]byte, error) {
		if b, ok := bodies[event]; ok {
			return b, nil
		}
		var payload any
		switch event {
		case webhook.EventStatusChange:
			payload = webhook.StatusChange{Event: event, Status: string(job.Status), PreviousStatus: string(from), JobID: job.ID, WorkspaceID: job.WorkspaceID, ChangedAt: now,
				SuspendedReason: job.SuspendedReason}
		case webhook.EventRenderComplete:
			p := webhook.RenderComplete{Event: event, Status: string(job.Status), JobID: job.ID, WorkspaceID: job.WorkspaceID, CompletedAt: now}
			frames, total, err := e.frameURLs(ctx, tx, job.ID)
			if err != nil {
				return nil, err
			}
			if len(frames) > 0 {
				p.Outputs = &webhook.Outputs{Frames: frames}
				if total > len(frames) {
					p.Outputs.FramesTotal = total
				}
			}
			payload = p
		case webhook.EventRenderFail:
			payload = webhook.RenderFail{Event: event, Status: string(job.Status), JobID: job.ID, WorkspaceID: job.WorkspaceID, FailedAt: now, FailedReason: job.FailedReason}
		}
		b, err := json.Marshal(payload)
		bodies[event] = b
		return b, err
	}
	for _, h := range hooks {
		for _, event := range eventsFor(job.Status) {
			if !slices.Contains(h.Events, event) {
				continue
			}
			b, err := body(event)
			if err != nil {
				return err
			}
			ev := store.WebhookEvent{ID: uuid.NewString(), WebhookID: h.ID, JobID: job.ID, Event: event, Body: b, State: store.EventPending, CreatedAt: now}
			if err := tx.InsertWebhookEvent(ctx, ev); err != nil {
				return err
			}
			args := DeliverArgs{EventID: ev.ID}
			if _, err := e.River().InsertTx(ctx, tx.SQL(), args, e.insertOpts(args)); err != nil {
				return fmt.Errorf("queue webhook delivery: %w", err)
			}
		}
	}
	return nil
}

// eventsFor lists the events a move to status causes.
func eventsFor(status farm.Status) []string {
	switch status {
	case farm.StatusCompleted:
		return []string{webhook.EventStatusChange, webhook.EventRenderComplete}
	case farm.StatusFailed:
		return []string{webhook.EventStatusChange, webhook.EventRenderFail}
	}
	return []string{webhook.EventStatusChange}
}

// frameURLs presigns a job's frames for a webhook, for as long as a URL may
// live: the same body is sent on every attempt, up to a day later. It
// presigns the first webhook.MaxFrameURLs, in frame order, and answers
// how many frame images there are in all.
func (e *Engine) frameURLs(ctx context.Context, tx *store.Tx, jobID string) ([]string, int, error) {
	frames, err := tx.FramesOfJob(ctx, jobID)
	if err != nil {
		return nil, 0, err
	}
	outputs, err := tx.FrameOutputsOfJob(ctx, jobID)
	if err != nil {
		return nil, 0, err
	}
	var urls []string
	total := 0
	for _, f := range frames {
		if f.Status != farm.FrameCompleted || f.ObjectKey == "" {
			continue
		}
		// Each view's image of a multiview frame, named as the downloads
		// name it; a frame recorded before its files were is its image.
		files := []farm.FrameOutput{{Kind: farm.OutputFrame, FileName: farm.DownloadName(f.ObjectKey), ObjectKey: f.ObjectKey}}
		if len(outputs[f.Frame]) > 0 {
			files = outputs[f.Frame]
		}
		for _, o := range files {
			if o.Kind != farm.OutputFrame {
				continue
			}
			total++
			if len(urls) == webhook.MaxFrameURLs {
				continue
			}
			url, _, err := e.objects.PresignGet(ctx, o.ObjectKey, objstore.MaxPresignTTL, path.Base(o.FileName))
			if err != nil {
				return nil, 0, err
			}
			urls = append(urls, url)
		}
	}
	return urls, total, nil
}
