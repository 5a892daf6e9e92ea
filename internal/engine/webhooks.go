package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
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

// MaxDeliveriesPerWorkspace is how many webhook deliveries of one
// workspace a process sends at once. Every workspace shares the process's
// webhookDeliverySlots, and a receiver may take webhook.Timeout (7 s) to
// answer: without a cap, one workspace with slow receivers would hold every
// slot and hold up every other workspace's events. With it, a workspace
// whose receivers are slow waits for its own deliveries only.
const MaxDeliveriesPerWorkspace = 4

// webhookDeliverySlots is how many deliveries a process handles at once,
// all workspaces together (the webhooks queue's River workers). A delivery
// mostly waits on its receiver, so slots cost little.
const webhookDeliverySlots = 64

// deliverySlotsKeptFree is how many of webhookDeliverySlots deliveries
// waiting for a slot of their workspace leave free, so that an event of a
// workspace under its cap finds one: waiting never fills the slots, and
// sending fills them only when 64 / 4 = 16 workspaces are at their cap at
// once.
const deliverySlotsKeptFree = 16

// deliveryWaitersPerWorkspace is how many deliveries of a workspace at its
// cap may wait in the process for one of its deliveries to end, rather
// than snooze: a burst of events to receivers that answer at once (a job
// ending sends one event per webhook, up to farm.MaxWebhooksPerWorkspace)
// flows at the cap without a round trip through the database each.
const deliveryWaitersPerWorkspace = farm.MaxWebhooksPerWorkspace - MaxDeliveriesPerWorkspace

// deliverySlotWait is how long a delivery waits for a slot of its
// workspace before it gives its River slot back and snoozes.
const deliverySlotWait = 500 * time.Millisecond

// deliverySnoozeFirst and deliverySnoozeMost bound how long a delivery that
// found no slot of its workspace waits before River hands it out again:
// the first wait is short, then each doubles, up to the longest a delivery
// can hold a slot, so that a workspace with a long backlog of slow
// deliveries costs the database a few snoozes a second rather than a busy
// loop.
const (
	deliverySnoozeFirst = 250 * time.Millisecond
	deliverySnoozeMost  = webhook.Timeout
)

// deliverySnooze is how long a delivery waits for a slot of its workspace
// after it was turned away snoozes times before, with a quarter of jitter
// so that deliveries turned away together do not all come back together.
func deliverySnooze(snoozes int) time.Duration {
	d := deliverySnoozeMost
	if snoozes < 8 {
		d = min(deliverySnoozeFirst<<snoozes, deliverySnoozeMost)
	}
	return d - time.Duration(rand.Int64N(int64(d/4)+1))
}

// deliverySlots counts the deliveries this process is sending, and those
// waiting for a slot, by workspace; its zero value is ready to use.
//
// The count is this process's, not the farm's: each API replica has
// webhookDeliverySlots of its own and keeps them from filling with one
// workspace's deliveries, which is what keeps other workspaces' events
// moving. A workspace may so have MaxDeliveriesPerWorkspace deliveries in
// flight on each replica.
type deliverySlots struct {
	mu         sync.Mutex
	workspaces map[string]*workspaceSlots
	inFlight   int // of every workspace
	waiting    int // of every workspace
}

// workspaceSlots is one workspace's count.
type workspaceSlots struct {
	inFlight int
	waiting  int
	freed    chan struct{} // closed, and replaced, each time a slot is given back
}

// take claims a slot of the workspace. When all are taken it waits, up to
// wait, for one to be given back, if the workspace has fewer than
// deliveryWaitersPerWorkspace deliveries waiting and waiting leaves
// deliverySlotsKeptFree slots free; it answers false when it got none.
func (s *deliverySlots) take(ctx context.Context, workspaceID string, wait time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workspaces == nil {
		s.workspaces = map[string]*workspaceSlots{}
	}
	w := s.workspaces[workspaceID]
	if w == nil {
		w = &workspaceSlots{freed: make(chan struct{})}
		s.workspaces[workspaceID] = w
	}
	if w.inFlight < MaxDeliveriesPerWorkspace {
		w.inFlight++
		s.inFlight++
		return true
	}
	if w.waiting >= deliveryWaitersPerWorkspace || s.inFlight+s.waiting+1 > webhookDeliverySlots-deliverySlotsKeptFree {
		return false
	}
	w.waiting++
	s.waiting++
	defer func() {
		w.waiting--
		s.waiting--
	}()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for w.inFlight >= MaxDeliveriesPerWorkspace {
		freed := w.freed
		s.mu.Unlock()
		gaveUp := false
		select {
		case <-freed:
		case <-timer.C:
			gaveUp = true
		case <-ctx.Done():
			gaveUp = true
		}
		s.mu.Lock()
		if gaveUp && w.inFlight >= MaxDeliveriesPerWorkspace {
			return false
		}
	}
	w.inFlight++
	s.inFlight++
	return true
}

// give returns a slot taken, waking the deliveries that wait for one.
func (s *deliverySlots) give(workspaceID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workspaces[workspaceID]
	w.inFlight--
	s.inFlight--
	close(w.freed)
	w.freed = make(chan struct{})
	if w.inFlight == 0 && w.waiting == 0 {
		delete(s.workspaces, workspaceID)
	}
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
	// A workspace at its cap waits its turn. River's snooze gives the
	// job back without counting an attempt (River takes back the attempt
	// it added when it handed the job out) and records no error, so the
	// event keeps its attempts, its retry schedule, its id and its body;
	// nothing has been sent or recorded yet.
	if !e.deliveries.take(ctx, hook.WorkspaceID, deliverySlotWait) {
		return river.JobSnooze(deliverySnooze(snoozesOf(rj.Metadata)))
	}
	defer e.deliveries.give(hook.WorkspaceID)

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

// snoozesOf is how many times River snoozed a job, from the count it keeps
// in the job's metadata.
func snoozesOf(metadata []byte) int {
	var m struct {
		Snoozes int `json:"snoozes"`
	}
	if json.Unmarshal(metadata, &m) != nil {
		return 0
	}
	return m.Snoozes
}
