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
	// StrandedTasks counts the unfinished tasks found with no live River
	// job (the farm's invariant broken) and repaired, by the River job's
	// state.
	StrandedTasks *prometheus.CounterVec
	// Waiting is how many of this process's tasks wait for a part of the
	// farm that is out, by part (database, bucket, disk).
	Waiting *prometheus.GaugeVec
	// Waits counts the waits for a part of the farm that is out, by part.
	Waits *prometheus.CounterVec
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
		StrandedTasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "renderfarm_stranded_tasks_total",
			Help: "Unfinished tasks found with no live River job to carry them out, and repaired, by the River job's state (none: River no longer had it). Any is a fault worth reading the log about.",
		}, []string{"river_state"}),
		Waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "renderfarm_tasks_waiting",
			Help: "Tasks of this process waiting for a part of the farm that is out (database, bucket, disk), by part.",
		}, []string{"part"}),
		Waits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "renderfarm_outage_waits_total",
			Help: "Times a task began waiting for a part of the farm that is out (database, bucket, disk), by part.",
		}, []string{"part"}),
	}
	m.registry.MustRegister(m.FramesRendered, m.RenderSeconds, m.UploadBytes, m.StrandedTasks, m.Waiting, m.Waits,
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

// Stranded counts an unfinished task found with no live River job, whose
// River job was in riverState ("" when River no longer had it).
func (m *Metrics) Stranded(riverState string) {
	if m == nil {
		return
	}
	if riverState == "" {
		riverState = "none"
	}
	m.StrandedTasks.WithLabelValues(riverState).Inc()
}

// WaitBegan counts a task of this process beginning to wait for part;
// WaitEnded, when it waits no more.
func (m *Metrics) WaitBegan(part string) {
	if m == nil {
		return
	}
	m.Waits.WithLabelValues(part).Inc()
	m.Waiting.WithLabelValues(part).Inc()
}

// WaitEnded counts a task of this process that waits for part no more.
func (m *Metrics) WaitEnded(part string) {
	if m == nil {
		return
	}
	m.Waiting.WithLabelValues(part).Dec()
}

// Uploaded counts the bytes of a file a job was made from.
func (m *Metrics) Uploaded(bytes int64) {
	if m == nil {
		return
	}
	m.UploadBytes.Add(float64(bytes))
}
