package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// maxDeliveriesListed bounds GET /webhooks/{id}/deliveries.
const maxDeliveriesListed = 200

// CreateWebhook registers a receiver after checking its URL and events.
func (e *Engine) CreateWebhook(ctx context.Context, p farm.Principal, rawURL string, events []string) (*farm.Webhook, error) {
	if rawURL == "" {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "url", Message: "url is required: where the farm POSTs events, e.g. https://pipeline.example.com/renderfarm"}
	}
	if err := webhook.CheckURL(ctx, e.cfg.Resolver, rawURL, e.cfg.WebhookAllowPrivate); err != nil {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "url", Message: "url: " + err.Error()}
	}
	if len(events) == 0 {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "events",
			Message: "events is required: one or more of " + strings.Join(webhook.Events, ", ")}
	}
	var clean []string
	for _, ev := range events {
		if !slices.Contains(webhook.Events, ev) {
			return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "events",
				Message: fmt.Sprintf("events: %q is not an event; use %s", ev, strings.Join(webhook.Events, ", "))}
		}
		if !slices.Contains(clean, ev) {
			clean = append(clean, ev)
		}
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, err
	}
	hook := store.Webhook{ID: uuid.NewString(), WorkspaceID: p.WorkspaceID, URL: rawURL, Events: clean, Secret: secret, CreatedAt: time.Now().UTC()}
	err = e.store.InTx(ctx, func(tx *store.Tx) error {
		existing, err := tx.ListWebhooks(ctx, p.WorkspaceID)
		if err != nil {
			return err
		}
		if len(existing) >= farm.MaxWebhooksPerWorkspace {
			return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest,
				Message: fmt.Sprintf("this workspace has %d webhooks, the most it may have; delete one first", len(existing))}
		}
		return tx.InsertWebhook(ctx, hook)
	})
	if err != nil {
		return nil, err
	}
	w := webhookView(hook)
	w.Secret = secret
	return &w, nil
}

// ListWebhooks lists the workspace's webhooks, without their secrets.
func (e *Engine) ListWebhooks(ctx context.Context, p farm.Principal) ([]farm.Webhook, error) {
	hooks, err := e.store.ListWebhooks(ctx, p.WorkspaceID)
	if err != nil {
		return nil, err
	}
	out := make([]farm.Webhook, 0, len(hooks))
	for _, h := range hooks {
		out = append(out, webhookView(h))
	}
	return out, nil
}

// GetWebhook returns one webhook, without its secret.
func (e *Engine) GetWebhook(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	h, err := e.loadWebhook(ctx, p, id)
	if err != nil {
		return nil, err
	}
	w := webhookView(h)
	return &w, nil
}

// DeleteWebhook removes a webhook; events not yet delivered are dropped.
func (e *Engine) DeleteWebhook(ctx context.Context, p farm.Principal, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return farm.NotFound("webhook", id)
	}
	err := e.store.DeleteWebhook(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return farm.NotFound("webhook", id)
	}
	return err
}

// RotateWebhookSecret gives a webhook a new secret and shows it once.
// Events already queued are signed with the new one from their next attempt.
func (e *Engine) RotateWebhookSecret(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	h, err := e.loadWebhook(ctx, p, id)
	if err != nil {
		return nil, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, err
	}
	if err := e.store.SetWebhookSecret(ctx, p.WorkspaceID, id, secret); err != nil {
		return nil, err
	}
	w := webhookView(h)
	w.Secret = secret
	return &w, nil
}

// WebhookDeliveries lists a webhook's delivery attempts, newest first.
func (e *Engine) WebhookDeliveries(ctx context.Context, p farm.Principal, id string) ([]farm.WebhookDelivery, error) {
	if _, err := e.loadWebhook(ctx, p, id); err != nil {
		return nil, err
	}
	attempts, err := e.store.ListWebhookAttempts(ctx, id, maxDeliveriesListed)
	if err != nil {
		return nil, err
	}
	out := make([]farm.WebhookDelivery, 0, len(attempts))
	for _, a := range attempts {
		d := farm.WebhookDelivery{ID: a.ID, DeliveryID: a.EventID, Event: a.Event, JobID: a.JobID, Attempt: a.Attempt,
			AttemptedAt: a.AttemptedAt, DurationMs: a.Duration.Milliseconds(), NextRetryAt: a.NextRetryAt}
		if a.HTTPStatus != 0 {
			status := a.HTTPStatus
			d.HTTPStatus = &status
		}
		if a.Error != "" {
			msg := a.Error
			d.Error = &msg
		}
		out = append(out, d)
	}
	return out, nil
}

func (e *Engine) loadWebhook(ctx context.Context, p farm.Principal, id string) (store.Webhook, error) {
	if _, err := uuid.Parse(id); err != nil {
		return store.Webhook{}, farm.NotFound("webhook", id)
	}
	h, err := e.store.GetWebhook(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return h, farm.NotFound("webhook", id)
	}
	return h, err
}

func webhookView(h store.Webhook) farm.Webhook {
	return farm.Webhook{ID: h.ID, URL: h.URL, Events: h.Events, CreatedAt: h.CreatedAt}
}

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
			payload = webhook.StatusChange{Event: event, Status: string(job.Status), PreviousStatus: string(from), JobID: job.ID, WorkspaceID: job.WorkspaceID, ChangedAt: now}
		case webhook.EventRenderComplete:
			p := webhook.RenderComplete{Event: event, Status: string(job.Status), JobID: job.ID, WorkspaceID: job.WorkspaceID, CompletedAt: now}
			frames, err := e.frameURLs(ctx, tx, job.ID)
			if err != nil {
				return nil, err
			}
			if len(frames) > 0 {
				p.Outputs = &webhook.Outputs{Frames: frames}
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
			if _, err := e.river.InsertTx(ctx, tx.SQL(), deliverArgs{EventID: ev.ID}, &river.InsertOpts{MaxAttempts: e.cfg.WebhookAttempts}); err != nil {
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
// live: the same body is sent on every attempt, up to a day later.
func (e *Engine) frameURLs(ctx context.Context, tx *store.Tx, jobID string) ([]string, error) {
	frames, err := tx.FramesOfJob(ctx, jobID)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, f := range frames {
		if f.Status != farm.FrameCompleted || f.ObjectKey == "" {
			continue
		}
		url, _, err := e.objects.PresignGet(ctx, f.ObjectKey, objstore.MaxPresignTTL, frameFileName(f.ObjectKey))
		if err != nil {
			return nil, err
		}
		urls = append(urls, url)
	}
	return urls, nil
}

// deliverWorker sends one event, retried with growing delays.
type deliverWorker struct {
	river.WorkerDefaults[deliverArgs]
	e *Engine
}

// NextRetry spaces the attempts of one event: seconds at first, hours at
// last (see webhook.RetryDelay).
func (w *deliverWorker) NextRetry(job *river.Job[deliverArgs]) time.Time {
	return time.Now().Add(webhook.RetryDelay(w.e.cfg.WebhookFirstRetry, job.Attempt))
}

func (w *deliverWorker) Work(ctx context.Context, rj *river.Job[deliverArgs]) error {
	e := w.e
	ev, err := e.store.GetWebhookEvent(ctx, rj.Args.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the webhook was deleted
	}
	if err != nil {
		return err
	}
	hook, err := e.store.GetWebhook(ctx, "", ev.WebhookID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	final := rj.Attempt >= rj.MaxAttempts
	attempt := store.WebhookAttempt{ID: uuid.NewString(), EventID: ev.ID, WebhookID: hook.ID, Attempt: rj.Attempt, AttemptedAt: time.Now().UTC()}

	// DNS may have changed since the webhook was registered: check again,
	// and the sender checks the address it actually connects to.
	if err := webhook.CheckURL(ctx, e.cfg.Resolver, hook.URL, e.cfg.WebhookAllowPrivate); err != nil {
		attempt.Error = "skipped: " + err.Error()
		return e.recordAttempt(ctx, ev.ID, attempt, store.EventSkipped)
	}
	res, sendErr := e.sender.Send(ctx, webhook.Delivery{URL: hook.URL, Secret: hook.Secret, DeliveryID: ev.ID, Event: ev.Event, Body: ev.Body})
	attempt.HTTPStatus, attempt.Duration = res.StatusCode, res.Duration
	state := store.EventDelivered
	if sendErr != nil {
		attempt.Error = sendErr.Error()
		state = store.EventFailed
		if !final {
			next := time.Now().Add(webhook.RetryDelay(e.cfg.WebhookFirstRetry, rj.Attempt)).UTC()
			attempt.NextRetryAt = &next
			state = store.EventPending
		}
	}
	if err := e.recordAttempt(ctx, ev.ID, attempt, state); err != nil {
		return err
	}
	if sendErr != nil && !final {
		return sendErr
	}
	return nil
}

func (e *Engine) recordAttempt(ctx context.Context, eventID string, a store.WebhookAttempt, state string) error {
	return e.store.InTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
		if err := tx.InsertWebhookAttempt(ctx, a); err != nil {
			return err
		}
		return tx.SetWebhookEventState(ctx, eventID, state)
	})
}
