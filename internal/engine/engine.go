// Package engine carries out the farm's use cases: it takes API requests
// (upload, create, validate, render, cancel, progress, downloads), records
// each status change together with the River work it implies in one
// transaction, and runs that work: validating files, rendering chunks of
// frames with Blender, finalizing outputs, and handing out again the work
// of workers that died.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/sandbox"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// Config wires the engine to its parts and sets its limits.
type Config struct {
	Store   *store.Store
	Objects objstore.Store
	Blender *blender.Runner
	// Sessions, if set, keeps Blender running between the chunks of a job
	// (and from a job's validation to its first chunk) on this worker;
	// nil starts Blender for every inspection and chunk.
	Sessions *blender.Sessions
	Logger   *slog.Logger

	// RenderWorkers is how many chunks this process renders at once; 0 runs
	// the API and maintenance only.
	RenderWorkers int
	// WorkerName names this process's worker in progress reports.
	WorkerName string
	// WorkDir holds extracted projects and frames being rendered.
	WorkDir string
	// FFmpeg is the ffmpeg binary that makes preview videos.
	FFmpeg string
	// Sandbox confines ffmpeg as the Blender runner's sandbox confines
	// Blender: ffmpeg decodes frames a hostile scene may have shaped. nil
	// runs it unconfined (tests of the engine's own logic).
	Sandbox *sandbox.Sandbox

	UploadURLTTL time.Duration
	// MaxUploadBytes refuses jobs made from larger files. The local store
	// refuses them while they stream in; a bucket's presigned PUT cannot,
	// so the size is checked again when the job is created.
	MaxUploadBytes int64
	DownloadURLTTL time.Duration
	ZipLimits      blendfile.ZipLimits

	// WorkerTimeout is how long a worker may go without a heartbeat before
	// its work is handed to another.
	WorkerTimeout time.Duration
	// HeartbeatInterval is how often a worker records that it is alive.
	HeartbeatInterval time.Duration
	// Metrics receives the counters the engine moves; nil keeps none.
	Metrics *metrics.Metrics

	// PostgresDSN is the database URL when Store is on PostgreSQL: River
	// listens for new work on a connection of its own (LISTEN/NOTIFY), so
	// a worker starts a job the moment it is queued.
	PostgresDSN string

	// RenderAttempts is how many times a chunk is tried before its job fails.
	RenderAttempts int

	// WebhookAttempts is how many times an event is tried (see
	// webhook.RetryDelay for their spacing).
	WebhookAttempts int
	// WebhookFirstRetry is the wait before an event's second attempt; the
	// later waits grow from it.
	WebhookFirstRetry time.Duration
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses: for labs and tests, never for a farm on a shared network.
	WebhookAllowPrivate bool
	// Resolver resolves webhook hosts; nil is the system's.
	Resolver webhook.Resolver
	// CacheBytes caps the inputs a worker keeps from the bucket (0: 20 GiB;
	// negative: keep none).
	CacheBytes int64
	// NoWebhookDelivery leaves webhook deliveries to other processes (the
	// API servers), so render nodes need no way out to receivers.
	NoWebhookDelivery bool

	// UploadRetention is how long an upload that no job was made from is
	// kept before its file and row are removed (0: DefaultUploadRetention).
	UploadRetention time.Duration
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.WorkerName == "" {
		host, _ := os.Hostname()
		c.WorkerName = host
	}
	if c.FFmpeg == "" {
		c.FFmpeg = "ffmpeg"
	}
	if c.UploadURLTTL <= 0 {
		c.UploadURLTTL = 15 * time.Minute
	}
	if c.DownloadURLTTL <= 0 {
		c.DownloadURLTTL = time.Hour
	}
	if c.ZipLimits == (blendfile.ZipLimits{}) {
		c.ZipLimits = blendfile.DefaultZipLimits()
	}
	if c.WorkerTimeout <= 0 {
		c.WorkerTimeout = 60 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = min(5*time.Second, c.WorkerTimeout/4)
	}
	if c.RenderAttempts <= 0 {
		c.RenderAttempts = 3
	}
	if c.WebhookAttempts <= 0 {
		c.WebhookAttempts = webhook.DefaultAttempts
	}
	if c.Resolver == nil {
		c.Resolver = net.DefaultResolver
	}
	if c.UploadRetention <= 0 {
		c.UploadRetention = DefaultUploadRetention
	}
}

// Engine is the farm's job engine.
type Engine struct {
	cfg      Config
	store    *store.Store
	objects  objstore.Store
	log      *slog.Logger
	river    *river.Client[*sql.Tx]
	sender   *webhook.Sender
	workerID string

	// inputs serialises preparing one job's input on this machine.
	inputs sync.Map // job id -> *sync.Mutex

	cache *inputCache

	// deliveries keeps one workspace's webhooks from taking every
	// delivery slot (see MaxDeliveriesPerWorkspace).
	deliveries deliverySlots

	busy      sync.Mutex
	busyTasks map[string]bool

	stopHeartbeat context.CancelFunc
	heartbeatDone chan struct{}
	closeDriver   func()
}

// New migrates River's tables and builds the engine. Call Start to run work.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.setDefaults()
	if cfg.Store == nil || cfg.Objects == nil {
		return nil, errors.New("engine: a store and an object store are required")
	}
	if cfg.RenderWorkers > 0 && cfg.Blender == nil {
		return nil, errors.New("engine: render workers need a Blender runner")
	}
	if cfg.WorkDir != "" {
		if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
			return nil, fmt.Errorf("engine: work directory: %w", err)
		}
	}
	e := &Engine{
		cfg:       cfg,
		store:     cfg.Store,
		objects:   cfg.Objects,
		log:       cfg.Logger,
		workerID:  uuid.NewString(),
		sender:    webhook.NewSenderWithResolver(cfg.WebhookAllowPrivate, cfg.Resolver),
		cache:     newInputCache(filepath.Join(cfg.WorkDir, "cache"), cfg.CacheBytes),
		busyTasks: map[string]bool{},
	}

	driver, closeDriver, err := riverDriver(ctx, cfg)
	if err != nil {
		return nil, err
	}
	e.closeDriver = closeDriver
	if err := migrateRiver(ctx, cfg.Store, driver); err != nil {
		closeDriver()
		return nil, err
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &validateWorker{e: e})
	river.AddWorker(workers, &renderWorker{e: e})
	river.AddWorker(workers, &finalizeWorker{e: e})
	river.AddWorker(workers, &reapWorker{e: e})
	river.AddWorker(workers, &deliverWorker{e: e})
	river.AddWorker(workers, &deleteObjectsWorker{e: e})
	river.AddWorker(workers, &expireUploadsWorker{e: e})

	queues := map[string]river.QueueConfig{queueMaintenance: {MaxWorkers: 1}, queueCleanup: {MaxWorkers: 2}}
	if cfg.RenderWorkers > 0 {
		// Validation and finalizing run Blender and ffmpeg, so they belong
		// to the processes that render.
		queues[queueRender] = river.QueueConfig{MaxWorkers: cfg.RenderWorkers}
		queues[queueControl] = river.QueueConfig{MaxWorkers: 2}
	}
	if !cfg.NoWebhookDelivery {
		queues[queueWebhooks] = river.QueueConfig{MaxWorkers: webhookDeliverySlots}
	}

	reapEvery := reapInterval(cfg.WorkerTimeout)
	client, err := river.NewClient(driver, &river.Config{
		// River reports its routine at Info every few seconds; only its
		// warnings are worth an operator's attention.
		Logger:  slog.New(minLevel{Handler: cfg.Logger.Handler(), min: slog.LevelWarn}).With("component", "river"),
		Queues:  queues,
		Workers: workers,
		// Renders legitimately run for hours: no timeout cancels them. Dead
		// workers are found by their heartbeats instead (see reap.go).
		JobTimeout: -1,
		// River rescues a job that stayed running this long; our tasks'
		// generations make a rescued duplicate harmless.
		RescueStuckJobsAfter: 10 * time.Minute,
		// New work is noticed without polling the queues: River's
		// notifications (LISTEN/NOTIFY on PostgreSQL; on SQLite, a table
		// River's driver reads every 50 ms) wake the queue an insert is
		// for, and a job ending wakes its own queue, after FetchCooldown.
		// Polling each queue every 50 ms on top cost an idle serve 0.07
		// cores, taken from Blender on a small machine; River's default of a
		// second only backs the notifications up.
		FetchCooldown: 5 * time.Millisecond,
		PeriodicJobs: []*river.PeriodicJob{
			river.NewPeriodicJob(river.PeriodicInterval(reapEvery), func() (river.JobArgs, *river.InsertOpts) {
				return reapArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
			river.NewPeriodicJob(river.PeriodicInterval(expireEvery(cfg.UploadRetention, cfg.UploadURLTTL)), func() (river.JobArgs, *river.InsertOpts) {
				return expireUploadsArgs{}, nil
			}, &river.PeriodicJobOpts{RunOnStart: true}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("engine: River client: %w", err)
	}
	e.river = client
	return e, nil
}

// Start registers this process's worker and starts taking work.
func (e *Engine) Start(ctx context.Context) error {
	if e.cfg.RenderWorkers > 0 {
		now := time.Now()
		err := e.store.RegisterWorker(ctx, store.Worker{ID: e.workerID, Name: e.cfg.WorkerName, StartedAt: now, HeartbeatAt: now, State: store.WorkerIdle})
		if err != nil {
			return err
		}
		hbCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		e.stopHeartbeat = cancel
		e.heartbeatDone = make(chan struct{})
		go e.heartbeatLoop(hbCtx)
	}
	if err := e.river.Start(ctx); err != nil {
		return fmt.Errorf("engine: start River: %w", err)
	}
	return nil
}

// Stop stops taking work, waits up to ctx for running work to end, then
// cancels what still runs (its tasks are handed out again later).
func (e *Engine) Stop(ctx context.Context) error {
	err := e.river.Stop(ctx)
	if err != nil {
		err = e.river.StopAndCancel(context.Background())
	}
	if e.cfg.Sessions != nil {
		e.cfg.Sessions.Close()
	}
	if e.stopHeartbeat != nil {
		e.stopHeartbeat()
		<-e.heartbeatDone
		_ = e.store.Heartbeat(context.Background(), e.workerID, store.WorkerStopped, "")
	}
	e.closeDriver()
	return err
}

func (e *Engine) heartbeatLoop(ctx context.Context) {
	defer close(e.heartbeatDone)
	t := time.NewTicker(e.cfg.HeartbeatInterval)
	defer t.Stop()
	lastSweep := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(lastSweep) >= workSweepInterval {
			e.sweepWorkDirs(ctx)
			lastSweep = time.Now()
		}
		state, current := store.WorkerIdle, ""
		e.busy.Lock()
		for id := range e.busyTasks {
			state, current = store.WorkerBusy, id
			break
		}
		e.busy.Unlock()
		if err := e.store.Heartbeat(ctx, e.workerID, state, current); err != nil && ctx.Err() == nil {
			e.log.Warn("heartbeat failed", "err", err)
		}
	}
}

func (e *Engine) markBusy(taskID string, busy bool) {
	e.busy.Lock()
	defer e.busy.Unlock()
	if busy {
		e.busyTasks[taskID] = true
	} else {
		delete(e.busyTasks, taskID)
	}
}

// jobDir is where this machine keeps a job's extracted input and the frames
// being rendered.
func (e *Engine) jobDir(jobID string) string {
	return filepath.Join(e.cfg.WorkDir, jobID)
}

// outputRoot holds the directories the job's chunks render into on this
// machine, one per chunk: a Blender session of the job may write there.
func (e *Engine) outputRoot(jobID string) string {
	return filepath.Join(e.jobDir(jobID), "out")
}

// minLevel drops records below min, to quiet a chatty library's logger.
type minLevel struct {
	slog.Handler
	min slog.Level
}

func (h minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevel) WithAttrs(attrs []slog.Attr) slog.Handler {
	return minLevel{Handler: h.Handler.WithAttrs(attrs), min: h.min}
}

func (h minLevel) WithGroup(name string) slog.Handler {
	return minLevel{Handler: h.Handler.WithGroup(name), min: h.min}
}

// River returns the River client, for River's own UI.
func (e *Engine) River() *river.Client[*sql.Tx] { return e.river }

// Migrate brings the farm's River tables up to date without starting
// anything, for `renderfarm migrate`.
func Migrate(ctx context.Context, st *store.Store, postgresDSN string) error {
	driver, closeDriver, err := riverDriver(ctx, Config{Store: st, PostgresDSN: postgresDSN})
	if err != nil {
		return err
	}
	defer closeDriver()
	return migrateRiver(ctx, st, driver)
}
