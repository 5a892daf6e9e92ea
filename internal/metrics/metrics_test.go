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

func TestMetricsReportTheFarmsNumbers(t *testing.T) {
	m := metrics.New(func(context.Context) (store.FarmStats, error) {
		return store.FarmStats{
			JobsByStatus: map[string]int{"rendering": 2, "completed": 5},
			QueueDepth:   map[string]int{"render": 7},
			LiveWorkers:  3,
		}, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.FrameStored("node-1", 1.5)
	m.FrameStored("node-1", 2.5)
	m.Uploaded(1024)

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`renderfarm_jobs{status="rendering"} 2`,
		`renderfarm_jobs{status="completed"} 5`,
		`renderfarm_queue_depth{queue="render"} 7`,
		`renderfarm_workers 3`,
		`renderfarm_frames_rendered_total{worker="node-1"} 2`,
		`renderfarm_render_seconds_total 4`,
		`renderfarm_upload_bytes_total 1024`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
