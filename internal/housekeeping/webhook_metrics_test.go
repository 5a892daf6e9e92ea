package housekeeping

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// TestWebhookAttemptsAreCountedByResult delivers one event to a receiver
// that fails its first request and takes the second: the metrics count
// one attempt retrying and one delivered, which the alert on failing
// deliveries reads.
func TestWebhookAttemptsAreCountedByResult(t *testing.T) {
	farm := enginetest.New(t, enginetest.SQLite)
	m := metrics.New(func(context.Context) (store.FarmStats, error) { return store.FarmStats{}, nil }, slog.New(slog.NewTextHandler(io.Discard, nil)))
	svc := service.DefaultConfig()
	svc.WorkerTimeout, svc.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	api := service.New(farm.Engine, svc)
	cfg := DefaultConfig()
	cfg.WorkerTimeout, cfg.WebhookAllowPrivate = enginetest.WorkerTimeout, true
	cfg.WebhookFirstRetry = 100 * time.Millisecond
	cfg.Metrics = m
	New(farm.Engine, cfg)
	if err := farm.Engine.Start(farm.Ctx); err != nil {
		t.Fatalf("engine.Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = farm.Engine.Stop(ctx)
	})

	var requests atomic.Int32
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if requests.Add(1) == 1 {
			http.Error(w, "down for a moment", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(receiver.Close)

	f := &webhookFarm{tb: t, store: farm.Store, objects: farm.Objects, api: api}
	p := f.workspace("studio")
	if _, err := api.CreateWebhook(t.Context(), p, receiver.URL+"/hook", []string{webhook.EventStatusChange}); err != nil {
		t.Fatalf("CreateWebhook: %v", err)
	}
	f.cancel(p, f.job(p)) // one status change: one event

	attempts := func(result string) float64 { return testutil.ToFloat64(m.WebhookAttempts.WithLabelValues(result)) }
	deadline := time.Now().Add(30 * time.Second)
	for attempts(metrics.WebhookDelivered) < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: %d requests, delivered %v, retrying %v", requests.Load(), attempts(metrics.WebhookDelivered), attempts(metrics.WebhookRetrying))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for result, want := range map[string]float64{metrics.WebhookRetrying: 1, metrics.WebhookDelivered: 1, metrics.WebhookFailed: 0, metrics.WebhookSkipped: 0} {
		if got := attempts(result); got != want {
			t.Errorf("webhook attempts %s = %v, want %v", result, got, want)
		}
	}
}
