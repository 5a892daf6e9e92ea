package housekeeping

import (
	"net/http"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// BenchmarkWebhookDelayBehindASlowWorkspace measures how long a workspace
// whose one receiver answers at once waits for its event while another
// workspace's 20 receivers each take the whole time a delivery may
// (webhook.Timeout, 7 s) and fail:
//
//	go test -run '^$' -bench WebhookDelayBehindASlowWorkspace -benchtime 1x ./internal/engine/
//
// It reports the seconds from the quiet workspace's event being queued to
// its receiver getting it, once the slow workspace's deliveries started.
func BenchmarkWebhookDelayBehindASlowWorkspace(b *testing.B) {
	var total time.Duration
	for range b.N {
		f := newWebhookFarm(b)
		slow := newReceiver(b, func(r *http.Request) {
			select {
			case <-time.After(webhook.Timeout):
			case <-r.Context().Done():
			}
		})
		fast := newReceiver(b, nil)
		noisy, quiet := f.workspace("noisy"), f.workspace("quiet")
		f.hooks(noisy, slow, farm.MaxWebhooksPerWorkspace)
		f.hooks(quiet, fast, 1)
		noisyJob, quietJob := f.job(noisy), f.job(quiet)

		f.cancel(noisy, noisyJob)
		slow.next(b, time.Minute, "slow delivery")
		queued := time.Now()
		f.cancel(quiet, quietJob)
		got := fast.next(b, 10*time.Minute, "quiet delivery")
		total += got.at.Sub(queued)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/quiet-delivery")
}

// BenchmarkWebhookBurstOfOneWorkspace measures how long one workspace's
// burst of 20 events, to 20 receivers that answer at once, takes to be
// delivered: the cap per workspace must not slow a workspace whose
// receivers keep up.
//
//	go test -run '^$' -bench WebhookBurstOfOneWorkspace -benchtime 5x ./internal/engine/
func BenchmarkWebhookBurstOfOneWorkspace(b *testing.B) {
	var total time.Duration
	for range b.N {
		f := newWebhookFarm(b)
		fast := newReceiver(b, nil)
		p := f.workspace("busy")
		f.hooks(p, fast, farm.MaxWebhooksPerWorkspace)
		job := f.job(p)
		queued := time.Now()
		f.cancel(p, job)
		var last arrival
		for range farm.MaxWebhooksPerWorkspace {
			last = fast.next(b, time.Minute, "delivery")
		}
		total += last.at.Sub(queued)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s/burst")
}
