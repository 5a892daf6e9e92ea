// Package housekeeping is the farm's work that belongs to no request and
// to no render node: handing out again the tasks of workers that died (the
// reaper), removing uploads no job was made from and files sent to upload
// URLs too late, removing the objects of deleted jobs, and delivering
// webhook events.
//
// Every process runs it. River's leader, whichever process that is,
// queues the periodic work (the reaper and the expiry of uploads) and any
// process takes it from the maintenance queue, so the farm keeps its
// house in order with a single API server, a single render node, or any
// mix of them. Webhook deliveries are the exception: they go out from the
// processes that are asked to deliver them (the API servers, which a
// firewall lets reach receivers), so render nodes need no way out.
package housekeeping

import (
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// Config sets the farm's housekeeping.
type Config struct {
	// WorkerTimeout is how long a worker may go without a heartbeat before
	// its work is handed to another, until a serve records the farm's
	// (store.FarmWorkerTimeout), which the reaper goes by instead.
	WorkerTimeout time.Duration
	// UploadRetention is how long an upload that no job was made from is
	// kept before its file and row are removed.
	UploadRetention time.Duration
	// UploadURLTTL is how long an upload URL stays valid: the sweep of
	// files sent to used uploads' URLs runs at a fraction of it.
	UploadURLTTL time.Duration

	// DeliverWebhooks makes this process deliver webhook events.
	DeliverWebhooks bool
	// WebhookFirstRetry is the wait before an event's second attempt; the
	// later waits grow from it.
	WebhookFirstRetry time.Duration
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses: for labs and tests, never for a farm on a shared network.
	WebhookAllowPrivate bool
	// Resolver resolves webhook hosts; nil is the system's.
	Resolver webhook.Resolver
	// Metrics counts the stranded tasks the reaper repairs; nil counts
	// nothing.
	Metrics *metrics.Metrics
}

// DefaultConfig is the housekeeping the command line's flags default to.
func DefaultConfig() Config {
	return Config{
		WorkerTimeout:     engine.DefaultWorkerTimeout,
		UploadRetention:   DefaultUploadRetention,
		UploadURLTTL:      engine.DefaultUploadURLTTL,
		DeliverWebhooks:   true,
		WebhookFirstRetry: webhook.DefaultFirstRetry,
	}
}

// Housekeeping is one process's share of the farm's housekeeping.
type Housekeeping struct {
	cfg Config
	// reapMu guards lastReap, when the periodic reap job last reaped.
	reapMu   sync.Mutex
	lastReap time.Time
	engine   *engine.Engine
	store    *store.Store
	objects  objstore.Store
	log      *slog.Logger
	sender   *webhook.Sender

	// deliveries keeps one workspace's webhooks from taking every
	// delivery slot (see MaxDeliveriesPerWorkspace).
	deliveries deliverySlots
}

// New registers the housekeeping's workers, queues and periodic jobs with
// the engine.
func New(eng *engine.Engine, cfg Config) *Housekeeping {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	h := &Housekeeping{
		cfg: cfg, engine: eng, store: eng.Store(), objects: eng.Objects(), log: eng.Logger(),
		sender: webhook.NewSenderWithResolver(cfg.WebhookAllowPrivate, cfg.Resolver),
	}
	queues := map[string]int{engine.QueueMaintenance: 1, engine.QueueCleanup: 2}
	if cfg.DeliverWebhooks {
		queues[engine.QueueWebhooks] = webhookDeliverySlots
	}
	eng.Register(queues, func(w *river.Workers) {
		river.AddWorker(w, &reapWorker{h: h})
		river.AddWorker(w, &expireUploadsWorker{h: h})
		river.AddWorker(w, &countJobLogsWorker{h: h})
		river.AddWorker(w, &deleteObjectsWorker{h: h})
		river.AddWorker(w, &removeHistoryWorker{h: h})
		if cfg.DeliverWebhooks {
			river.AddWorker(w, &deliverWorker{h: h})
		}
	})
	eng.AddPeriodicJob(min(reapInterval(cfg.WorkerTimeout), maxReapPeriod), engine.ReapArgs{})
	eng.AddPeriodicJob(expireEvery(cfg.UploadRetention, cfg.UploadURLTTL), engine.ExpireUploadsArgs{})
	eng.AddPeriodicJob(countJobLogsEvery, engine.CountJobLogsArgs{})
	eng.AddPeriodicJob(removeHistoryEvery, engine.RemoveHistoryArgs{})
	return h
}
