package housekeeping

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// TestADeliveryRunAgainAfterItsEventEndedSendsNothing: a process is
// killed just after it delivered an event and recorded the attempt, before
// River marked the delivery's job completed (River records completions in
// batches, after Work returns). River's rescue runs the job again minutes
// later: the event, delivered already, is not sent a second time, nor a
// second attempt recorded.
func TestADeliveryRunAgainAfterItsEventEndedSendsNothing(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		var requests atomic.Int32
		receiver := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { requests.Add(1) }))
		t.Cleanup(receiver.Close)
		hook, err := f.api.CreateWebhook(f.Ctx, f.P, receiver.URL+"/hook", []string{webhook.EventStatusChange})
		if err != nil {
			t.Fatalf("CreateWebhook: %v", err)
		}
		job := f.CreatedJob(f.api)
		if _, err := f.api.Cancel(f.Ctx, f.P, job.ID); err != nil {
			t.Fatalf("Cancel: %v", err)
		}
		deliveries := f.RiverJobs("deliver_webhook")
		if len(deliveries) != 1 {
			t.Fatalf("%d deliveries queued, want the cancel's one", len(deliveries))
		}
		var args engine.DeliverArgs
		if err := json.Unmarshal(deliveries[0].Args, &args); err != nil {
			t.Fatal(err)
		}
		w := &deliverWorker{h: f.hk}
		attempt := func(n int) {
			t.Helper()
			rj := &river.Job[engine.DeliverArgs]{JobRow: &rivertype.JobRow{ID: deliveries[0].ID, Attempt: n, MaxAttempts: deliveries[0].MaxAttempts}, Args: args}
			if err := w.Work(f.Ctx, rj); err != nil {
				t.Fatalf("attempt %d: %v", n, err)
			}
		}

		attempt(1)
		// Killed here: River never recorded the job completed, and its
		// rescue hands it out again as the next attempt.
		attempt(2)

		if n := requests.Load(); n != 1 {
			t.Errorf("the receiver got the event %d times, want once", n)
		}
		attempts, err := f.api.WebhookDeliveries(f.Ctx, f.P, hook.ID)
		if err != nil {
			t.Fatalf("WebhookDeliveries: %v", err)
		}
		if len(attempts) != 1 {
			t.Errorf("%d attempts recorded, want the one delivery", len(attempts))
		}
	})
}
