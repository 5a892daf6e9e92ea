package metrics_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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

func TestMetricsReportTasksWorkersChunksWebhooksLatencyAndDisk(t *testing.T) {
	m := metrics.New(func(context.Context) (store.FarmStats, error) {
		return store.FarmStats{
			UnfinishedTasks: map[store.TaskCount]int{{Kind: store.TaskRender, Status: store.TaskQueued}: 12},
			WorkersByState:  map[string]int{store.WorkerBusy: 4, store.WorkerDead: 1},
		}, nil
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	m.ChunkFinished(metrics.ChunkDone)
	m.ChunkFinished(metrics.ChunkDone)
	m.ChunkFinished(metrics.ChunkFailed)
	m.WebhookAttempted(metrics.WebhookRetrying)
	m.RequestAnswered("GET", "GET /api/external/v1/jobs/{id}", 200, 30*time.Millisecond)
	m.RequestAnswered("GET", "", 404, time.Millisecond)
	m.RequestAnswered("BREW", "", 405, time.Millisecond)
	m.WatchDisk("data", t.TempDir())
	m.WatchDisk("work", "/this/directory/does/not/exist")

	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		// Waiting chunks, and zero for every other kind and status.
		`renderfarm_tasks{kind="render",status="queued"} 12`,
		`renderfarm_tasks{kind="render",status="running"} 0`,
		`renderfarm_tasks{kind="validate",status="queued"} 0`,
		`renderfarm_workers_by_state{state="busy"} 4`,
		// A queue with nothing waiting is there, at zero.
		`renderfarm_queue_depth{queue="render"} 0`,
		`renderfarm_queue_depth{queue="webhooks"} 0`,
		`renderfarm_workers_by_state{state="dead"} 1`,
		`renderfarm_workers_by_state{state="idle"} 0`,
		`renderfarm_chunks_finished_total{result="done"} 2`,
		`renderfarm_chunks_finished_total{result="failed"} 1`,
		`renderfarm_webhook_attempts_total{result="retrying"} 1`,
		`renderfarm_webhook_attempts_total{result="failed"} 0`,
		// The route's pattern, never the path; the method apart.
		`renderfarm_http_request_duration_seconds_bucket{code="200",method="GET",route="/api/external/v1/jobs/{id}",le="0.05"} 1`,
		`renderfarm_http_request_duration_seconds_count{code="404",method="GET",route="unmatched"} 1`,
		`renderfarm_http_request_duration_seconds_count{code="405",method="other",route="unmatched"} 1`,
		`renderfarm_disk_free_bytes{dir="data"} `,
		`renderfarm_disk_size_bytes{dir="data"} `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `dir="work"`) {
		t.Errorf("/metrics reports a directory that does not exist:\n%s", body)
	}
}
