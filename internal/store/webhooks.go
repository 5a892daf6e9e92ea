package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Webhook is a receiver a workspace registered.
type Webhook struct {
	ID          string
	WorkspaceID string
	URL         string
	Events      []string
	Secret      string
	CreatedAt   time.Time
}

// Webhook event states.
const (
	EventPending   = "pending"
	EventDelivered = "delivered"
	EventFailed    = "failed"
	EventSkipped   = "skipped"
)

// WebhookEvent is one event to deliver to one webhook, with its body fixed.
type WebhookEvent struct {
	ID        string
	WebhookID string
	JobID     string
	Event     string
	Body      []byte
	State     string
	CreatedAt time.Time
}

// WebhookAttempt is one try at delivering an event.
type WebhookAttempt struct {
	ID          string
	EventID     string
	WebhookID   string
	Event       string // filled by listings, from the event
	JobID       string // likewise
	Attempt     int
	AttemptedAt time.Time
	Duration    time.Duration
	HTTPStatus  int // 0 when no answer came
	Error       string
	NextRetryAt *time.Time
}

// InsertWebhook stores a new webhook.
func (q *Queries) InsertWebhook(ctx context.Context, w Webhook) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return err
	}
	_, err = q.exec(ctx, `INSERT INTO webhooks (id, workspace_id, url, events, secret, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		w.ID, w.WorkspaceID, w.URL, string(events), w.Secret, w.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("store webhook: %w", err)
	}
	return nil
}

// GetWebhook finds a webhook; an empty workspaceID finds any (for delivery).
func (q *Queries) GetWebhook(ctx context.Context, workspaceID, id string) (Webhook, error) {
	query := `SELECT id, workspace_id, url, events, secret, created_at FROM webhooks WHERE id = ?`
	args := []any{id}
	if workspaceID != "" {
		query += ` AND workspace_id = ?`
		args = append(args, workspaceID)
	}
	w, err := scanWebhook(q.queryRow(ctx, query, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return w, ErrNotFound
	}
	return w, err
}

// ListWebhooks lists a workspace's webhooks, oldest first.
func (q *Queries) ListWebhooks(ctx context.Context, workspaceID string) ([]Webhook, error) {
	rows, err := q.query(ctx, `SELECT id, workspace_id, url, events, secret, created_at FROM webhooks WHERE workspace_id = ? ORDER BY created_at, id`, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	hooks := []Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, err
		}
		hooks = append(hooks, w)
	}
	return hooks, rows.Err()
}

// DeleteWebhook removes a webhook with its events and attempts.
func (q *Queries) DeleteWebhook(ctx context.Context, workspaceID, id string) error {
	res, err := q.exec(ctx, `DELETE FROM webhooks WHERE id = ? AND workspace_id = ?`, id, workspaceID)
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// SetWebhookSecret replaces a webhook's secret.
func (q *Queries) SetWebhookSecret(ctx context.Context, workspaceID, id, secret string) error {
	res, err := q.exec(ctx, `UPDATE webhooks SET secret = ? WHERE id = ? AND workspace_id = ?`, secret, id, workspaceID)
	if err != nil {
		return fmt.Errorf("rotate webhook secret: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// InsertWebhookEvent stores an event to deliver.
func (q *Queries) InsertWebhookEvent(ctx context.Context, ev WebhookEvent) error {
	_, err := q.exec(ctx, `INSERT INTO webhook_events (id, webhook_id, job_id, event, body, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		ev.ID, ev.WebhookID, ev.JobID, ev.Event, string(ev.Body), ev.State, ev.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("store webhook event: %w", err)
	}
	return nil
}

// GetWebhookEvent finds an event by its delivery id.
func (q *Queries) GetWebhookEvent(ctx context.Context, id string) (WebhookEvent, error) {
	var ev WebhookEvent
	var body string
	err := q.queryRow(ctx, `SELECT id, webhook_id, job_id, event, body, state, created_at FROM webhook_events WHERE id = ?`, id).
		Scan(&ev.ID, &ev.WebhookID, &ev.JobID, &ev.Event, &body, &ev.State, &ev.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return ev, ErrNotFound
	}
	ev.Body = []byte(body)
	ev.CreatedAt = ev.CreatedAt.UTC()
	return ev, err
}

// SetWebhookEventState records how an event's delivery ended.
func (q *Queries) SetWebhookEventState(ctx context.Context, id, state string) error {
	_, err := q.exec(ctx, `UPDATE webhook_events SET state = ? WHERE id = ?`, state, id)
	return err
}

// InsertWebhookAttempt records one delivery attempt.
func (q *Queries) InsertWebhookAttempt(ctx context.Context, a WebhookAttempt) error {
	var status, next any
	if a.HTTPStatus != 0 {
		status = a.HTTPStatus
	}
	if a.NextRetryAt != nil {
		next = a.NextRetryAt.UTC()
	}
	_, err := q.exec(ctx, `INSERT INTO webhook_attempts (id, event_id, webhook_id, attempt, attempted_at, duration_ms, http_status, error, next_retry_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.EventID, a.WebhookID, a.Attempt, a.AttemptedAt.UTC(), a.Duration.Milliseconds(), status, a.Error, next)
	if err != nil {
		return fmt.Errorf("store webhook attempt: %w", err)
	}
	return nil
}

// ListWebhookAttempts lists a webhook's delivery attempts, newest first.
func (q *Queries) ListWebhookAttempts(ctx context.Context, webhookID string, limit int) ([]WebhookAttempt, error) {
	rows, err := q.query(ctx, `SELECT a.id, a.event_id, a.webhook_id, e.event, e.job_id, a.attempt, a.attempted_at, a.duration_ms, a.http_status, a.error, a.next_retry_at
		FROM webhook_attempts a JOIN webhook_events e ON e.id = a.event_id
		WHERE a.webhook_id = ? ORDER BY a.attempted_at DESC, a.attempt DESC LIMIT ?`, webhookID, limit)
	if err != nil {
		return nil, fmt.Errorf("list webhook attempts: %w", err)
	}
	defer rows.Close()
	attempts := []WebhookAttempt{}
	for rows.Next() {
		var a WebhookAttempt
		var ms int64
		var status sql.NullInt64
		var next sql.NullTime
		if err := rows.Scan(&a.ID, &a.EventID, &a.WebhookID, &a.Event, &a.JobID, &a.Attempt, &a.AttemptedAt, &ms, &status, &a.Error, &next); err != nil {
			return nil, err
		}
		a.Duration = time.Duration(ms) * time.Millisecond
		a.HTTPStatus = int(status.Int64)
		if next.Valid {
			t := next.Time.UTC()
			a.NextRetryAt = &t
		}
		a.AttemptedAt = a.AttemptedAt.UTC()
		attempts = append(attempts, a)
	}
	return attempts, rows.Err()
}

func scanWebhook(row rowScanner) (Webhook, error) {
	var w Webhook
	var events string
	if err := row.Scan(&w.ID, &w.WorkspaceID, &w.URL, &events, &w.Secret, &w.CreatedAt); err != nil {
		return w, err
	}
	w.CreatedAt = w.CreatedAt.UTC()
	return w, json.Unmarshal([]byte(events), &w.Events)
}
