package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"riverqueue.com/riverui"

	"github.com/renderfarm/renderfarm/internal/blender"
	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/httpapi"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/sandbox"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/web"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// workerFlags configure the render workers of serve and worker alike.
type workerFlags struct {
	workerName     string
	workerTimeout  time.Duration
	shutdownWait   time.Duration
	maxProject     byteSize
	blenderBinary  string
	blenderThreads int
	ffmpegBinary   string
	logFormat      string
	// How Blender and ffmpeg are contained: see package sandbox.
	sandboxMode   string
	bwrapBinary   string
	blenderMemory byteSize
	blenderFiles  int
	frameTimeout  time.Duration
	keepAlive     time.Duration
}

func (w *workerFlags) register(fs *flag.FlagSet) {
	host, _ := os.Hostname()
	w.maxProject = 20 << 30
	fs.StringVar(&w.workerName, "worker-name", host, "the name of this machine's worker in progress reports")
	fs.DurationVar(&w.workerTimeout, "worker-timeout", 60*time.Second, "how long a worker may go silent before its frames are rendered elsewhere")
	fs.DurationVar(&w.shutdownWait, "shutdown-timeout", 30*time.Second, "how long a stop waits for running work before handing it back")
	fs.Var(&w.maxProject, "max-project-bytes", "the largest total uncompressed size of a project zip (e.g. 20GiB)")
	fs.StringVar(&w.blenderBinary, "blender", "blender", "the Blender executable")
	fs.IntVar(&w.blenderThreads, "blender-threads", 0, "render threads per Blender process (0: all cores)")
	fs.StringVar(&w.ffmpegBinary, "ffmpeg", "ffmpeg", "the ffmpeg executable for preview videos")
	fs.StringVar(&w.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&w.sandboxMode, "sandbox", "auto", "how Blender and ffmpeg are confined: auto or bwrap (bubblewrap: no network, read-only system, writable only their own directories; the node refuses to start where bubblewrap is missing or does not work), or none (unconfined, logged as a warning at every start)")
	fs.StringVar(&w.bwrapBinary, "bwrap", "bwrap", "the bubblewrap executable for --sandbox")
	fs.Func("blender-memory-limit", "the memory each Blender process may allocate (its data segment, e.g. 8GiB); 0, the default, sets no limit", func(s string) error {
		if strings.TrimSpace(s) == "0" {
			w.blenderMemory = 0
			return nil
		}
		return w.blenderMemory.Set(s)
	})
	fs.IntVar(&w.blenderFiles, "blender-open-files", 4096, "the most files each Blender process may have open (0: the system's limit)")
	fs.DurationVar(&w.frameTimeout, "frame-timeout", time.Hour, "how long Blender may render without saving a frame before it is killed and the chunk retried (0: no limit)")
	fs.DurationVar(&w.keepAlive, "blender-keep-alive", time.Minute, "how long a worker keeps Blender running with a job's file loaded, after validating it or rendering a chunk, for the job's next chunk (0: start Blender for every chunk)")
}

// blenderSessions makes the pool of warm Blender sessions the flags ask
// for: at most one a render slot, so that idle sessions never outnumber
// the Blenders the worker runs at once. nil when --blender-keep-alive is 0.
func (w *workerFlags) blenderSessions(runner *blender.Runner, slots int) (*blender.Sessions, error) {
	if w.keepAlive < 0 {
		return nil, fmt.Errorf("%w: --blender-keep-alive cannot be negative", errUsage)
	}
	if w.keepAlive == 0 || slots < 1 {
		return nil, nil
	}
	return &blender.Sessions{Runner: runner, KeepAlive: w.keepAlive, Max: slots}, nil
}

// blenderRunner makes the Runner the flags describe, contained as --sandbox
// says, and logs the containment in effect; the engine confines ffmpeg with
// the Runner's Sandbox too. workDir is the engine's work directory: a
// confined Blender reads its own job's directory in it. A process that
// renders nothing (serve --workers 0) runs neither program and needs no
// sandbox.
func (w *workerFlags) blenderRunner(ctx context.Context, workDir string, renders bool, log *slog.Logger) (*blender.Runner, error) {
	// Blender runs in its own run directory, so every path it is given
	// must be absolute: --data-dir defaults to a relative one.
	workDir, err := filepath.Abs(workDir)
	if err != nil {
		return nil, err
	}
	mode, err := sandbox.ParseMode(w.sandboxMode)
	if err != nil {
		return nil, fmt.Errorf("%w: --%v", errUsage, err)
	}
	if w.blenderFiles < 0 || w.frameTimeout < 0 {
		return nil, fmt.Errorf("%w: --blender-open-files and --frame-timeout cannot be negative", errUsage)
	}
	var sb *sandbox.Sandbox
	if renders {
		sb, err = sandbox.New(ctx, sandbox.Config{Mode: mode, Bwrap: w.bwrapBinary,
			MemoryBytes: int64(w.blenderMemory), OpenFiles: w.blenderFiles})
		if err != nil {
			return nil, err
		}
		if !sb.Confined() {
			log.Warn("Blender and ffmpeg run UNCONFINED (--sandbox none): a hostile file that exploits either gets this node's network, its files and its credentials; install bubblewrap and drop --sandbox none",
				"sandbox", sb.String())
		}
		log.Info("blender and ffmpeg containment", "sandbox", sb.String(), "frameTimeout", w.frameTimeout, "autoexec", "disabled")
	}
	// Blender's run directories (scripts, results, its TMPDIR) go in the
	// work directory rather than the system's, so that those a killed
	// process left are found and removed at the next start.
	runner := &blender.Runner{Binary: w.blenderBinary, Threads: w.blenderThreads,
		Sandbox: sb, JobsDir: workDir, FrameTimeout: w.frameTimeout, TempDir: filepath.Join(workDir, "tmp")}
	removed, err := runner.ClaimTempDir()
	if err != nil {
		return nil, err
	}
	if removed > 0 {
		log.Info("removed Blender run directories left by a process that was killed", "count", removed, "dir", runner.TempDir)
	}
	return runner, nil
}

// checkTools makes sure Blender and ffmpeg run, with a message saying how
// to get them when they do not.
func (w *workerFlags) checkTools(ctx context.Context, runner *blender.Runner, log *slog.Logger) error {
	version, err := runner.Version(ctx)
	if err != nil {
		return fmt.Errorf("blender is needed to render (%v); install it (apt-get install blender) or pass --blender PATH", err)
	}
	if _, err := exec.LookPath(w.ffmpegBinary); err != nil {
		return fmt.Errorf("ffmpeg is needed for preview videos (%v); install it (apt-get install ffmpeg) or pass --ffmpeg PATH", err)
	}
	log.Info("blender found", "version", version, "binary", w.blenderBinary)
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var (
		b              backends
		w              workerFlags
		addr           string
		workers        int
		publicURL      string
		adminToken     string
		maxUpload      byteSize = 5 << 30
		uploadTTL      time.Duration
		downloadTTL    time.Duration
		webhookPrivate bool
		webhookTries   int
		webhookRetry   time.Duration
		rateLimit      float64
		rateBurst      int
		retention      time.Duration
		metricsAddr    string
		transferIdle   time.Duration
		keepAliveIdle  time.Duration
		maxConns       int
	)
	fs := newFlagSet("serve", stderr)
	b.register(fs)
	w.register(fs)
	fs.StringVar(&addr, "addr", "127.0.0.1:8080", "the address the API listens on")
	fs.IntVar(&workers, "workers", 1, "how many chunks this machine renders at once (0: API only)")
	fs.StringVar(&publicURL, "public-url", "", "the URL clients reach this server at, used in upload and download URLs (default http://ADDR)")
	fs.StringVar(&adminToken, "admin-token", "", "serve River's UI at /riverui/ to operators who give this token as their password, and /metrics on --addr to those who send it as \"Authorization: Bearer TOKEN\" (empty: neither)")
	fs.StringVar(&metricsAddr, "metrics-addr", defaultMetricsAddr, "serve /metrics and /healthz without credentials at this address, for a Prometheus on this host (empty: none)")
	fs.Var(&maxUpload, "max-upload-bytes", "the largest file an upload URL accepts (e.g. 5GiB)")
	fs.DurationVar(&uploadTTL, "upload-url-ttl", 15*time.Minute, "how long an upload URL stays valid")
	fs.DurationVar(&downloadTTL, "download-url-ttl", time.Hour, "how long a download URL stays valid")
	fs.BoolVar(&webhookPrivate, "webhook-allow-private", false, "let webhooks reach loopback and private addresses (labs and tests only)")
	fs.IntVar(&webhookTries, "webhook-attempts", webhook.DefaultAttempts, "how many times a webhook event is tried, over about a day at the default")
	fs.DurationVar(&webhookRetry, "webhook-first-retry", webhook.DefaultFirstRetry, "the wait before a webhook event's second attempt; later waits grow from it (x6, x24, x120 …)")
	fs.Float64Var(&rateLimit, "rate-limit", 10, "POST and DELETE requests per second one API key may send to this server (0: no limit)")
	fs.IntVar(&rateBurst, "rate-limit-burst", 20, "how many POST and DELETE requests one API key may send at once after a quiet spell")
	fs.DurationVar(&retention, "upload-retention", engine.DefaultUploadRetention, "how long an upload that no job was made from is kept before its file is removed")
	fs.DurationVar(&transferIdle, "upload-idle-timeout", objstore.DefaultTransferIdleTimeout, "how long an upload to this server may send nothing, or a download from it take nothing, before it is cut (a slow but steady transfer is never cut)")
	fs.DurationVar(&keepAliveIdle, "idle-timeout", time.Minute, "how long a kept-alive connection may wait for its next request before it is closed")
	fs.IntVar(&maxConns, "max-connections", 0, "the most connections open at once; at the cap the one idle longest is closed, or a new one waits (0: half the process's open-file limit)")
	if err := parseWithEnv(fs, args); err != nil {
		return err
	}
	if workers < 0 {
		return fmt.Errorf("%w: --workers must be 0 or more", errUsage)
	}
	if rateLimit < 0 || rateBurst < 1 {
		return fmt.Errorf("%w: --rate-limit must be 0 (no limit) or more, and --rate-limit-burst 1 or more", errUsage)
	}
	if transferIdle <= 0 || keepAliveIdle <= 0 || maxConns < 0 {
		return fmt.Errorf("%w: --upload-idle-timeout and --idle-timeout must be positive, --max-connections 0 or more", errUsage)
	}
	if maxConns == 0 {
		n, err := defaultMaxConnections()
		if err != nil {
			return err
		}
		maxConns = n
	}
	if retention <= uploadTTL {
		// Otherwise a file could be removed while its upload URL still
		// takes it, or before the client had a chance to make a job of it.
		return fmt.Errorf("%w: --upload-retention (%v) must be longer than --upload-url-ttl (%v)", errUsage, retention, uploadTTL)
	}
	log, err := newLogger(w.logFormat, stderr)
	if err != nil {
		return err
	}
	runner, err := w.blenderRunner(ctx, filepath.Join(b.dataDir, "work"), workers > 0, log)
	if err != nil {
		return err
	}
	sessions, err := w.blenderSessions(runner, workers)
	if err != nil {
		return err
	}
	if workers > 0 {
		if err := w.checkTools(ctx, runner, log); err != nil {
			return fmt.Errorf("%w; or run the API alone with --workers 0", err)
		}
	}

	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer listener.Close()
	if publicURL == "" {
		publicURL = "http://" + listener.Addr().String()
	}

	st, err := b.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	objects, objectsHandler, closeObjects, err := b.openObjects(ctx, localObjects{
		publicURL: publicURL, maxUpload: int64(maxUpload), transferIdle: transferIdle, acceptPut: engine.AcceptUploadPut(st),
	}, log)
	if err != nil {
		return err
	}
	defer closeObjects()
	// Before the first key is made: a start that fails here must not
	// have shown a key that a second start will not show again.
	m := farmMetrics(st, w.workerTimeout, log)
	stopMetrics, err := serveMetrics(metricsAddr, m, log)
	if err != nil {
		return err
	}
	defer stopMetrics()

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
	limits.MaxTotalBytes = int64(w.maxProject)
	eng, err := engine.New(ctx, engine.Config{
		Store: st, Objects: objects, Blender: runner, Sessions: sessions, Logger: log, Metrics: m, PostgresDSN: b.postgresDSN(),
		RenderWorkers: workers, WorkerName: w.workerName,
		WorkDir: filepath.Join(b.dataDir, "work"), FFmpeg: w.ffmpegBinary, Sandbox: runner.Sandbox,
		UploadURLTTL: uploadTTL, DownloadURLTTL: downloadTTL, ZipLimits: limits, MaxUploadBytes: int64(maxUpload),
		WorkerTimeout:   w.workerTimeout,
		WebhookAttempts: webhookTries, WebhookAllowPrivate: webhookPrivate, WebhookFirstRetry: webhookRetry,
		UploadRetention: retention,
	})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}

	objectOrigins := []string{publicURL}
	root := http.NewServeMux()
	if adminToken != "" {
		// /metrics counts the jobs of every workspace: on the API's
		// address, which API clients reach, it is for operators only.
		// Without a token it is not served here (404): --metrics-addr
		// serves it on loopback.
		root.Handle("GET /metrics", adminBearer(adminToken, m.Handler()))
		ui, err := riverUI(ctx, eng.River(), adminToken, log)
		if err != nil {
			return err
		}
		root.Handle("/riverui/", ui)
	}
	root.Handle("/", httpapi.New(eng, httpapi.Options{
		Objects: objectsHandler, Logger: log,
		Dashboard: web.Handler(web.Options{ObjectOrigins: append(objectOrigins, objectOrigin(b.storage))}),
		RateLimit: httpapi.RateLimit{PerSecond: rateLimit, Burst: rateBurst},
	}))
	server, limited := newHTTPServer(root, listener, serveLimits(keepAliveIdle, maxConns))
	serveErr := make(chan error, 1)
	go func() { serveErr <- server.Serve(limited) }()
	log.Info("renderfarm is serving", "url", publicURL, "database", st.Dialect(), "workers", workers)
	fmt.Fprintf(stdout, "renderfarm serving at %s\n", publicURL)

	select {
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	log.Info("stopping: finishing requests and running work", "timeout", w.shutdownWait)
	stopCtx, cancel := context.WithTimeout(context.Background(), w.shutdownWait)
	defer cancel()
	_ = server.Shutdown(stopCtx)
	if err := eng.Stop(stopCtx); err != nil {
		log.Warn("running work was handed back", "err", err)
	}
	return nil
}

// riverUI serves River's own UI, so operators inspect the queue with the
// tool River users know, behind HTTP basic auth whose password is the
// admin token (any user name).
func riverUI(ctx context.Context, client *river.Client[*sql.Tx], token string, log *slog.Logger) (http.Handler, error) {
	h, err := riverui.NewHandler(&riverui.HandlerOpts{
		Endpoints: riverui.NewEndpoints(client, nil),
		Logger:    log.With("component", "riverui"),
		Prefix:    "/riverui",
	})
	if err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	if err := h.Start(ctx); err != nil {
		return nil, fmt.Errorf("river UI: %w", err)
	}
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		_, pass, ok := r.BasicAuth()
		if !ok || !adminTokenMatches(pass, token) {
			rw.Header().Set("WWW-Authenticate", `Basic realm="renderfarm River UI"`)
			http.Error(rw, "the River UI needs the admin token as the password", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	}), nil
}

// defaultMetricsAddr is where serve answers /metrics without credentials
// unless told otherwise: loopback, so that only this host's Prometheus
// reaches it, and a fixed port, so that its scrape configuration holds
// across restarts. A second serve on the same host needs another
// --metrics-addr, or "" for none, and says so if it is not given one.
const defaultMetricsAddr = "127.0.0.1:9464"

// adminBearer lets a request through to h only when it carries the admin
// token as "Authorization: Bearer <admin token>", the way Prometheus sends
// a scrape's credentials.
func adminBearer(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		scheme, given, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "Bearer") || !adminTokenMatches(strings.TrimSpace(given), token) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="renderfarm metrics"`)
			http.Error(rw, `/metrics on the API address needs the admin token: send "Authorization: Bearer <admin token>", or scrape --metrics-addr`, http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(rw, r)
	})
}

// adminTokenMatches compares a token given with the admin token in time
// that tells nothing of either, their lengths included: it compares their
// SHA-256 sums.
func adminTokenMatches(given, token string) bool {
	g, t := sha256.Sum256([]byte(given)), sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(g[:], t[:]) == 1
}

// objectOrigin is the origin of the S3 endpoint in --storage, which the
// dashboard loads frames and uploads files from; "" for local objects.
func objectOrigin(storage string) string {
	if storage == "" {
		return ""
	}
	cfg, err := objstore.ParseS3URL(storage)
	if err != nil {
		return ""
	}
	if cfg.Endpoint != "" {
		return cfg.Endpoint
	}
	return "https://" + cfg.Bucket + ".s3." + cfg.Region + ".amazonaws.com"
}

// farmMetrics makes the metrics, reading the database's numbers at each
// scrape.
func farmMetrics(st *store.Store, workerTimeout time.Duration, log *slog.Logger) *metrics.Metrics {
	return metrics.New(func(ctx context.Context) (store.FarmStats, error) {
		return st.Stats(ctx, time.Now().Add(-workerTimeout))
	}, log)
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
