package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/metrics"
)

// worker runs a render node: no HTTP port, only the farm's database and
// bucket. It takes validation, render and finalize work, fetches each
// job's input from the bucket, and stores frames as Blender saves them.
func worker(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		b           backends
		w           workerFlags
		concurrency int
		workDir     string
		cacheBytes  byteSize = byteSize(engine.DefaultCacheBytes)
		metricsAddr string
	)
	fs := newFlagSet("worker", stderr)
	b.register(fs)
	w.register(fs)
	fs.StringVar(&w.workerName, "name", w.workerName, "the same as --worker-name: this node's name in progress reports and `renderfarm workers`")
	fs.IntVar(&concurrency, "concurrency", 1, "how many chunks this node renders at once")
	fs.StringVar(&workDir, "work-dir", filepath.Join(os.TempDir(), "renderfarm-worker"), "where inputs are unpacked and frames written while rendering")
	fs.StringVar(&metricsAddr, "metrics-addr", "", "serve this node's /metrics (frames it rendered, render seconds) and /healthz at this address, e.g. 0.0.0.0:9100 (empty: none)")
	fs.Var(&cacheBytes, "cache-bytes", "how much of the inputs fetched from the bucket this node keeps, by checksum, for later chunks and jobs")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if b.postgresDSN() == "" || b.storage == "" {
		return fmt.Errorf("%w: a worker shares the farm's state with the API servers: give --database postgres://… and --storage s3://… (on one machine, `renderfarm serve --workers N` renders by itself)", errUsage)
	}
	if concurrency < 1 {
		return fmt.Errorf("%w: --concurrency must be 1 or more", errUsage)
	}
	log, err := newLogger(w.logFormat, stderr)
	if err != nil {
		return err
	}
	runner, err := w.blenderRunner(ctx, workDir, true, log)
	if err != nil {
		return err
	}
	sessions, err := w.blenderSessions(runner, concurrency)
	if err != nil {
		return err
	}
	if err := w.checkTools(ctx, runner, log); err != nil {
		return err
	}
	st, err := b.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	// A worker hands out no URLs, so the local store's base URL is unused.
	objects, _, closeObjects, err := b.openObjects(ctx, localObjects{publicURL: "http://127.0.0.1"}, log)
	if err != nil {
		return err
	}
	defer closeObjects()

	m := farmMetrics(st, w.workerTimeout, log)
	stopMetrics, err := serveMetrics(metricsAddr, m, log)
	if err != nil {
		return err
	}
	defer stopMetrics()
	limits := blendfile.DefaultZipLimits()
	limits.MaxTotalBytes = int64(w.maxProject)
	eng, err := engine.New(ctx, engine.Config{
		Store: st, Objects: objects, Blender: runner, Sessions: sessions, Logger: log, PostgresDSN: b.postgresDSN(),
		Metrics: m, RenderWorkers: concurrency, WorkerName: w.workerName,
		WorkDir: workDir, CacheBytes: int64(cacheBytes), FFmpeg: w.ffmpegBinary, Sandbox: runner.Sandbox, ZipLimits: limits, WorkerTimeout: w.workerTimeout,
		// Webhooks are delivered by the API servers.
		NoWebhookDelivery: true,
	})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	log.Info("renderfarm worker running", "name", w.workerName, "concurrency", concurrency, "database", st.Dialect())
	fmt.Fprintf(stdout, "renderfarm worker %s running\n", w.workerName)
	<-ctx.Done()
	log.Info("stopping: letting running chunks finish or handing them back", "timeout", w.shutdownWait)
	stopCtx, cancel := context.WithTimeout(context.Background(), w.shutdownWait)
	defer cancel()
	if err := eng.Stop(stopCtx); err != nil {
		log.Warn("running work was handed back", "err", err)
	}
	return nil
}

// migrate brings the database's schema (the farm's and River's) up to date,
// for deployments that migrate before rolling out new binaries. serve and
// worker migrate at start too.
func migrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var b backends
	fs := newFlagSet("migrate", stderr)
	b.register(fs)
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	st, err := b.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := engine.Migrate(ctx, st, b.postgresDSN()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "the %s database is up to date\n", st.Dialect())
	return nil
}

// serveMetrics serves /metrics and /healthz at addr, without credentials,
// until stop is called; an empty addr serves nothing. serve uses it for
// --metrics-addr (loopback by default, for a Prometheus on the same host)
// and worker for its own --metrics-addr: a render node has no API, and its
// frame counters live in its own process. An address already taken is an
// error at start, never a server that runs without the metrics it was
// asked for.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) (stop func(), err error) {
	if addr == "" {
		return func() {}, nil
	}
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %s: %w; give an address no other process listens on, or --metrics-addr \"\" to serve no metrics there", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}`))
	})
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := server.Serve(listener); err != nil && err != http.ErrServerClosed {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", listener.Addr().String())
	return func() {
		// A scrape takes milliseconds; a stop does not wait long for one.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}, nil
}
