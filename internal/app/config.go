package app

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/blendfile"
	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/housekeeping"
	"github.com/renderfarm/renderfarm/internal/node"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/sandbox"
	"github.com/renderfarm/renderfarm/internal/service"
)

// MaxUploadIdleTimeout bounds --upload-idle-timeout well below the hour
// after which the local store's temp file of an upload that nothing writes
// to is taken for a killed process's and removed (housekeeping).
const MaxUploadIdleTimeout = 30 * time.Minute

// Role is what a process is.
type Role string

// The roles a process can have.
const (
	// Serve runs the API, and a render node beside it unless RenderSlots
	// is 0 (`renderfarm serve`).
	Serve Role = "serve"
	// Worker is a render node only (`renderfarm worker`), on the farm's
	// PostgreSQL and bucket.
	Worker Role = "worker"
)

// Config is everything a serve or worker process is told. Its defaults are
// DefaultConfig's, which the command line's flags show and the libraries'
// own defaults come from; RegisterFlags turns each field into its flag.
type Config struct {
	Role Role
	Backends
	// LogFormat is text or json.
	LogFormat string

	// The render node.

	// RenderSlots is how many chunks the node renders at once
	// (serve --workers, 0: API only; worker --concurrency).
	RenderSlots int
	// WorkerName names the node in progress reports.
	WorkerName string
	// Tags are what the node offers jobs' requiredTags (--tags a,b); GPUs
	// the GPUs it renders with (--gpu CUDA:2, once for each type). Its
	// memory is read from the machine.
	Tags []string
	GPUs []farm.GPU
	// GPUAuto (--gpu auto) asks the node's Blender which GPUs Cycles sees
	// instead.
	GPUAuto bool
	// WorkDir is where inputs are unpacked and frames written (worker
	// --work-dir); serve works in DataDir/work.
	WorkDir string
	// WorkerTimeout is how long a worker may go silent before its work is
	// handed to another.
	WorkerTimeout time.Duration
	// ShutdownTimeout is how long a stop waits for running work before
	// handing it back.
	ShutdownTimeout time.Duration
	// OutageTolerance is how long work waits for the database, the bucket
	// or disk space before its job fails.
	OutageTolerance time.Duration
	// DiskReserve is the free space a render node keeps on its work
	// directory's disk: below it, work waits for space.
	DiskReserve int64
	// MaxFailedChunks is how many of a job's chunks may fail before the
	// job fails, rather than being tried on every render node.
	MaxFailedChunks int
	// MaxProjectBytes bounds a project zip's total uncompressed size.
	MaxProjectBytes int64
	// CacheBytes caps the inputs a node keeps from a bucket (worker
	// --cache-bytes; serve keeps the default).
	CacheBytes int64
	// Blenders are the Blenders the node runs (--blender, once for each):
	// executables, or directories that are root file systems with
	// usr/bin/blender inside. None: `blender` on PATH and every root under
	// BlenderRoots.
	Blenders     []string
	BlenderRoots string
	// BlenderThreads runs Blender; BlenderKeepAlive keeps a job's Blender
	// warm between its chunks (0: a Blender per chunk).
	BlenderThreads   int
	BlenderKeepAlive time.Duration
	// BlenderMemoryBytes and BlenderOpenFiles limit each Blender (0: no
	// memory limit; the system's open-file limit).
	BlenderMemoryBytes int64
	BlenderOpenFiles   int
	// FrameTimeout kills a Blender that saves no frame for this long.
	FrameTimeout time.Duration
	// FFmpegBinary makes preview videos.
	FFmpegBinary string
	// SandboxMode (auto, bwrap or none) and BwrapBinary confine Blender
	// and ffmpeg; see package sandbox.
	SandboxMode string
	BwrapBinary string
	// MetricsAddr serves /metrics and /healthz without credentials ("":
	// none).
	MetricsAddr string

	// The API (serve).

	// Addr is where the API listens; PublicURL is the URL clients reach it
	// at (default http://ADDR).
	Addr      string
	PublicURL string
	// AdminToken opens River's UI and /metrics on Addr ("": neither).
	AdminToken     string
	MaxUploadBytes int64
	UploadURLTTL   time.Duration
	DownloadURLTTL time.Duration
	// ServeDownloads sends a bucket's downloads through this server, so
	// that they are counted (the local store's always are).
	ServeDownloads  bool
	UploadRetention time.Duration
	// HistoryRetention is how long an ended job stays in the farm's
	// history before it is removed, files, records and all, its usage
	// kept by day (0: for ever).
	HistoryRetention    time.Duration
	UploadIdleTimeout   time.Duration
	IdleTimeout         time.Duration
	MaxConnections      int
	RateLimit           float64
	RateLimitBurst      int
	WebhookAttempts     int
	WebhookFirstRetry   time.Duration
	WebhookAllowPrivate bool
}

// defaultMetricsAddr is where serve answers /metrics without credentials
// unless told otherwise: loopback, so that only this host's Prometheus
// reaches it, and a fixed port, so that its scrape configuration holds
// across restarts. A second serve on the same host needs another
// --metrics-addr, or "" for none, and says so if it is not given one.
const defaultMetricsAddr = "127.0.0.1:9464"

// DefaultConfig is a process of the role as it runs with no flag given.
// The values are the libraries' own defaults (engine, service, node,
// housekeeping), so the flags and the libraries cannot disagree.
func DefaultConfig(role Role) Config {
	eng, svc, nd, hk := engine.DefaultConfig(), service.DefaultConfig(), node.DefaultConfig(), housekeeping.DefaultConfig()
	c := Config{
		Role:      role,
		Backends:  DefaultBackends(),
		LogFormat: "text",

		RenderSlots:      nd.Slots,
		WorkerName:       nd.WorkerName,
		WorkerTimeout:    hk.WorkerTimeout,
		ShutdownTimeout:  30 * time.Second,
		OutageTolerance:  nd.OutageTolerance,
		DiskReserve:      nd.DiskReserve,
		MaxFailedChunks:  nd.MaxFailedChunks,
		MaxProjectBytes:  blendfile.DefaultZipLimits().MaxTotalBytes,
		CacheBytes:       nd.CacheBytes,
		BlenderRoots:     DefaultBlenderRoots,
		BlenderKeepAlive: time.Minute,
		BlenderOpenFiles: 4096,
		FrameTimeout:     time.Hour,
		FFmpegBinary:     nd.FFmpeg,
		SandboxMode:      string(sandbox.Auto),
		BwrapBinary:      "bwrap",

		Addr:                "127.0.0.1:8080",
		MaxUploadBytes:      svc.MaxUploadBytes,
		UploadURLTTL:        svc.UploadURLTTL,
		DownloadURLTTL:      svc.DownloadURLTTL,
		UploadRetention:     hk.UploadRetention,
		UploadIdleTimeout:   objstore.DefaultTransferIdleTimeout,
		IdleTimeout:         time.Minute,
		RateLimit:           10,
		RateLimitBurst:      20,
		WebhookAttempts:     eng.WebhookAttempts,
		WebhookFirstRetry:   hk.WebhookFirstRetry,
		WebhookAllowPrivate: svc.WebhookAllowPrivate,
	}
	switch role {
	case Serve:
		c.MetricsAddr = defaultMetricsAddr
	case Worker:
		c.WorkDir = filepath.Join(os.TempDir(), "renderfarm-worker")
	}
	return c
}

// RegisterFlags adds the role's flags to fs, each defaulting to c's value
// and setting c's field.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	c.Backends.RegisterFlags(fs)
	fs.StringVar(&c.WorkerName, "worker-name", c.WorkerName, "the name of this machine's worker in progress reports")
	fs.DurationVar(&c.WorkerTimeout, "worker-timeout", c.WorkerTimeout, "how long a worker may go silent before its frames are rendered elsewhere")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, fmt.Sprintf("how long a stop (SIGTERM) lets running chunks finish before handing them to another worker; a second SIGTERM or SIGINT stops at once. Exit status: 0 when the running work finished, %d when the timeout or a second signal cut it short (that work is handed back, nothing is lost)", ExitStoppedByForce))
	fs.DurationVar(&c.OutageTolerance, "outage-tolerance", c.OutageTolerance, "how long running work waits for the database, the bucket or disk space to come back before its job fails (an outage spends none of a chunk's attempts)")
	fs.Func("disk-reserve", fmt.Sprintf("the free space a render node keeps on its work directory's disk: below it, work waits for space as for an outage (default %dMiB; 0: none)", c.DiskReserve>>20), func(s string) error {
		if strings.TrimSpace(s) == "0" {
			c.DiskReserve = 0
			return nil
		}
		return byteSize{&c.DiskReserve}.Set(s)
	})
	fs.IntVar(&c.MaxFailedChunks, "max-failed-chunks", c.MaxFailedChunks, "how many of a job's chunks may fail (on render nodes not set aside for failing) before the job fails: a file that fails everywhere is not tried on every node")
	fs.Func("tags", "tags this node offers jobs that require them (requiredTags), comma-separated: lower-case letters, digits, '-', '_' and '.'", func(s string) error {
		tags, err := farm.ParseTags(s)
		if err != nil {
			return err
		}
		c.Tags = tags
		return nil
	})
	fs.Func("gpu", "a type of GPU this node renders with and how many, TYPE:COUNT (CUDA, OPTIX, HIP, ONEAPI or METAL; e.g. CUDA:2), given once for each type; jobs with that computeDeviceType go only to nodes that have it; auto asks Blender's Cycles which it sees", func(s string) error {
		if strings.TrimSpace(s) == "auto" {
			c.GPUAuto = true
			return nil
		}
		g, err := farm.ParseGPU(s)
		if err != nil {
			return err
		}
		for _, have := range c.GPUs {
			if have.Type == g.Type {
				return fmt.Errorf("GPU type %s is given twice", g.Type)
			}
		}
		c.GPUs = append(c.GPUs, g)
		return nil
	})
	fs.Var(byteSize{&c.MaxProjectBytes}, "max-project-bytes", "the largest total uncompressed size of a project zip (e.g. 20GiB)")
	fs.Var(blenderList{&c.Blenders}, "blender", "a Blender this node runs, given once for each: its executable (an official build: /opt/blender-4.5/blender), or a directory that is a root file system with usr/bin/blender inside (needs bubblewrap); each job renders with the one that opens its file (default: blender on PATH and every root under --blender-roots)")
	fs.StringVar(&c.BlenderRoots, "blender-roots", c.BlenderRoots, "with no --blender, also run every Blender installed as a root file system in a directory here (DIR/NAME/usr/bin/blender)")
	fs.IntVar(&c.BlenderThreads, "blender-threads", c.BlenderThreads, "render threads per Blender process (0: all cores)")
	fs.StringVar(&c.FFmpegBinary, "ffmpeg", c.FFmpegBinary, "the ffmpeg executable for preview videos")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log format: text or json")
	fs.StringVar(&c.SandboxMode, "sandbox", c.SandboxMode, "how Blender and ffmpeg are confined: auto or bwrap (bubblewrap: no network, read-only system, writable only their own directories; the node refuses to start where bubblewrap is missing or does not work), or none (unconfined, logged as a warning at every start)")
	fs.StringVar(&c.BwrapBinary, "bwrap", c.BwrapBinary, "the bubblewrap executable for --sandbox")
	fs.Func("blender-memory-limit", "the memory each Blender process may allocate (its data segment, e.g. 8GiB), and so the most the node offers jobs' minimumRam; 0, the default, sets no limit", func(s string) error {
		if strings.TrimSpace(s) == "0" {
			c.BlenderMemoryBytes = 0
			return nil
		}
		return byteSize{&c.BlenderMemoryBytes}.Set(s)
	})
	fs.IntVar(&c.BlenderOpenFiles, "blender-open-files", c.BlenderOpenFiles, "the most files each Blender process may have open (0: the system's limit)")
	fs.DurationVar(&c.FrameTimeout, "frame-timeout", c.FrameTimeout, "how long Blender may render without saving a frame before it is killed and the chunk retried (0: no limit)")
	fs.DurationVar(&c.BlenderKeepAlive, "blender-keep-alive", c.BlenderKeepAlive, "how long a worker keeps Blender running with a job's file loaded, after validating it or rendering a chunk, for the job's next chunk (0: start Blender for every chunk)")

	switch c.Role {
	case Worker:
		AliasFlag(fs, "name", "worker-name")
		fs.IntVar(&c.RenderSlots, "concurrency", c.RenderSlots, "how many chunks this node renders at once")
		fs.StringVar(&c.WorkDir, "work-dir", c.WorkDir, "where inputs are unpacked and frames written while rendering")
		fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve this node's /metrics (frames it rendered, render seconds) and /healthz at this address, e.g. 0.0.0.0:9100 (empty: none)")
		fs.Var(byteSize{&c.CacheBytes}, "cache-bytes", "how much of the inputs fetched from the bucket this node keeps, by checksum, for later chunks and jobs")
	case Serve:
		fs.StringVar(&c.Addr, "addr", c.Addr, "the address the API listens on")
		fs.IntVar(&c.RenderSlots, "workers", c.RenderSlots, "how many chunks this machine renders at once (0: API only)")
		fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the URL clients reach this server at, used in upload and download URLs (default http://ADDR)")
		fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "serve River's UI at /riverui/ to operators who give this token as their password, and /metrics on --addr to those who send it as \"Authorization: Bearer TOKEN\" (empty: neither)")
		fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "serve /metrics and /healthz without credentials at this address, for a Prometheus on this host (empty: none)")
		fs.Var(byteSize{&c.MaxUploadBytes}, "max-upload-bytes", "the largest file an upload URL accepts (e.g. 5GiB)")
		fs.DurationVar(&c.UploadURLTTL, "upload-url-ttl", c.UploadURLTTL, "how long an upload URL stays valid")
		fs.DurationVar(&c.DownloadURLTTL, "download-url-ttl", c.DownloadURLTTL, "how long a download URL stays valid")
		fs.BoolVar(&c.ServeDownloads, "serve-downloads", c.ServeDownloads, "with --storage: hand out download URLs of this server, which reads them from the bucket, so that usage counts their bytes (bytesTransferred) and clients need not reach the bucket to download; the bytes then pass through the API servers (files in --data-dir are always served so)")
		fs.BoolVar(&c.WebhookAllowPrivate, "webhook-allow-private", c.WebhookAllowPrivate, "let webhooks reach loopback and private addresses (labs and tests only)")
		fs.IntVar(&c.WebhookAttempts, "webhook-attempts", c.WebhookAttempts, "how many times a webhook event is tried, over about a day at the default")
		fs.DurationVar(&c.WebhookFirstRetry, "webhook-first-retry", c.WebhookFirstRetry, "the wait before a webhook event's second attempt; later waits grow from it (x6, x24, x120 …)")
		fs.Float64Var(&c.RateLimit, "rate-limit", c.RateLimit, "POST and DELETE requests per second one API key may send to this server (0: no limit)")
		fs.IntVar(&c.RateLimitBurst, "rate-limit-burst", c.RateLimitBurst, "how many POST and DELETE requests one API key may send at once after a quiet spell")
		fs.DurationVar(&c.UploadRetention, "upload-retention", c.UploadRetention, "how long an upload that no job was made from is kept before its file is removed")
		fs.DurationVar(&c.HistoryRetention, "history-retention", c.HistoryRetention, "how long a job that ended (completed, failed or canceled) is kept, from its last change, before it is removed with its files and records; usage reports still count what it used, by day (0: keep every job for ever; otherwise at least 744h, 31 days)")
		fs.DurationVar(&c.UploadIdleTimeout, "upload-idle-timeout", c.UploadIdleTimeout, "how long an upload to this server may send nothing, or a download from it take nothing, before it is cut (a slow but steady transfer is never cut)")
		fs.DurationVar(&c.IdleTimeout, "idle-timeout", c.IdleTimeout, "how long a kept-alive connection may wait for its next request before it is closed")
		fs.IntVar(&c.MaxConnections, "max-connections", c.MaxConnections, "the most connections open at once; at the cap the one idle longest is closed, or a new one waits (0: half the process's open-file limit)")
	}
}

// ParseConfig is the configuration of a process of the role given its
// command line's args (flags not given are taken from RENDERFARM_NAME
// environment variables, as ParseFlags does), checked with Validate.
func ParseConfig(role Role, args []string, fs *flag.FlagSet) (Config, error) {
	c := DefaultConfig(role)
	c.RegisterFlags(fs)
	if err := ParseFlags(fs, args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate refuses settings a process cannot run with, as usage errors
// that name the flag.
func (c Config) Validate() error {
	switch c.Role {
	case Serve:
		if c.RenderSlots < 0 {
			return fmt.Errorf("%w: --workers must be 0 or more", ErrUsage)
		}
		if c.RateLimit < 0 || c.RateLimitBurst < 1 {
			return fmt.Errorf("%w: --rate-limit must be 0 (no limit) or more, and --rate-limit-burst 1 or more", ErrUsage)
		}
		if c.UploadIdleTimeout <= 0 || c.IdleTimeout <= 0 || c.MaxConnections < 0 {
			return fmt.Errorf("%w: --upload-idle-timeout and --idle-timeout must be positive, --max-connections 0 or more", ErrUsage)
		}
		if c.UploadIdleTimeout > MaxUploadIdleTimeout {
			// An upload's temp file left unwritten for an hour is taken for
			// a killed process's and removed (housekeeping).
			return fmt.Errorf("%w: --upload-idle-timeout (%v) may be at most %v", ErrUsage, c.UploadIdleTimeout, MaxUploadIdleTimeout)
		}
		if c.HistoryRetention != 0 && c.HistoryRetention < housekeeping.MinHistoryRetention {
			return fmt.Errorf("%w: --history-retention (%v) must be 0 (keep every job) or at least %v: a job's budget month, webhook retries and late removals all end well within it", ErrUsage, c.HistoryRetention, housekeeping.MinHistoryRetention)
		}
		if c.ServeDownloads && c.Storage == "" {
			return fmt.Errorf("%w: --serve-downloads is for a bucket (--storage s3://…): the files in --data-dir are always downloaded from this server", ErrUsage)
		}
		if c.UploadRetention <= c.UploadURLTTL {
			// Otherwise a file could be removed while its upload URL still
			// takes it, or before the client had a chance to make a job of it.
			return fmt.Errorf("%w: --upload-retention (%v) must be longer than --upload-url-ttl (%v)", ErrUsage, c.UploadRetention, c.UploadURLTTL)
		}
	case Worker:
		if c.PostgresDSN() == "" || c.Storage == "" {
			return fmt.Errorf("%w: a worker shares the farm's state with the API servers: give --database postgres://… and --storage s3://… (on one machine, `renderfarm serve --workers N` renders by itself)", ErrUsage)
		}
		if c.RenderSlots < 1 {
			return fmt.Errorf("%w: --concurrency must be 1 or more", ErrUsage)
		}
	default:
		return fmt.Errorf("%w: unknown role %q", ErrUsage, c.Role)
	}
	if err := c.checkDatabaseConnections(); err != nil {
		return err
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("%w: --log-format must be text or json, not %q", ErrUsage, c.LogFormat)
	}
	if _, err := sandbox.ParseMode(c.SandboxMode); err != nil {
		return fmt.Errorf("%w: --%v", ErrUsage, err)
	}
	if c.BlenderOpenFiles < 0 || c.FrameTimeout < 0 {
		return fmt.Errorf("%w: --blender-open-files and --frame-timeout cannot be negative", ErrUsage)
	}
	if c.GPUAuto && len(c.GPUs) > 0 {
		return fmt.Errorf("%w: --gpu auto finds the GPUs itself: give it alone, or TYPE:COUNT for each type", ErrUsage)
	}
	if c.BlenderKeepAlive < 0 {
		return fmt.Errorf("%w: --blender-keep-alive cannot be negative", ErrUsage)
	}
	if c.OutageTolerance <= 0 || c.DiskReserve < 0 || c.ShutdownTimeout < 0 {
		return fmt.Errorf("%w: --outage-tolerance must be positive, --disk-reserve and --shutdown-timeout 0 or more", ErrUsage)
	}
	if c.MaxFailedChunks < 1 {
		return fmt.Errorf("%w: --max-failed-chunks must be 1 or more (a job fails once that many of its chunks failed)", ErrUsage)
	}
	return nil
}

// renders reports whether the process runs a render node.
func (c Config) renders() bool { return c.RenderSlots > 0 }

// workDir is where the node works: --work-dir for a worker, the data
// directory's work/ for serve.
func (c Config) workDir() string {
	if c.Role == Worker {
		return c.WorkDir
	}
	return filepath.Join(c.DataDir, "work")
}

// engineConfig is the engine's part of the configuration, but for the
// database, objects and logger, which Run opens.
func (c Config) engineConfig() engine.Config {
	e := engine.DefaultConfig()
	e.PostgresDSN, e.WebhookAttempts = c.PostgresDSN(), c.WebhookAttempts
	e.WorkerTimeout = c.WorkerTimeout
	return e
}

// serviceConfig is the API's part of the configuration.
func (c Config) serviceConfig() service.Config {
	s := service.DefaultConfig()
	s.UploadURLTTL, s.DownloadURLTTL, s.MaxUploadBytes = c.UploadURLTTL, c.DownloadURLTTL, c.MaxUploadBytes
	s.WorkerTimeout, s.LocalRenderSlots = c.WorkerTimeout, c.RenderSlots
	s.WebhookAllowPrivate = c.WebhookAllowPrivate
	return s
}

// nodeConfig is the render node's part of the configuration, but for
// what Blender's runner decides (the sandbox, its run directories).
func (c Config) nodeConfig() node.Config {
	n := node.DefaultConfig()
	n.Slots, n.WorkerName, n.WorkDir = c.RenderSlots, c.WorkerName, c.workDir()
	n.FFmpeg = c.FFmpegBinary
	n.ZipLimits.MaxTotalBytes = c.MaxProjectBytes
	n.HeartbeatInterval = node.HeartbeatInterval(c.WorkerTimeout)
	n.WorkerTimeout = c.WorkerTimeout
	n.CacheBytes = c.CacheBytes
	n.OutageTolerance, n.DiskReserve = c.OutageTolerance, c.DiskReserve
	n.MaxFailedChunks = c.MaxFailedChunks
	n.Tags, n.GPUs = c.Tags, c.GPUs
	n.BlenderThreads = c.BlenderThreads
	return n
}

// housekeepingConfig is the housekeeping's part of the configuration.
func (c Config) housekeepingConfig() housekeeping.Config {
	h := housekeeping.DefaultConfig()
	h.WorkerTimeout, h.UploadRetention, h.UploadURLTTL = c.WorkerTimeout, c.UploadRetention, c.UploadURLTTL
	// Webhooks are delivered by the API servers, so render nodes need no
	// way out to receivers.
	h.DeliverWebhooks = c.Role == Serve
	h.WebhookFirstRetry, h.WebhookAllowPrivate = c.WebhookFirstRetry, c.WebhookAllowPrivate
	return h
}
