package app

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/objstore"
	"github.com/renderfarm/renderfarm/internal/store"
)

// Backends are where the farm keeps its state: a SQLite database and a
// directory of objects under DataDir (one machine), or PostgreSQL and an
// S3-compatible bucket (several machines). Every command that touches the
// farm's state takes the same three flags.
type Backends struct {
	// DataDir holds the SQLite database, the local objects and, for
	// serve, the work files.
	DataDir string
	// Database is a PostgreSQL URL; "" is SQLite in DataDir.
	Database string
	// Storage is an S3 bucket (s3://BUCKET?endpoint=URL&region=R); "" is
	// files in DataDir.
	Storage string
	// DatabaseConnections is the most connections this process opens to
	// PostgreSQL for its queries (River's listener adds one), whatever its
	// --concurrency: the farm's total is its processes times this.
	DatabaseConnections int
}

// MaxDatabaseConnections bounds --database-connections: more than a
// PostgreSQL server's max_connections is ever set to is a mistake.
const MaxDatabaseConnections = 1000

// DefaultBackends keep everything in ./renderfarm-data.
func DefaultBackends() Backends {
	return Backends{DataDir: "./renderfarm-data", DatabaseConnections: store.DefaultPostgresConnections}
}

// RegisterFlags adds --data-dir, --database and --storage to fs, with b's
// values as their defaults.
func (b *Backends) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&b.DataDir, "data-dir", b.DataDir, "where the SQLite database, local objects and work files live")
	fs.StringVar(&b.Database, "database", b.Database, "a PostgreSQL URL (postgres://user:pass@host/db); empty: SQLite in --data-dir")
	fs.StringVar(&b.Storage, "storage", b.Storage, "an S3 bucket (s3://BUCKET?endpoint=URL&region=R, credentials from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY); empty: files in --data-dir")
	fs.IntVar(&b.DatabaseConnections, "database-connections", b.DatabaseConnections, fmt.Sprintf("the most connections this process opens to PostgreSQL, whatever its --concurrency (plus 1 for River's listener; 1 to %d)", MaxDatabaseConnections))
}

// checkDatabaseConnections refuses a pool size out of range.
func (b Backends) checkDatabaseConnections() error {
	if b.DatabaseConnections < 1 || b.DatabaseConnections > MaxDatabaseConnections {
		return fmt.Errorf("%w: --database-connections is %d; give 1 to %d", ErrUsage, b.DatabaseConnections, MaxDatabaseConnections)
	}
	return nil
}

// PostgresDSN is the database URL when the farm is on PostgreSQL.
func (b Backends) PostgresDSN() string {
	if strings.HasPrefix(b.Database, "postgres://") || strings.HasPrefix(b.Database, "postgresql://") {
		return b.Database
	}
	return ""
}

// OpenStore opens the farm's database and brings its schema up to date.
func (b Backends) OpenStore(ctx context.Context) (*store.Store, error) {
	switch {
	case b.Database == "":
		if err := mkdirData(b.DataDir); err != nil {
			return nil, err
		}
		return store.OpenSQLite(ctx, filepath.Join(b.DataDir, "renderfarm.db"))
	case b.PostgresDSN() != "":
		if err := b.checkDatabaseConnections(); err != nil {
			return nil, err
		}
		return store.OpenPostgresPool(ctx, b.Database, b.DatabaseConnections)
	}
	return nil, fmt.Errorf("%w: --database must be a postgres:// URL (or empty for SQLite in --data-dir)", ErrUsage)
}

// localObjects configures the local object store, whose presigned URLs
// this process serves; a bucket has its own.
type localObjects struct {
	// publicURL is what its URLs start with.
	publicURL string
	// maxUpload caps what an upload URL takes (0: objstore's default).
	maxUpload int64
	// transferIdle cuts an upload or download that moves no bytes for
	// this long (0: objstore's default).
	transferIdle time.Duration
	// acceptPut says whether an upload URL may still write its object
	// (nil: while its signature is good).
	acceptPut func(ctx context.Context, key string, size int64, store func() error) error
	// putFailed sets right what acceptPut recorded of a PUT that then
	// stored nothing (nil: nothing to set right).
	putFailed func(ctx context.Context, key string, stored func() (int64, error)) error
	// served counts what a download URL sent (nil: nothing is counted).
	served func(ctx context.Context, key string, bytes int64) error
}

// openObjects opens the object store. For the local store it also returns
// the handler that serves its presigned URLs; an S3 bucket serves its own.
func (b Backends) openObjects(ctx context.Context, opts localObjects, log *slog.Logger) (objstore.Store, http.Handler, func(), error) {
	if b.Storage == "" {
		if err := mkdirData(b.DataDir); err != nil {
			return nil, nil, nil, err
		}
		secret, err := objstore.LoadOrCreateSecret(filepath.Join(b.DataDir, "url-signing.key"))
		if err != nil {
			return nil, nil, nil, err
		}
		local, err := objstore.NewLocal(objstore.LocalConfig{
			Dir: filepath.Join(b.DataDir, "objects"), BaseURL: opts.publicURL, Secret: secret,
			MaxUploadBytes: opts.maxUpload, TransferIdleTimeout: opts.transferIdle, AcceptPut: opts.acceptPut, PutFailed: opts.putFailed, Served: opts.served, Log: log,
		})
		if err != nil {
			return nil, nil, nil, err
		}
		return local, local.Handler(), func() { local.Close() }, nil
	}
	if !strings.HasPrefix(b.Storage, "s3://") {
		return nil, nil, nil, fmt.Errorf("%w: --storage must be an s3:// URL (or empty for files in --data-dir)", ErrUsage)
	}
	cfg, err := objstore.ParseS3URL(b.Storage)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: --storage: %v", ErrUsage, err)
	}
	s3, err := objstore.NewS3(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	return s3, nil, func() {}, nil
}

// dataDirMode is the mode of --data-dir: it holds the database and the
// key that signs upload and download URLs, so only the farm's own user may
// enter it.
const dataDirMode = 0o700

// mkdirData creates the data directory, or tightens one that exists (made
// by hand, by an older version, or by systemd's StateDirectory=), to
// dataDirMode, whatever the umask.
func mkdirData(dir string) error {
	if err := os.MkdirAll(dir, dataDirMode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	info, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if info.Mode().Perm() != dataDirMode {
		if err := os.Chmod(dir, dataDirMode); err != nil {
			return fmt.Errorf("data directory %s is open to other users (mode %04o) and could not be made the farm's alone: %w; chmod 700 it, or choose another --data-dir", dir, info.Mode().Perm(), err)
		}
	}
	return nil
}
