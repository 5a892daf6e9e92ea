package housekeeping

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

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
	river.WorkerDefaults[engine.DeliverArgs]
	h *Housekeeping
}

// NextRetry spaces the attempts of one event: seconds at first, hours at
// last (see webhook.RetryDelay).
func (w *deliverWorker) NextRetry(job *river.Job[engine.DeliverArgs]) time.Time {
	return time.Now().Add(webhook.RetryDelay(w.h.cfg.WebhookFirstRetry, job.Attempt))
}

func (w *deliverWorker) Work(ctx context.Context, rj *river.Job[engine.DeliverArgs]) error {
	h := w.h
	ev, err := h.store.GetWebhookEvent(ctx, rj.Args.EventID)
	if errors.Is(err, store.ErrNotFound) {
		return nil // the webhook was deleted
	}
	if err != nil {
		return err
	}
	if ev.State != store.EventPending {
		// Its delivery ended, and was recorded, on an earlier run of this
		// River job, whose process died before River recorded the job
		// completed; River's rescue runs it again. Sent again, the
		// receiver would get it twice.
		return nil
	}
	hook, err := h.store.GetWebhook(ctx, "", ev.WebhookID)
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
	if !h.deliveries.take(ctx, hook.WorkspaceID, deliverySlotWait) {
		return river.JobSnooze(deliverySnooze(snoozesOf(rj.Metadata)))
	}
	defer h.deliveries.give(hook.WorkspaceID)

	final := rj.Attempt >= rj.MaxAttempts
	attempt := store.WebhookAttempt{ID: uuid.NewString(), EventID: ev.ID, WebhookID: hook.ID, Attempt: rj.Attempt, AttemptedAt: time.Now().UTC()}

	// DNS may have changed since the webhook was registered: check again,
	// and the sender checks the address it actually connects to.
	if err := webhook.CheckURL(ctx, h.cfg.Resolver, hook.URL, h.cfg.WebhookAllowPrivate); err != nil {
		attempt.Error = "skipped: " + err.Error()
		h.cfg.Metrics.WebhookAttempted(metrics.WebhookSkipped)
		return h.recordAttempt(ctx, ev.ID, attempt, store.EventSkipped)
	}
	res, sendErr := h.sender.Send(ctx, webhook.Delivery{URL: hook.URL, Secret: hook.Secret, DeliveryID: ev.ID, Event: ev.Event, Body: ev.Body})
	attempt.HTTPStatus, attempt.Duration = res.StatusCode, res.Duration
	state := store.EventDelivered
	if sendErr != nil {
		attempt.Error = sendErr.Error()
		state = store.EventFailed
		if !final {
			next := time.Now().Add(webhook.RetryDelay(h.cfg.WebhookFirstRetry, rj.Attempt)).UTC()
			attempt.NextRetryAt = &next
			state = store.EventPending
		}
	}
	h.cfg.Metrics.WebhookAttempted(attemptResult(state))
	if err := h.recordAttempt(ctx, ev.ID, attempt, state); err != nil {
		return err
	}
	if sendErr != nil && !final {
		return sendErr
	}
	return nil
}

// attemptResult is the metrics' name of how a delivery attempt ended,
// from the state it left its event in.
func attemptResult(state string) string {
	switch state {
	case store.EventDelivered:
		return metrics.WebhookDelivered
	case store.EventPending:
		return metrics.WebhookRetrying
	}
	return metrics.WebhookFailed
}

func (h *Housekeeping) recordAttempt(ctx context.Context, eventID string, a store.WebhookAttempt, state string) error {
	return h.store.InTx(context.WithoutCancel(ctx), func(tx *store.Tx) error {
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
