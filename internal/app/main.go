// Package app is a renderfarm process put together: Main opens the
// database and the object store, makes the engine and the parts the
// process runs on it (the API's service, a render node, the housekeeping),
// and serves the API. `renderfarm serve` and `renderfarm worker` are their
// flags and a Main; tests and benchmarks run Mains in their own process.
//
// Config is every setting of a process, with DefaultConfig's defaults,
// which come from the libraries; RegisterFlags makes the flags of them.
package app

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/node"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/outage"
	"github.com/renderfarm/renderfarm/internal/service"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/web"
)

// Main is one running renderfarm process: serve or worker.
type Main struct {
	// Config is what the process runs; set it before Run.
	Config Config

	logOutput io.Writer
	log       *slog.Logger

	store        *store.Store
	objects      objstore.Store
	closeObjects func()
	metrics      *metrics.Metrics
	stopMetrics  func()
	// stopWatch ends the housekeeping's watch for dead workers.
	stopWatch func()
	engine    *engine.Engine
	service   *service.Service
	node      *node.Node
	started   bool // the engine (and node) started
	// stopping is set once a stop began: the process is no longer ready.
	stopping atomic.Bool
	// forced is set when a stop cut running work short and handed it back
	// (the shutdown timeout passed, or a second signal came).
	forced atomic.Bool

	listener net.Listener
	server   *http.Server
	serveErr chan error
	url      string
}

// NewMain makes a process of cfg that logs to logOutput (the process's
// stderr).
func NewMain(cfg Config, logOutput io.Writer) *Main {
	return &Main{Config: cfg, logOutput: logOutput}
}

// Run starts the process and returns once it serves (serve) or takes work
// (worker). Close stops it, also after Run failed.
func (m *Main) Run(ctx context.Context) error {
	c := m.Config
	if err := c.Validate(); err != nil {
		return err
	}
	log, err := newLogger(c.LogFormat, m.logOutput)
	if err != nil {
		return err
	}
	m.log = log

	// A process that renders nothing (serve --workers 0) runs neither
	// Blender nor ffmpeg, and needs no sandbox.
	var tools *nodeTools
	if c.renders() {
		if tools, err = c.nodeTools(ctx, log); err != nil {
			if c.Role == Serve && !errors.Is(err, ErrUsage) {
				return fmt.Errorf("%w; or run the API alone with --workers 0", err)
			}
			return err
		}
	}
	if c.Role == Serve {
		if err := m.listen(); err != nil {
			return err
		}
	}
	if m.store, err = c.OpenStore(ctx); err != nil {
		return err
	}
	if c.Role == Serve {
		// The farm's worker timeout is serve's: the reaper goes by it on
		// whichever process runs it, a worker's own flag aside.
		if err := m.store.SetFarmWorkerTimeout(ctx, c.WorkerTimeout); err != nil {
			return err
		}
		if err := m.store.SetFarmHistoryRetention(ctx, c.HistoryRetention); err != nil {
			return err
		}
	}
	local := localObjects{publicURL: m.url, maxUpload: c.MaxUploadBytes, transferIdle: c.UploadIdleTimeout, acceptPut: service.AcceptUploadPut(m.store), putFailed: service.UploadPutFailed(m.store), served: service.CountDownload(m.store)}
	if c.Role == Worker {
		// A worker hands out no URLs, so the local store's base URL is unused.
		local = localObjects{publicURL: "http://127.0.0.1"}
	}
	objects, objectsHandler, closeObjects, err := c.openObjects(ctx, local, log)
	if err != nil {
		return err
	}
	m.objects, m.closeObjects = objects, closeObjects
	if c.Role == Serve && c.Storage == "" {
		// A PUT of a serve killed mid-body left its declared size holding
		// its workspace's room; none of that serve's PUTs goes on now.
		if n, err := service.SettleUploadSizes(ctx, m.store, objects); err != nil {
			log.Warn("could not set the sizes of uploads whose PUT a stopped serve left unfinished back to what they hold; they count until the uploads expire", "err", err)
		} else if n > 0 {
			log.Info("set the sizes of uploads whose PUT a stopped serve left unfinished back to what they hold", "uploads", n)
		}
	}
	if c.Storage != "" {
		if m.objects, objectsHandler, err = m.bucketDownloads(ctx, objects, local.served); err != nil {
			return err
		}
	}
	m.metrics = farmMetrics(m.store, c.WorkerTimeout, log)
	// Alerts watch the disks the farm writes: the data directory (SQLite
	// and local objects), and a render node's work directory.
	m.metrics.WatchDisk("data", c.DataDir)
	if c.renders() {
		m.metrics.WatchDisk("work", c.workDir())
	}
	if m.stopMetrics, err = serveMetrics(c.MetricsAddr, m.metrics, m.ready, log); err != nil {
		return err
	}
	if c.Role == Serve {
		// After the metrics address is taken: a start that fails there
		// must not have shown a key that a second start will not show.
		if err := m.firstKey(ctx); err != nil {
			return err
		}
	}
	if err := m.startParts(ctx, tools); err != nil {
		return err
	}
	if c.Role == Worker {
		log.Info("renderfarm worker running", "name", c.WorkerName, "concurrency", c.RenderSlots, "database", m.store.Dialect())
		return nil
	}
	return m.serve(ctx, objectsHandler)
}

// startParts makes the engine and the parts this process runs on it, and
// starts them: the API's service (serve), a render node (when it renders)
// and the housekeeping (always; webhooks are delivered by serve).
func (m *Main) startParts(ctx context.Context, tools *nodeTools) error {
	c := m.Config
	engCfg := c.engineConfig()
	engCfg.Store, engCfg.Objects, engCfg.Logger = m.store, m.objects, m.log
	eng, err := engine.New(ctx, engCfg)
	if err != nil {
		return err
	}
	m.engine = eng
	if c.Role == Serve {
		svc := c.serviceConfig()
		svc.Metrics = m.metrics
		m.service = service.New(eng, svc)
	}
	if tools != nil {
		nd := c.nodeConfig()
		nd.Sandbox, nd.BlenderTempDir, nd.Metrics = tools.sandbox, tools.installs[0].runner.TempDir, m.metrics
		if nd.MemoryBytes, err = m.nodeMemory(); err != nil {
			return err
		}
		if c.GPUAuto {
			if nd.GPUs, err = tools.installs[0].runner.GPUDevices(ctx); err != nil {
				return err
			}
			m.log.Info("GPUs Cycles sees on this node (--gpu auto)", "gpus", farm.FormatGPUs(nd.GPUs))
		}
		if m.node, err = node.New(eng, c.nodeInstalls(tools.installs), nd); err != nil {
			return err
		}
	}
	hk := c.housekeepingConfig()
	hk.Metrics = m.metrics
	keeper := housekeeping.New(eng, hk)
	// Dead workers' tasks are looked for by every process, not only by
	// River's leader, which may be the one that died.
	watchCtx, stopWatch := context.WithCancel(context.WithoutCancel(ctx))
	m.stopWatch = stopWatch
	go keeper.WatchWorkers(watchCtx)

	if m.node != nil {
		if err := m.node.Start(ctx); err != nil {
			return err
		}
	}
	m.started = true
	// River works on until Shutdown stops it, softly: the context that
	// started the process (a signal's) must not end running chunks with
	// it, which River does to the jobs of a client whose start context
	// ends.
	return eng.Start(context.WithoutCancel(ctx))
}

// nodeMemory is the memory this node offers jobs, and logs what it is the
// least of: in a container, a cgroup limit below the machine's memory is
// what a render can have, and --blender-memory-limit is what one Blender
// may allocate.
func (m *Main) nodeMemory() (int64, error) {
	mem, err := node.NodeMemory(os.DirFS("/"), m.Config.BlenderMemoryBytes)
	if err != nil {
		return 0, err
	}
	for _, why := range mem.Unread {
		m.log.Debug("a cgroup's memory limit could not be read; passed over", "error", why)
	}
	attrs := []any{"memoryGiB", farm.WorkerOffer{MemoryBytes: mem.Bytes}.MemoryGiB(), "bytes", mem.Bytes, "machine", mem.Machine}
	if mem.CgroupFile != "" {
		attrs = append(attrs, "cgroupLimit", mem.Cgroup, "cgroupFile", mem.CgroupFile)
	}
	if mem.Blender > 0 {
		attrs = append(attrs, "blenderMemoryLimit", mem.Blender)
	}
	m.log.Info("memory this node offers jobs (the least of the machine's, its cgroup's limit and --blender-memory-limit)", attrs...)
	return mem.Bytes, nil
}

// ready checks, within ctx, that what this process depends on answers:
// the database, and, for a process that renders, the bucket. Its error is
// an outage of the part that does not answer (package outage), or
// httpapi.ErrStopping once a stop began. /readyz answers with it.
func (m *Main) ready(ctx context.Context) error {
	if m.stopping.Load() {
		return httpapi.ErrStopping
	}
	if err := m.store.Ping(ctx); err != nil {
		return &outage.Error{Part: outage.Database, Err: err}
	}
	if m.Config.renders() {
		if err := objstore.Probe(ctx, m.objects); err != nil {
			return &outage.Error{Part: outage.Bucket, Err: err}
		}
	}
	return nil
}

// firstKey makes the first API key of a farm that has none, and logs it:
// the one time it is shown. Of the replicas that start at once on such a
// farm one makes and logs the key; the others find it made, as every
// later start does, and log no key.
func (m *Main) firstKey(ctx context.Context) error {
	key, made, err := service.CreateFirstAPIKey(ctx, m.store, "default")
	if err != nil {
		return err
	}
	if !made {
		m.log.Info("the farm has an API key already; no first key made (renderfarm keys create makes more)")
		return nil
	}
	m.log.Info("created workspace \"default\" and its first API key; it is shown only this once", "apiKey", key)
	return nil
}

// listen takes the API's address, so that PublicURL can default to it.
func (m *Main) listen() error {
	c := m.Config
	listener, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	m.listener = listener
	m.url = c.PublicURL
	if m.url == "" {
		m.url = "http://" + listener.Addr().String()
	}
	return nil
}

// bucketDownloads decides where the bucket's downloads are served. With
// --serve-downloads, serve puts the bucket behind an objstore.Gateway:
// download URLs are the farm's, their bytes read from the bucket and
// counted, and the handler it returns serves them. Serve records its
// choice in the database, so that a render node, which signs the frame
// URLs of a job's completed event, signs them the same way; a render node
// also serves nothing, so it gets no handler.
func (m *Main) bucketDownloads(ctx context.Context, bucket objstore.Store, served func(context.Context, string, int64) error) (objstore.Store, http.Handler, error) {
	c := m.Config
	var base string
	if c.Role == Serve {
		if c.ServeDownloads {
			base = m.url
		}
		// Replicas that disagree leave the render nodes signing as
		// whichever started last: say so.
		if before, err := m.store.FarmDownloadsURL(ctx); err == nil && before != base {
			m.log.Warn("where the bucket's downloads are served changes: render nodes sign the frames of completed events so once they restart; give every serve replica the same --serve-downloads and --public-url",
				"before", cmp.Or(before, "the bucket"), "now", cmp.Or(base, "the bucket"))
		}
		if err := m.store.SetFarmDownloadsURL(ctx, base); err != nil {
			return nil, nil, err
		}
	} else {
		var err error
		if base, err = m.store.FarmDownloadsURL(ctx); err != nil {
			return nil, nil, err
		}
		served = nil
	}
	if base == "" {
		return bucket, nil, nil
	}
	opener, ok := bucket.(objstore.Opener)
	if !ok {
		return nil, nil, fmt.Errorf("the store %T cannot serve downloads through the farm", bucket)
	}
	secret, err := m.store.DownloadURLSecret(ctx)
	if err != nil {
		return nil, nil, err
	}
	g, err := objstore.NewGateway(objstore.GatewayConfig{
		Bucket: opener, BaseURL: base, Secret: secret,
		Served: served, TransferIdleTimeout: c.UploadIdleTimeout, Log: m.log,
	})
	if err != nil {
		return nil, nil, err
	}
	if c.Role != Serve {
		return g, nil, nil
	}
	m.log.Info("downloads from the bucket are served through this server and counted", "url", base+objstore.ObjectsPath)
	return g, g.Handler(), nil
}

// serve serves the API, the dashboard, the local store's URLs and, behind
// the admin token, River's UI and the metrics.
func (m *Main) serve(ctx context.Context, objectsHandler http.Handler) error {
	c := m.Config
	maxConns := c.MaxConnections
	if maxConns == 0 {
		n, err := defaultMaxConnections()
		if err != nil {
			return err
		}
		maxConns = n
	}
	root := http.NewServeMux()
	if c.AdminToken != "" {
		// /metrics counts the jobs of every workspace: on the API's
		// address, which API clients reach, it is for operators only.
		// Without a token it is not served here (404): --metrics-addr
		// serves it on loopback.
		root.Handle("GET /metrics", adminBearer(c.AdminToken, m.metrics.Handler()))
		ui, err := riverUI(ctx, m.engine.River(), c.AdminToken, m.log)
		if err != nil {
			return err
		}
		root.Handle("/riverui/", ui)
	}
	root.Handle("/", httpapi.New(m.service, httpapi.Options{
		Objects: objectsHandler, Logger: m.log,
		Dashboard: web.Handler(web.Options{ObjectOrigins: []string{m.url, objectOrigin(c.Storage)}}),
		RateLimit: httpapi.RateLimit{PerSecond: c.RateLimit, Burst: c.RateLimitBurst},
		Ready:     m.ready,
		Answered:  m.metrics.RequestAnswered,
	}))
	server, limited := newHTTPServer(root, m.listener, serveLimits(c.IdleTimeout, maxConns))
	m.server = server
	m.serveErr = make(chan error, 1)
	go func() { m.serveErr <- server.Serve(limited) }()
	m.log.Info("renderfarm is serving", "url", m.url, "database", m.store.Dialect(), "workers", c.RenderSlots)
	return nil
}

// Wait waits until ctx ends or the API server fails, and answers the
// server's failure.
func (m *Main) Wait(ctx context.Context) error {
	if m.serveErr == nil {
		<-ctx.Done()
		return nil
	}
	select {
	case err := <-m.serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	return nil
}

// Close stops the process as Shutdown does, with nothing to cut the wait
// for running work short but --shutdown-timeout.
func (m *Main) Close() error { return m.Shutdown(context.Background()) }

// Shutdown stops the process: it takes no more work and no more requests,
// finishes the requests being answered, and lets the running chunks (and
// validations, and finalizing) finish, for up to ShutdownTimeout or until
// ctx ends (a second signal), whichever comes first. What still runs then
// is stopped and handed to another worker at once, under a new
// generation. Then it closes everything Run opened.
func (m *Main) Shutdown(ctx context.Context) error {
	c := m.Config
	m.stopping.Store(true)
	if m.stopWatch != nil {
		m.stopWatch()
	}
	stopCtx, cancel := context.WithTimeout(ctx, c.ShutdownTimeout)
	defer cancel()
	if m.log != nil && m.started {
		if c.Role == Worker {
			m.log.Info("stopping: letting running chunks finish or handing them back", "timeout", c.ShutdownTimeout)
		} else {
			m.log.Info("stopping: finishing requests and running work", "timeout", c.ShutdownTimeout)
		}
	}
	if m.server != nil {
		if err := m.server.Shutdown(stopCtx); err != nil {
			_ = m.server.Close()
		}
	}
	if m.engine != nil {
		if m.started {
			if m.node != nil {
				// No chunk is given to this node from now on; those it
				// runs may finish.
				m.node.Drain(stopCtx)
			}
			start := time.Now()
			err := m.engine.Stop(stopCtx)
			// The engine cancels what still runs once stopCtx ends: that
			// is a stop by force when it cut running work short, which a
			// render node knows for its tasks, and the engine for the
			// River work of a process that renders nothing. A stop that
			// found nothing running is not one, even with
			// --shutdown-timeout 0.
			switch {
			case err != nil || (m.node != nil && m.node.StopCutWorkShort()) || (m.node == nil && m.engine.StopCutWorkShort()):
				m.forced.Store(true)
				m.log.Warn("stopped by force: the running work was cut short and handed back", "after", time.Since(start).Round(time.Millisecond), "err", err)
			default:
				m.log.Info("running work finished", "took", time.Since(start).Round(time.Millisecond))
			}
		}
		if m.node != nil {
			m.node.Stop()
		}
		m.engine.Close()
	}
	if m.stopMetrics != nil {
		m.stopMetrics()
	}
	if m.closeObjects != nil {
		m.closeObjects()
	}
	var err error
	if m.store != nil {
		err = m.store.Close()
	}
	if m.listener != nil {
		m.listener.Close()
	}
	return err
}

// ExitStoppedByForce is the exit status of a serve or worker whose stop
// cut running work short: --shutdown-timeout passed, or a second SIGTERM
// or SIGINT came, before the running chunks (validations, finalizing)
// finished. Nothing is lost, that work was handed back to other workers,
// but a supervisor (systemd, Kubernetes, an operator's script) can tell
// such a stop from one that finished its work (0). 75 is EX_TEMPFAIL of
// sysexits.h: the work was not done here and will be done again.
const ExitStoppedByForce = 75

// StoppedByForce reports whether Shutdown cut running work short and
// handed it back, rather than letting it finish.
func (m *Main) StoppedByForce() bool { return m.forced.Load() }

// URL is where the API answers (serve), once Run has returned.
func (m *Main) URL() string { return m.url }

// Store is the farm's database.
func (m *Main) Store() *store.Store { return m.store }

// Objects is the farm's object store.
func (m *Main) Objects() objstore.Store { return m.objects }

// River is the process's River client.
func (m *Main) River() *river.Client[*sql.Tx] { return m.engine.River() }

// Service is the API's service (serve).
func (m *Main) Service() *service.Service { return m.service }

// Node is the process's render node; nil when it renders nothing.
func (m *Main) Node() *node.Node { return m.node }
