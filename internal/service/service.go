// Package service carries out the API's use cases: uploads, jobs and the
// requests that move them (validate, render, cancel, delete), progress,
// downloads, logs, webhooks and API keys. It implements httpapi.Farm.
//
// It decides what a request may do and records it, with the work it
// implies, in one transaction through the engine: the work itself is done
// by render nodes (package node) and by the farm's housekeeping. A server
// that renders nothing (serve --workers 0) runs the service alone.
package service

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/google/uuid"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/metrics"
	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/webhook"
)

// Config sets the service's limits.
type Config struct {
	// UploadURLTTL is how long an upload URL stays valid.
	UploadURLTTL time.Duration
	// DownloadURLTTL is how long a download URL stays valid.
	DownloadURLTTL time.Duration
	// MaxUploadBytes refuses jobs made from larger files. The local store
	// refuses them while they stream in; a bucket's presigned PUT cannot,
	// so the size is checked again when the job is created.
	MaxUploadBytes int64
	// MaxUnusedUploads is how many uploads no job was made from a
	// workspace may hold; POST /uploads past it is refused.
	MaxUnusedUploads int
	// MaxFramesInProgress is how many frames a workspace's jobs in
	// progress may have; a render or a retry past it is refused.
	MaxFramesInProgress int
	// MaxDownloadFiles is how many files one answer of a job's downloads
	// lists without being asked for a page of them.
	MaxDownloadFiles int
	// WorkerTimeout is how long a worker may go without a heartbeat before
	// it no longer counts among the workers a render is spread over.
	WorkerTimeout time.Duration
	// LocalRenderSlots is how many chunks this process renders at once
	// (serve --workers): a render request is spread over them. With none,
	// it is spread over the render nodes that are alive.
	LocalRenderSlots int
	// WebhookAllowPrivate lets webhooks reach loopback and private
	// addresses: for labs and tests, never for a farm on a shared network.
	WebhookAllowPrivate bool
	// Resolver resolves webhook hosts; nil is the system's.
	Resolver webhook.Resolver
	// Metrics receives the counters the service moves; nil keeps none.
	Metrics *metrics.Metrics
}

// DefaultConfig is the service the command line's flags default to.
func DefaultConfig() Config {
	return Config{
		UploadURLTTL:        engine.DefaultUploadURLTTL,
		DownloadURLTTL:      time.Hour,
		MaxUploadBytes:      objstore.DefaultMaxUploadBytes,
		MaxUnusedUploads:    farm.MaxUnusedUploadsPerWorkspace,
		MaxFramesInProgress: farm.MaxFramesInProgressPerWorkspace,
		MaxDownloadFiles:    farm.MaxDownloadFiles,
		WorkerTimeout:       engine.DefaultWorkerTimeout,
		LocalRenderSlots:    1,
	}
}

// Service is the farm as the API sees it.
type Service struct {
	cfg     Config
	engine  *engine.Engine
	store   *store.Store
	objects objstore.Store
	log     *slog.Logger
	// makeJobTx runs the transaction that makes a job (the store's
	// InTx); a test's loses the answer of one that committed.
	makeJobTx func(ctx context.Context, fn func(tx *store.Tx) error) error
}

// New makes the service on the engine.
func New(eng *engine.Engine, cfg Config) *Service {
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	// A Config written out without the limit would refuse every upload.
	if cfg.MaxUnusedUploads <= 0 {
		cfg.MaxUnusedUploads = farm.MaxUnusedUploadsPerWorkspace
	}
	if cfg.MaxFramesInProgress <= 0 {
		cfg.MaxFramesInProgress = farm.MaxFramesInProgressPerWorkspace
	}
	if cfg.MaxDownloadFiles <= 0 {
		cfg.MaxDownloadFiles = farm.MaxDownloadFiles
	}
	return &Service{cfg: cfg, engine: eng, store: eng.Store(), objects: eng.Objects(), log: eng.Logger(), makeJobTx: eng.Store().InTx}
}

// loadJob finds a job of the principal's workspace, as a 404 otherwise,
// with get: the store's GetJob to read it, or a transaction's LockJob to
// act on it (on PostgreSQL its row then stays locked until the
// transaction ends, so two requests, or a request and a worker, cannot
// both act on what they read).
func (s *Service) loadJob(ctx context.Context, p farm.Principal, id string, get func(ctx context.Context, workspaceID, id string) (*farm.Job, error)) (*farm.Job, error) {
	if _, err := uuid.Parse(id); err != nil {
		return nil, farm.NotFound("job", id)
	}
	job, err := get(ctx, p.WorkspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, farm.NotFound("job", id)
	}
	return job, err
}

// present fills in what a job shows but does not store: its preview URL.
func (s *Service) present(ctx context.Context, job *farm.Job) *farm.Job {
	job.PreviewURL = nil
	if job.Files.PreviewKey != "" && !job.Output.IsDeletedForClient {
		url, _, err := s.objects.PresignGet(ctx, job.Files.PreviewKey, s.cfg.DownloadURLTTL, farm.DownloadName(job.Files.PreviewKey))
		if err == nil {
			job.PreviewURL = &url
		}
	}
	return job
}

// maxInputBytes is the largest upload a job is made from.
func (s *Service) maxInputBytes() int64 {
	if s.cfg.MaxUploadBytes > 0 {
		return s.cfg.MaxUploadBytes
	}
	return objstore.DefaultMaxUploadBytes
}
