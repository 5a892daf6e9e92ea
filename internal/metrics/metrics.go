// Package metrics exposes the farm's numbers in Prometheus' format: what
// operators graph and alert on (jobs by status, tasks waiting for a worker,
// workers by state, frames and chunks rendered, render seconds, webhook
// deliveries, API latency, free disk, bytes uploaded). deploy/ holds the
// dashboard and the alerts built on them.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/outage"
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
	// ChunksFinished counts the chunks this process ended, by result:
	// done, or failed (its last attempt failed, and with it the job).
	ChunksFinished *prometheus.CounterVec
	// WebhookAttempts counts the webhook deliveries tried, by result:
	// delivered, retrying (failed, another attempt follows), failed (the
	// last attempt failed) or skipped (the receiver's address is refused).
	WebhookAttempts *prometheus.CounterVec
	// RequestSeconds is how long the API took to answer, by method, route
	// pattern and status code.
	RequestSeconds *prometheus.HistogramVec

	disks *diskCollector
}

// Chunk results, the values of ChunksFinished's label.
const (
	ChunkDone   = "done"
	ChunkFailed = "failed"
)

// Webhook attempt results, the values of WebhookAttempts' label.
const (
	WebhookDelivered = "delivered"
	WebhookRetrying  = "retrying"
	WebhookFailed    = "failed"
	WebhookSkipped   = "skipped"
)

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
		ChunksFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "renderfarm_chunks_finished_total",
			Help: "Chunks this process finished, by result: done, or failed (the last attempt failed, and the job with it).",
		}, []string{"result"}),
		WebhookAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "renderfarm_webhook_attempts_total",
			Help: "Webhook deliveries tried by this process, by result: delivered, retrying (failed, tried again later), failed (the last attempt failed), skipped (the address is refused).",
		}, []string{"result"}),
		RequestSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "renderfarm_http_request_duration_seconds",
			Help:    "Time this process took to answer HTTP requests, by method, route pattern and status code.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "code"}),
		disks: &diskCollector{},
	}
	// Every result starts at zero, so that rates and alerts see the series
	// before the first event.
	for _, result := range []string{ChunkDone, ChunkFailed} {
		m.ChunksFinished.WithLabelValues(result)
	}
	for _, result := range []string{WebhookDelivered, WebhookRetrying, WebhookFailed, WebhookSkipped} {
		m.WebhookAttempts.WithLabelValues(result)
	}
	for _, part := range []outage.Part{outage.Database, outage.Bucket, outage.Disk} {
		m.Waiting.WithLabelValues(part.String())
		m.Waits.WithLabelValues(part.String())
	}
	// River's states of a job that has ended, and "none" (River has no
	// such job): what Stranded is told.
	for _, state := range []string{"none", "completed", "discarded", "cancelled"} {
		m.StrandedTasks.WithLabelValues(state)
	}
	m.registry.MustRegister(m.FramesRendered, m.RenderSeconds, m.UploadBytes, m.StrandedTasks, m.Waiting, m.Waits,
		m.ChunksFinished, m.WebhookAttempts, m.RequestSeconds,
		&dbCollector{stats: stats, log: log}, m.disks,
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
	tasksDesc   = prometheus.NewDesc("renderfarm_tasks",
		"Unfinished tasks by kind (validate, render, finalize) and status: waiting (a chunk no worker has been given yet), queued (given to a worker, or a validation or finalizing waiting for one) or running. Chunks waiting for a free slot: kind=\"render\", status=\"waiting\".",
		[]string{"kind", "status"}, nil)
	workerStatesDesc = prometheus.NewDesc("renderfarm_workers_by_state",
		"Worker runs by state: idle and busy (heard from within the worker timeout), dead (silent for longer, neither stopped nor gone, within the last hour).",
		[]string{"state"}, nil)
)

// The label values renderfarm_tasks and renderfarm_workers_by_state always
// report, at zero when nothing is counted: an autoscaler's query or an
// alert finds 0 rather than no series.
var (
	taskKinds    = []store.TaskKind{store.TaskValidate, store.TaskRender, store.TaskMerge, store.TaskFinalize}
	taskStatuses = []store.TaskStatus{store.TaskWaiting, store.TaskQueued, store.TaskRunning}
	workerStates = []string{store.WorkerIdle, store.WorkerBusy, store.WorkerDead}
	// The River queues every farm has ("render" stands for every worker
	// run's own queue; a Blender version's own validation queues, such as
	// control_4_3_2, appear while they hold work).
	sharedQueues = []string{engine.QueueRender, engine.QueueControl, engine.QueueMaintenance, engine.QueueCleanup, engine.QueueWebhooks}
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
	ch <- tasksDesc
	ch <- workerStatesDesc
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
	depth := map[string]int{}
	for _, queue := range sharedQueues {
		depth[queue] = 0
	}
	for queue, n := range st.QueueDepth {
		// Each worker run has a render queue of its own (engine.RenderQueue):
		// one series per run would grow with every worker restart, so they
		// are reported together, as "render".
		if strings.HasPrefix(queue, engine.QueueRender+"_") {
			queue = engine.QueueRender
		}
		depth[queue] += n
	}
	for queue, n := range depth {
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(n), queue)
	}
	ch <- prometheus.MustNewConstMetric(workersDesc, prometheus.GaugeValue, float64(st.LiveWorkers))
	for _, kind := range taskKinds {
		for _, status := range taskStatuses {
			n := st.UnfinishedTasks[store.TaskCount{Kind: kind, Status: status}]
			ch <- prometheus.MustNewConstMetric(tasksDesc, prometheus.GaugeValue, float64(n), string(kind), string(status))
		}
	}
	for _, state := range workerStates {
		ch <- prometheus.MustNewConstMetric(workerStatesDesc, prometheus.GaugeValue, float64(st.WorkersByState[state]), state)
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

// ChunkFinished counts a chunk this process ended, with result ChunkDone
// or ChunkFailed.
func (m *Metrics) ChunkFinished(result string) {
	if m == nil {
		return
	}
	m.ChunksFinished.WithLabelValues(result).Inc()
}

// WebhookAttempted counts a webhook delivery tried, with one of the
// Webhook* results.
func (m *Metrics) WebhookAttempted(result string) {
	if m == nil {
		return
	}
	m.WebhookAttempts.WithLabelValues(result).Inc()
}

// RequestAnswered records how long a request took to answer. pattern is
// the route that answered it as the API's router names it ("GET
// /api/external/v1/jobs/{id}"), never the path itself, so that a client
// cannot make a series per path; "" (no route) is reported as "unmatched".
func (m *Metrics) RequestAnswered(method, pattern string, status int, elapsed time.Duration) {
	if m == nil {
		return
	}
	route := pattern
	if _, path, ok := strings.Cut(pattern, " "); ok {
		route = path // the method has a label of its own
	}
	if route == "" {
		route = "unmatched"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions:
	default:
		method = "other"
	}
	m.RequestSeconds.WithLabelValues(method, route, strconv.Itoa(status)).Observe(elapsed.Seconds())
}

// WatchDisk reports the free and total bytes of the file system that
// holds dir, under the label dir=name, at each scrape: "data" for
// --data-dir, "work" for a render node's work directory. A directory that
// cannot be read (not made yet) is left out of that scrape.
func (m *Metrics) WatchDisk(name, dir string) {
	if m == nil {
		return
	}
	m.disks.mu.Lock()
	defer m.disks.mu.Unlock()
	m.disks.dirs = append(m.disks.dirs, watchedDir{name: name, path: dir})
}

var (
	diskFreeDesc = prometheus.NewDesc("renderfarm_disk_free_bytes",
		"Bytes free for the farm's user on the file system of a directory the farm writes (dir: data for --data-dir, work for the work directory).",
		[]string{"dir"}, nil)
	diskSizeDesc = prometheus.NewDesc("renderfarm_disk_size_bytes",
		"Total bytes of the file system of a directory the farm writes (dir: data for --data-dir, work for the work directory).",
		[]string{"dir"}, nil)
)

type watchedDir struct{ name, path string }

// diskCollector reports the free space of the watched directories'
// file systems when Prometheus scrapes.
type diskCollector struct {
	mu   sync.Mutex
	dirs []watchedDir
}

func (c *diskCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- diskFreeDesc
	ch <- diskSizeDesc
}

func (c *diskCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	dirs := append([]watchedDir(nil), c.dirs...)
	c.mu.Unlock()
	for _, d := range dirs {
		free, size, ok := diskSpace(d.path)
		if !ok {
			continue
		}
		ch <- prometheus.MustNewConstMetric(diskFreeDesc, prometheus.GaugeValue, float64(free), d.name)
		ch <- prometheus.MustNewConstMetric(diskSizeDesc, prometheus.GaugeValue, float64(size), d.name)
	}
}
