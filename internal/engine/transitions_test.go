package engine_test

import (
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

func TestMoveJobRefusesMovesTheRulesForbid(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		tests := []struct{ from, to farm.Status }{
			{farm.StatusCompleted, farm.StatusRendering},
			{farm.StatusCompleted, farm.StatusFailed},
			{farm.StatusFailed, farm.StatusCanceled},
			{farm.StatusCanceled, farm.StatusRendering},
			{farm.StatusSuspended, farm.StatusBooting},
			{farm.StatusCreated, farm.StatusRendering},
			{farm.StatusCreated, farm.StatusValidated},
			{farm.StatusValidated, farm.StatusFinalizing},
			{farm.StatusBooting, farm.StatusCompleted},
			{farm.StatusRendering, farm.StatusBooting},
			{farm.StatusFinalizing, farm.StatusRendering},
		}
		for _, tt := range tests {
			t.Run(string(tt.from)+" to "+string(tt.to), func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				f.CreateWebhook(f.api, webhook.Events...)
				job := f.InsertJob(f.api, tt.from)
				before := f.Job(job.ID)

				err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
					return f.Engine.MoveJob(f.Ctx, tx, job, tt.to)
				})

				if err == nil {
					t.Fatalf("moveJob(%s → %s) = nil, want an error", tt.from, tt.to)
				}
				if job.Status != tt.from {
					t.Errorf("the job in hand moved to %s, want it left %s", job.Status, tt.from)
				}
				if after := f.Job(job.ID); after.Status != tt.from || !after.UpdatedAt.Equal(before.UpdatedAt) {
					t.Errorf("row = %s updated %v, want untouched: %s updated %v", after.Status, after.UpdatedAt, tt.from, before.UpdatedAt)
				}
				if n := f.Count("webhook_events", ""); n != 0 {
					t.Errorf("%d webhook events, want none", n)
				}
				if n := len(f.RiverJobs("deliver_webhook")); n != 0 {
					t.Errorf("%d deliveries queued, want none", n)
				}
			})
		}
	})
}

func TestMoveJobQueuesOneDeliveryPerSubscribedEvent(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		all := webhook.Events
		tests := []struct {
			name     string
			webhooks [][]string // each webhook's events
			from, to farm.Status
			want     []string // events queued, webhook by webhook
		}{
			{
				name:     "every change is a status change",
				webhooks: [][]string{all},
				from:     farm.StatusValidated, to: farm.StatusBooting,
				want: []string{webhook.EventStatusChange},
			},
			{
				name:     "completing is also a render complete",
				webhooks: [][]string{all},
				from:     farm.StatusFinalizing, to: farm.StatusCompleted,
				want: []string{webhook.EventStatusChange, webhook.EventRenderComplete},
			},
			{
				name:     "failing is also a render fail",
				webhooks: [][]string{all},
				from:     farm.StatusRendering, to: farm.StatusFailed,
				want: []string{webhook.EventStatusChange, webhook.EventRenderFail},
			},
			{
				name:     "canceling is only a status change",
				webhooks: [][]string{all},
				from:     farm.StatusRendering, to: farm.StatusCanceled,
				want: []string{webhook.EventStatusChange},
			},
			{
				name:     "a webhook gets only the events it asked for",
				webhooks: [][]string{{webhook.EventRenderComplete}},
				from:     farm.StatusFinalizing, to: farm.StatusCompleted,
				want: []string{webhook.EventRenderComplete},
			},
			{
				name:     "a webhook that wants none of the move's events gets nothing",
				webhooks: [][]string{{webhook.EventRenderComplete, webhook.EventRenderFail}},
				from:     farm.StatusBooting, to: farm.StatusRendering,
			},
			{
				name:     "each webhook gets its own events",
				webhooks: [][]string{{webhook.EventStatusChange}, {webhook.EventRenderFail}, all},
				from:     farm.StatusValidating, to: farm.StatusFailed,
				want: []string{webhook.EventStatusChange, webhook.EventRenderFail, webhook.EventStatusChange, webhook.EventRenderFail},
			},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				f := newFixture(t, db)
				var hookIDs []string
				for _, events := range tt.webhooks {
					hookIDs = append(hookIDs, f.CreateWebhook(f.api, events...).ID)
				}
				job := f.InsertJob(f.api, tt.from)

				f.Move(job.ID, tt.to)

				if st := f.Job(job.ID).Status; st != tt.to {
					t.Fatalf("job = %s, want %s", st, tt.to)
				}
				events := f.WebhookEvents(job.ID)
				var got []string
				for _, ev := range events {
					got = append(got, ev.Event)
					if !ev.Queued {
						t.Errorf("event %s has no deliver_webhook River job in queue %q", ev.Event, engine.QueueWebhooks)
					}
					if ev.Body["jobId"] != job.ID || ev.Body["status"] != string(tt.to) || ev.Body["event"] != ev.Event {
						t.Errorf("event %s body = %v, want its event, the job and its new status", ev.Event, ev.Body)
					}
					if ev.Event == webhook.EventStatusChange && ev.Body["previousStatus"] != string(tt.from) {
						t.Errorf("status change body = %v, want previousStatus %s", ev.Body, tt.from)
					}
				}
				// Events are made webhook by webhook, in the order they were
				// registered.
				var order []string
				for _, ev := range events {
					order = append(order, ev.Webhook)
				}
				if !slices.IsSortedFunc(order, func(a, b string) int { return slices.Index(hookIDs, a) - slices.Index(hookIDs, b) }) {
					t.Errorf("events by webhook = %v, want grouped in registration order %v", order, hookIDs)
				}
				if !slices.Equal(got, tt.want) {
					t.Errorf("events = %v, want %v", got, tt.want)
				}
				if n := len(f.RiverJobs("deliver_webhook")); n != len(tt.want) {
					t.Errorf("%d deliver_webhook River jobs, want one per event: %d", n, len(tt.want))
				}
			})
		}
	})
}

func TestMoveJobLeavesNothingWhenItsTransactionRollsBack(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		f.CreateWebhook(f.api, webhook.Events...)
		job := f.InsertJob(f.api, farm.StatusRendering)
		before := f.Job(job.ID)
		errLater := errors.New("a later step of the same transaction failed")

		err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			current, err := tx.GetJob(f.Ctx, "", job.ID)
			if err != nil {
				return err
			}
			current.FailedReason = &farm.FailedReason{Name: "FRAME_FAILED", Type: farm.FailRender, Message: "frame 1 failed"}
			if err := f.Engine.MoveJob(f.Ctx, tx, current, farm.StatusFailed); err != nil {
				return err
			}
			return errLater
		})

		if !errors.Is(err, errLater) {
			t.Fatalf("InTx = %v, want the later step's error", err)
		}
		after := f.Job(job.ID)
		if after.Status != farm.StatusRendering || after.FailedReason != nil || !after.UpdatedAt.Equal(before.UpdatedAt) {
			t.Errorf("job = %s, reason %v; want rendering, as before the rolled-back move", after.Status, after.FailedReason)
		}
		if n := f.Count("webhook_events", ""); n != 0 {
			t.Errorf("%d webhook events, want none", n)
		}
		if n := len(f.RiverJobs("deliver_webhook")); n != 0 {
			t.Errorf("%d deliveries queued, want none", n)
		}
	})
}

// TestASuspendedJobSaysWhyUntilItMovesOn: the reason set with a move to
// suspended is stored and sent in onStatusChange; the next move clears it.
func TestASuspendedJobSaysWhyUntilItMovesOn(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixture(t, db)
		f.CreateWebhook(f.api, webhook.EventStatusChange)
		job := f.InsertJob(f.api, farm.StatusRendering)

		err := f.Store.InTx(f.Ctx, func(tx *store.Tx) error {
			job.SuspendedReason = farm.SuspendedScoutFramesReady
			return f.Engine.MoveJob(f.Ctx, tx, job, farm.StatusSuspended)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Job(job.ID); got.Status != farm.StatusSuspended || got.SuspendedReason != farm.SuspendedScoutFramesReady {
			t.Fatalf("job = %s, reason %q; want suspended for its scout frames", got.Status, got.SuspendedReason)
		}
		f.Move(job.ID, farm.StatusRendering)
		if got := f.Job(job.ID); got.Status != farm.StatusRendering || got.SuspendedReason != "" {
			t.Errorf("resumed job = %s, reason %q; want rendering with no reason", got.Status, got.SuspendedReason)
		}
		events := f.WebhookEvents(job.ID)
		if len(events) != 2 || events[0].Body["suspendedReason"] != farm.SuspendedScoutFramesReady || events[1].Body["suspendedReason"] != nil {
			t.Errorf("status change bodies = %v; want the reason with the move to suspended alone", events)
		}
	})
}

// TestARenderCompleteListsAtMostTenThousandFrameURLs: a job of 10,003
// frames completes; its onRenderComplete lists the first
// webhook.MaxFrameURLs frames' URLs, in frame order, and framesTotal says
// how many there are; a job of a few frames lists them all, without it.
func TestARenderCompleteListsAtMostTenThousandFrameURLs(t *testing.T) {
	t.Parallel()
	enginetest.EachDatabase(t, func(t *testing.T, db enginetest.Database) {
		f := newFixture(t, db)
		f.CreateWebhook(f.api, webhook.EventRenderComplete)
		large := f.InsertJob(f.api, farm.StatusFinalizing)
		const frames = webhook.MaxFrameURLs + 3
		f.Exec(`INSERT INTO frames (job_id, frame, task_id, status, object_key, updated_at)
			WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < `+strconv.Itoa(frames)+`)
			SELECT ?, x, 'task-1', 'completed', 'jobs/' || ? || '/frames/frame_' || x || '.png', CURRENT_TIMESTAMP FROM n`, large.ID, large.ID)
		small := f.FinishedJobWithFiles(f.api, farm.StatusFinalizing)

		for _, job := range []*farm.Job{large, small} {
			f.Move(job.ID, farm.StatusCompleted)
		}

		events := f.WebhookEvents(large.ID)
		if len(events) != 1 {
			t.Fatalf("%d events for the large job, want one onRenderComplete", len(events))
		}
		outputs, _ := events[0].Body["outputs"].(map[string]any)
		urls, _ := outputs["frames"].([]any)
		if len(urls) != webhook.MaxFrameURLs || outputs["framesTotal"] != float64(frames) {
			t.Errorf("the large job's event lists %d frame URLs and framesTotal %v; want %d and %d", len(urls), outputs["framesTotal"], webhook.MaxFrameURLs, frames)
		}
		if len(urls) > 0 && !strings.Contains(urls[0].(string), "frame_1.png") {
			t.Errorf("the first URL is %v, want frame 1's", urls[0])
		}
		outputs, _ = f.WebhookEvents(small.ID)[0].Body["outputs"].(map[string]any)
		if urls, _ := outputs["frames"].([]any); len(urls) != 2 || outputs["framesTotal"] != nil {
			t.Errorf("the small job's event: outputs %v; want its 2 frames and no framesTotal", outputs)
		}
	})
}
