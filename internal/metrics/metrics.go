// Package metrics exposes the farm's numbers in Prometheus' format: what
// operators graph and alert on (jobs by status, frames rendered, render
// seconds, queue depth, live workers, bytes uploaded).
package metrics

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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

// New makes the metrics. db is the farm's database, queried at each scrape
// for the numbers that live there; workerTimeout says which workers count
// as live.
func New(db *sql.DB, rebind func(string) string, workerTimeout time.Duration, log *slog.Logger) *Metrics {
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
		&dbCollector{db: db, rebind: rebind, workerTimeout: workerTimeout, log: log},
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

// dbCollector reads the numbers that live in the database when Prometheus
// scrapes, so every replica reports the same truth.
type dbCollector struct {
	db            *sql.DB
	rebind        func(string) string
	workerTimeout time.Duration
	log           *slog.Logger
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- queueDesc
	ch <- workersDesc
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.countBy(ctx, ch, jobsDesc, `SELECT status, COUNT(*) FROM jobs GROUP BY status`)
	c.countBy(ctx, ch, queueDesc, `SELECT queue, COUNT(*) FROM river_job WHERE state IN ('available', 'retryable', 'scheduled') GROUP BY queue`)
	var live int
	err := c.db.QueryRowContext(ctx, c.rebind(`SELECT COUNT(*) FROM workers WHERE heartbeat_at >= ? AND state NOT IN ('gone', 'stopped')`),
		time.Now().Add(-c.workerTimeout).UTC()).Scan(&live)
	if err != nil {
		c.log.Warn("metrics: count workers", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(live))
}

func (c *dbCollector) countBy(ctx context.Context, ch chan<- prometheus.Metric, desc *prometheus.Desc, query string) {
	rows, err := c.db.QueryContext(ctx, query)
	if err != nil {
		c.log.Warn("metrics: query", "err", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var label string
		var n int
		if err := rows.Scan(&label, &n); err != nil {
			c.log.Warn("metrics: scan", "err", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), label)
	}
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
