// Package metrics exposes the farm's numbers in Prometheus' format: what
// operators graph and alert on (jobs by status, frames rendered, render
// seconds, queue depth, live workers, bytes uploaded).
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/renderfarm/renderfarm/internal/store"
)

// Metrics holds the counters the engine moves and the gauges read from the
// database at each scrape.
type Metrics struct {
	registry *prometheus.Registry

	// FramesRendered counts frames stored, by worker.
	FramesRendered *prometheus.CounterVec
	// RenderSeconds adds up Blender's render time of stored frames.
	RenderSeconds prometheus.Counter
	// UploadBytes adds up the sizes of the files jobs were made from.
	UploadBytes prometheus.Counter
}

// Stats reads the numbers that live in the database, at each scrape, so
// every replica reports the same truth.
type Stats func(ctx context.Context) (store.FarmStats, error)

// New makes the metrics.
func New(stats Stats, log *slog.Logger) *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		FramesRendered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "renderfarm_frames_rendered_total", Help: "Frames rendered and stored, by worker.",
		}, []string{"worker"}),
		RenderSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "renderfarm_render_seconds_total", Help: "Seconds Blender spent rendering stored frames.",
		}),
		UploadBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "renderfarm_upload_bytes_total", Help: "Bytes of the uploaded files jobs were made from.",
		}),
	}
	m.registry.MustRegister(m.FramesRendered, m.RenderSeconds, m.UploadBytes,
		&dbCollector{stats: stats, log: log},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics at /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

var (
	jobsDesc    = prometheus.NewDesc("renderfarm_jobs", "Jobs by status.", []string{"status"}, nil)
	queueDesc   = prometheus.NewDesc("renderfarm_queue_depth", "River jobs waiting to run, by queue.", []string{"queue"}, nil)
	workersDesc = prometheus.NewDesc("renderfarm_workers", "Render workers whose heartbeat is recent.", nil, nil)
)

// dbCollector reports the database's numbers when Prometheus scrapes.
type dbCollector struct {
	stats Stats
	log   *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDesc
	ch <- workersDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.stats(ctx)
	if err != nil {
		c.log.Warn("metrics: read the database", "err", err)
		return
	}
	for status, n := range st.JobsByStatus {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), status)
	}
	for queue, n := range st.QueueDepth {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), queue)
	}
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(st.LiveWorkers))
}

// FrameStored counts a frame a worker stored and the seconds it took.
func (m *Metrics) FrameStored(worker string, seconds float64) {
	if m == nil {
		return
	}
	m.FramesRendered.WithLabelValues(worker).Inc()
	m.RenderSeconds.Add(seconds)
}

// Uploaded counts the bytes of a file a job was made from.
func (m *Metrics) Uploaded(bytes int64) {
	if m == nil {
		return
	}
	m.UploadBytes.Add(float64(bytes))
}
