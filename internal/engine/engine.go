// Package engine is the farm's core: the database, the object store and
// the one River client of a process, and the few operations every other
// part builds on. A job changes status only through MoveJob, which writes
// the webhook events the change causes in the same transaction; work is
// queued only through Enqueue, EnqueueChunks and Requeue, which record a
// task and insert the River job that carries it out together, with the
// arguments and attempts argsFor gives each kind of task.
//
// The parts that do the work register with the engine before it starts:
// package service (the API's use cases) inserts work, package node (a
// render node) registers the validate, render and finalize workers and
// their queues, and package housekeeping the cluster's periodic and
// cleanup work. A process builds only the parts it runs, so `renderfarm
// worker` has no API and `serve --workers 0` renders nothing; River's
// client is the same for all of them.
package engine

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// Settings that several parts of the farm read; their defaults live here,
// so that the service, the node and the housekeeping cannot disagree.
const (
	// DefaultWorkerTimeout is how long a worker may go without a heartbeat
	// before its work is handed to another (the housekeeping's reaper), and
	// before it no longer counts among the workers a render is spread over
	// (the service); a node beats several times within it.
	DefaultWorkerTimeout = 60 * time.Second
	// DefaultUploadURLTTL is how long an upload URL stays valid (the
	// service) and so how soon a file sent to it too late is swept away
	// (the housekeeping).
	DefaultUploadURLTTL = 15 * time.Minute
)

// Config wires the engine to the farm's state and sets what every kind of
// work shares.
type Config struct {
	Store   *store.Store
	Objects objstore.Store
	Logger  *slog.Logger
	// PostgresDSN is the database URL when Store is on PostgreSQL: River
	// listens for new work on a connection of its own (LISTEN/NOTIFY), so
	// a worker starts a job the moment it is queued.
	PostgresDSN string
	// RenderAttempts is how many times a chunk is tried before its job
	// fails.
	RenderAttempts int
	// WebhookAttempts is how many times a webhook event is tried (see
	// webhook.RetryDelay for their spacing).
	WebhookAttempts int
	// WorkerTimeout is how long a worker may go without a heartbeat
	// before the dispatcher gives it no more chunks.
	WorkerTimeout time.Duration
}

// DefaultConfig is the engine's configuration before the farm's parts are
// given: the defaults the command line's flags show.
func DefaultConfig() Config {
	return Config{RenderAttempts: 3, WebhookAttempts: webhook.DefaultAttempts, WorkerTimeout: DefaultWorkerTimeout}
}

// Engine is the core one process shares between its parts.
type Engine struct {
	cfg     Config
	store   *store.Store
	objects objstore.Store
	log     *slog.Logger

	driver      riverdriver.Driver[*sql.Tx]
	closeDriver func()

	// What the parts registered, until the River client is made of it.
	mu       sync.Mutex
	workers  *river.Workers
	queues   map[string]river.QueueConfig
	periodic []*river.PeriodicJob
	client   *river.Client[*sql.Tx]

	// mayTake is the dispatcher's rule for one job and one worker (see
	// SetWorkerMayTake).
	mayTake WorkerMayTake

	// working counts the River jobs this process works at the moment
	// (countWork, around every worker), and cutShort records whether
	// Stop canceled any: see StopCutWorkShort.
	working  atomic.Int64
	cutShort atomic.Bool
}

// New migrates River's tables and makes the engine. The parts register
// their workers and queues next; the River client is made, of what they
// registered, the first time it is needed (to queue work, or by Start).
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Objects == nil {
		return nil, errors.New("engine: a store and an object store are required")
	}
	if cfg.RenderAttempts < 1 || cfg.WebhookAttempts < 1 || cfg.WorkerTimeout <= 0 {
		return nil, fmt.Errorf("engine: RenderAttempts (%d) and WebhookAttempts (%d) must be 1 or more, WorkerTimeout (%v) positive; start from DefaultConfig",
			cfg.RenderAttempts, cfg.WebhookAttempts, cfg.WorkerTimeout)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	driver, closeDriver, err := riverDriver(ctx, cfg.Store, cfg.PostgresDSN)
	if err != nil {
		return nil, err
	}
	if err := migrateRiver(ctx, cfg.Store, driver); err != nil {
		closeDriver()
		return nil, err
	}
	return &Engine{
		cfg: cfg, store: cfg.Store, objects: cfg.Objects, log: cfg.Logger,
		driver: driver, closeDriver: closeDriver,
		workers: river.NewWorkers(), queues: map[string]river.QueueConfig{},
		mayTake: farmRuleMayTake,
	}, nil
}

// Store is the farm's database.
func (e *Engine) Store() *store.Store { return e.store }

// Objects is the farm's object store.
func (e *Engine) Objects() objstore.Store { return e.objects }

// RenderAttempts is how many times a chunk is tried before its job fails.
func (e *Engine) RenderAttempts() int { return e.cfg.RenderAttempts }

// MergeAttempts is how many times a split frame's merge is tried before
// its job fails.
func (e *Engine) MergeAttempts() int { return mergeAttempts }

// Logger is where the engine and its parts log.
func (e *Engine) Logger() *slog.Logger { return e.log }

// Register adds a part's River workers (with river.AddWorker on the
// bundle it is given) and the queues this process works, each with how
// many of its jobs run at once. Parts register before anything is queued.
func (e *Engine) Register(queues map[string]int, addWorkers func(*river.Workers)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		panic("engine: a part registered after the River client was made; register every part first")
	}
	for name, slots := range queues {
		e.queues[name] = river.QueueConfig{MaxWorkers: slots}
	}
	addWorkers(e.workers)
}

// AddPeriodicJob adds work that River's leader queues at intervals, once
// for the whole farm.
func (e *Engine) AddPeriodicJob(every time.Duration, args river.JobArgs) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		panic("engine: a periodic job was added after the River client was made")
	}
	opts := e.insertOpts(args)
	e.periodic = append(e.periodic, river.NewPeriodicJob(river.PeriodicInterval(every),
		func() (river.JobArgs, *river.InsertOpts) { return args, opts },
		&river.PeriodicJobOpts{RunOnStart: true}))
}

// River is the process's River client, made of what the parts registered
// the first time it is asked for.
func (e *Engine) River() *river.Client[*sql.Tx] {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.client != nil {
		return e.client
	}
	client, err := river.NewClient(e.driver, &river.Config{
		// River reports its routine at Info every few seconds; only its
		// warnings are worth an operator's attention.
		Logger:  slog.New(minLevel{Handler: e.log.Handler(), min: slog.LevelWarn}).With("component", "river"),
		Queues:  e.queues,
		Workers: e.workers,
		// A process queues work that others carry out: an API server
		// (serve --workers 0) queues validations and chunks for the render
		// nodes, a render node queues webhook deliveries for the API
		// servers. Each process works only the queues of the kinds it
		// registered (see the parts' Register), so no process takes a job
		// it cannot run.
		SkipUnknownJobCheck: true,
		// Renders legitimately run for hours: no timeout cancels them. Dead
		// workers are found by their heartbeats instead (see package
		// housekeeping's reaper).
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
		PeriodicJobs:  e.periodic,
		Middleware:    []rivertype.Middleware{river.WorkerMiddlewareFunc(e.countWork)},
	})
	if err != nil {
		// Only a configuration River refuses gets here, which is this
		// package's to get right, not the caller's.
		panic(fmt.Sprintf("engine: River client: %v", err))
	}
	e.client = client
	return client
}

// Start starts working the registered queues.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.River().Start(ctx); err != nil {
		return fmt.Errorf("engine: start River: %w", err)
	}
	return nil
}

// Stop stops taking work, waits up to ctx for running work to end, then
// cancels what still runs (its tasks are handed out again later).
func (e *Engine) Stop(ctx context.Context) error {
	client := e.River()
	err := client.Stop(ctx)
	if err != nil {
		// River's own stop takes a moment even with nothing running, so
		// that a ctx that ended at once (--shutdown-timeout 0) ends it
		// early whether or not work ran: what was running is counted.
		e.cutShort.Store(e.working.Load() > 0)
		err = client.StopAndCancel(context.Background())
	}
	return err
}

// StopCutWorkShort reports whether Stop canceled River work that was
// still running when its ctx ended, rather than letting it finish.
func (e *Engine) StopCutWorkShort() bool { return e.cutShort.Load() }

// countWork is River middleware around every job this process works:
// it counts the jobs being worked, for StopCutWorkShort.
func (e *Engine) countWork(ctx context.Context, _ *rivertype.JobRow, work func(ctx context.Context) error) error {
	e.working.Add(1)
	defer e.working.Add(-1)
	return work(ctx)
}

// Close releases River's own database connection; the store stays open.
func (e *Engine) Close() { e.closeDriver() }

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
