package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// maxDeliveriesListed bounds GET /webhooks/{id}/deliveries.
const maxDeliveriesListed = 200

// CreateWebhook registers a receiver after checking its URL and events.
func (s *Service) CreateWebhook(ctx context.Context, p farm.Principal, rawURL string, events []string) (*farm.Webhook, error) {
	if rawURL == "" {
		return nil, &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: "url", Message: "url is required: where the farm POSTs events, e.g. https://pipeline.example.com/renderfarm"}
	}
	if err := webhook.CheckURL(ctx, s.cfg.Resolver, rawURL, s.cfg.WebhookAllowPrivate); err != nil {
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
	err = s.store.InTx(ctx, func(tx *store.Tx) error {
		// Webhooks registered at the same moment count the workspace's
		// webhooks one after the other, each seeing those registered
		// before it; without the lock, each could count the same room
		// under the limit and all be inserted.
		if err := tx.LockWorkspace(ctx, p.WorkspaceID); err != nil {
			return err
		}
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
func (s *Service) ListWebhooks(ctx context.Context, p farm.Principal) ([]farm.Webhook, error) {
	hooks, err := s.store.ListWebhooks(ctx, p.WorkspaceID)
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
func (s *Service) GetWebhook(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	h, err := s.loadWebhook(ctx, p, id)
	if err != nil {
		return nil, err
	}
	w := webhookView(h)
	return &w, nil
}

// DeleteWebhook removes a webhook; events not yet delivered are dropped.
func (s *Service) DeleteWebhook(ctx context.Context, p farm.Principal, id string) error {
	if _, err := uuid.Parse(id); err != nil {
		return farm.NotFound("webhook", id)
	}
	err := s.store.DeleteWebhook(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return farm.NotFound("webhook", id)
	}
	return err
}

// RotateWebhookSecret gives a webhook a new secret and shows it once.
// Events already queued are signed with the new one from their next attempt.
func (s *Service) RotateWebhookSecret(ctx context.Context, p farm.Principal, id string) (*farm.Webhook, error) {
	h, err := s.loadWebhook(ctx, p, id)
	if err != nil {
		return nil, err
	}
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, err
	}
	if err := s.store.SetWebhookSecret(ctx, p.WorkspaceID, id, secret); err != nil {
		return nil, err
	}
	w := webhookView(h)
	w.Secret = secret
	return &w, nil
}

// WebhookDeliveries lists a webhook's delivery attempts, newest first.
func (s *Service) WebhookDeliveries(ctx context.Context, p farm.Principal, id string) ([]farm.WebhookDelivery, error) {
	if _, err := s.loadWebhook(ctx, p, id); err != nil {
		return nil, err
	}
	attempts, err := s.store.ListWebhookAttempts(ctx, id, maxDeliveriesListed)
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

func (s *Service) loadWebhook(ctx context.Context, p farm.Principal, id string) (store.Webhook, error) {
	if _, err := uuid.Parse(id); err != nil {
		return store.Webhook{}, farm.NotFound("webhook", id)
	}
	h, err := s.store.GetWebhook(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return h, farm.NotFound("webhook", id)
	}
	return h, err
}

func webhookView(h store.Webhook) farm.Webhook {
	return farm.Webhook{ID: h.ID, URL: h.URL, Events: h.Events, CreatedAt: h.CreatedAt}
}
