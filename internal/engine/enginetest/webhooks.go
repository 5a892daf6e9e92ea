package enginetest

import (
	"encoding/json"
	"slices"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// HookURL is where the fixtures' webhooks point; nothing is delivered,
// since the engine is never started.
const HookURL = "http://127.0.0.1:9/renderfarm"

// CreateWebhook registers a webhook of events at HookURL through api.
func (f *Farm) CreateWebhook(api API, events ...string) *farm.Webhook {
	f.T.Helper()
	h, err := api.CreateWebhook(f.Ctx, f.P, HookURL, events)
	if err != nil {
		f.T.Fatalf("CreateWebhook(%v): %v", events, err)
	}
	return h
}

// QueuedEvent is a webhook event and whether its delivery was queued.
type QueuedEvent struct {
	Webhook string
	Event   string
	Body    map[string]any
	Queued  bool
}

// WebhookEvents lists a job's webhook events in the order they were made
// (the order their deliveries were queued in), each with whether a
// deliver_webhook River job in the webhooks queue names it.
func (f *Farm) WebhookEvents(jobID string) []QueuedEvent {
	f.T.Helper()
	deliveries := map[string]RiverJob{}
	for _, j := range f.RiverJobs("deliver_webhook") {
		var a engine.DeliverArgs
		if err := json.Unmarshal(j.Args, &a); err != nil {
			f.T.Fatal(err)
		}
		deliveries[a.EventID] = j
	}
	rows, err := f.Store.DB().QueryContext(f.Ctx, f.rebind(`SELECT id, webhook_id, event, body, state FROM webhook_events WHERE job_id = ?`), jobID)
	if err != nil {
		f.T.Fatal(err)
	}
	defer rows.Close()
	type made struct {
		QueuedEvent
		riverJob int64
	}
	var events []made
	for rows.Next() {
		var id, hook, event, body, state string
		if err := rows.Scan(&id, &hook, &event, &body, &state); err != nil {
			f.T.Fatal(err)
		}
		if state != store.EventPending {
			f.T.Errorf("event %s is %s, want pending", event, state)
		}
		ev := made{QueuedEvent: QueuedEvent{Webhook: hook, Event: event}}
		if err := json.Unmarshal([]byte(body), &ev.Body); err != nil {
			f.T.Fatalf("event body %s: %v", body, err)
		}
		if d, ok := deliveries[id]; ok {
			ev.Queued = d.State == "available" && d.Queue == engine.QueueWebhooks
			ev.riverJob = d.ID
		}
		events = append(events, ev)
	}
	if err := rows.Err(); err != nil {
		f.T.Fatal(err)
	}
	slices.SortStableFunc(events, func(a, b made) int { return int(a.riverJob - b.riverJob) })
	out := make([]QueuedEvent, len(events))
	for i, ev := range events {
		out[i] = ev.QueuedEvent
	}
	return out
}
