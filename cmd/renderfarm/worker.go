package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
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
	)
	fs := newFlagSet("worker", stderr)
	b.register(fs)
	w.register(fs)
	fs.IntVar(&concurrency, "concurrency", 1, "how many chunks this node renders at once")
	fs.StringVar(&workDir, "work-dir", filepath.Join(os.TempDir(), "renderfarm-worker"), "where inputs are unpacked and frames written while rendering")
	fs.Var(&cacheBytes, "cache-bytes", "how much of the inputs fetched from the bucket this node keeps, by checksum, for later chunks and jobs")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if concurrency < 1 {
		return fmt.Errorf("%w: --concurrency must be 1 or more", errUsage)
	}
	log, err := newLogger(w.logFormat, stderr)
	if err != nil {
		return err
	}
	runner, err := w.blenderRunner(ctx, workDir, log)
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
	objects, _, closeObjects, err := b.openObjects(ctx, "http://127.0.0.1", 0, log)
	if err != nil {
		return err
	}
	defer closeObjects()

	limits := blendfile.DefaultZipLimits()
	limits.MaxTotalBytes = int64(w.maxProject)
	eng, err := engine.New(ctx, engine.Config{
		Store: st, Objects: objects, Blender: runner, Logger: log, PostgresDSN: b.postgresDSN(),
		Metrics: farmMetrics(st, w.workerTimeout, log), RenderWorkers: concurrency, WorkerName: w.workerName,
		WorkDir: workDir, CacheBytes: int64(cacheBytes), FFmpeg: w.ffmpegBinary, ZipLimits: limits, WorkerTimeout: w.workerTimeout,
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
