package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestMetricsShowTheSickRenderNodes: one series per sick node, none for
// the others.
func TestMetricsShowTheSickRenderNodes(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New(func(context.Context) (store.FarmStats, error) { return store.FarmStats{}, nil }, log)
	m.CountSick(func(context.Context) ([]string, error) { return []string{"node-2"}, nil }, log)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	if !strings.Contains(body, `renderfarm_worker_sick{worker="node-2"} 1`) {
		t.Errorf("/metrics lacks node-2's sick series:\n%s", body)
	}
	if strings.Count(body, "renderfarm_worker_sick{") != 1 {
		t.Errorf("/metrics has sick series for nodes that are not sick:\n%s", body)
	}
}
