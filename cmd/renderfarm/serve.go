package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/web"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

type serveConfig struct {
	addr           string
	dataDir        string
	workers        int
	publicURL      string
	workerName     string
	maxUpload      byteSize
	maxProject     byteSize
	uploadTTL      time.Duration
	downloadTTL    time.Duration
	workerTimeout  time.Duration
	shutdownWait   time.Duration
	blenderBinary  string
	blenderThreads int
	ffmpegBinary   string
	logFormat      string
	webhookPrivate bool
	webhookTries   int
	webhookRetry   time.Duration
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	host, _ := os.Hostname()
	var c serveConfig
	c.maxUpload = 5 << 30
	c.maxProject = 20 << 30
	fs := newFlagSet("serve", stderr)
	fs.StringVar(&c.addr, "addr", "127.0.0.1:8080", "the address the API listens on")
	fs.StringVar(&c.dataDir, "data-dir", "./renderfarm-data", "where the database, objects and work files live")
	fs.IntVar(&c.workers, "workers", 1, "how many chunks this machine renders at once (0: API only)")
	fs.StringVar(&c.publicURL, "public-url", "", "the URL clients reach this server at, used in upload and download URLs (default http://ADDR)")
	fs.StringVar(&c.workerName, "worker-name", host, "the name of this machine's worker in progress reports")
	fs.Var(&c.maxUpload, "max-upload-bytes", "the largest file an upload URL accepts (e.g. 5GiB)")
	fs.Var(&c.maxProject, "max-project-bytes", "the largest total uncompressed size of a project zip (e.g. 20GiB)")
	fs.DurationVar(&c.uploadTTL, "upload-url-ttl", 15*time.Minute, "how long an upload URL stays valid")
	fs.DurationVar(&c.downloadTTL, "download-url-ttl", time.Hour, "how long a download URL stays valid")
	fs.DurationVar(&c.workerTimeout, "worker-timeout", 60*time.Second, "how long a worker may go silent before its frames are rendered elsewhere")
	fs.DurationVar(&c.shutdownWait, "shutdown-timeout", 30*time.Second, "how long a stop waits for running work before handing it back")
	fs.StringVar(&c.blenderBinary, "blender", "blender", "the Blender executable")
	fs.IntVar(&c.blenderThreads, "blender-threads", 0, "render threads per Blender process (0: all cores)")
	fs.StringVar(&c.ffmpegBinary, "ffmpeg", "ffmpeg", "the ffmpeg executable for preview videos")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.BoolVar(&c.webhookPrivate, "webhook-allow-private", false, "let webhooks reach loopback and private addresses (labs and tests only)")
	fs.IntVar(&c.webhookTries, "webhook-attempts", webhook.DefaultAttempts, "how many times a webhook event is tried, over about a day at the default")
	fs.DurationVar(&c.webhookRetry, "webhook-first-retry", webhook.DefaultFirstRetry, "the wait before a webhook event's second attempt; later waits grow from it (x6, x24, x120 …)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if c.workers < 0 {
		return fmt.Errorf("%w: --workers must be 0 or more", errUsage)
	}
	log, err := newLogger(c.logFormat, stderr)
	if err != nil {
		return err
	}

	runner := &blender.Runner{Binary: c.blenderBinary, Threads: c.blenderThreads}
	if c.workers > 0 {
		version, err := runner.Version(ctx)
		if err != nil {
			return fmt.Errorf("blender is needed to render (%v); install it (apt-get install blender) or pass --blender PATH, or run the API alone with --workers 0", err)
		}
		if _, err := exec.LookPath(c.ffmpegBinary); err != nil {
			return fmt.Errorf("ffmpeg is needed for preview videos (%v); install it (apt-get install ffmpeg) or pass --ffmpeg PATH", err)
		}
		log.Info("blender found", "version", version, "binary", c.blenderBinary)
	}

	listener, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.addr, err)
	}
	defer listener.Close()
	if c.publicURL == "" {
		c.publicURL = "http://" + listener.Addr().String()
	}

	st, err := openStore(ctx, c.dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	secret, err := objstore.LoadOrCreateSecret(filepath.Join(c.dataDir, "url-signing.key"))
	if err != nil {
		return err
	}
	objects, err := objstore.NewLocal(objstore.LocalConfig{
		Dir: filepath.Join(c.dataDir, "objects"), BaseURL: c.publicURL, Secret: secret,
		MaxUploadBytes: int64(c.maxUpload), Log: log,
	})
	if err != nil {
		return err
	}
	defer objects.Close()

	if n, err := st.CountAPIKeys(ctx); err != nil {
		return err
	} else if n == 0 {
		key, err := engine.CreateAPIKey(ctx, st, "default")
		if err != nil {
			return err
		}
		log.Info("created workspace \"default\" and its first API key; it is shown only this once", "apiKey", key)
	}

	limits := blendfile.DefaultZipLimits()
	limits.MaxTotalBytes = int64(c.maxProject)
	eng, err := engine.New(ctx, engine.Config{
		Store: st, Objects: objects, Blender: runner, Logger: log,
		RenderWorkers: c.workers, WorkerName: c.workerName,
		WorkDir: filepath.Join(c.dataDir, "work"), FFmpeg: c.ffmpegBinary,
		UploadURLTTL: c.uploadTTL, DownloadURLTTL: c.downloadTTL, ZipLimits: limits,
		WorkerTimeout:   c.workerTimeout,
		WebhookAttempts: c.webhookTries, WebhookAllowPrivate: c.webhookPrivate, WebhookFirstRetry: c.webhookRetry,
	})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}

	server := &http.Server{
		Handler:           httpapi.New(eng, httpapi.Options{Objects: objects.Handler(), Logger: log, Dashboard: web.Handler(web.Options{ObjectOrigins: []string{c.publicURL}})}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(listener) }()
	log.Info("renderfarm is serving", "url", c.publicURL, "dataDir", c.dataDir, "workers", c.workers)
	fmt.Fprintf(stdout, "renderfarm serving at %s\n", c.publicURL)

	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	log.Info("stopping: finishing requests and running work", "timeout", c.shutdownWait)
	stopCtx, cancel := context.WithTimeout(context.Background(), c.shutdownWait)
	defer cancel()
	_ = server.Shutdown(stopCtx)
	if err := eng.Stop(stopCtx); err != nil {
		log.Warn("running work was handed back", "err", err)
	}
	return nil
}

func newLogger(format string, w io.Writer) (*slog.Logger, error) {
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	}
	return nil, fmt.Errorf("%w: --log-format must be text or json, not %q", errUsage, format)
}

func mkdirData(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	return nil
}
