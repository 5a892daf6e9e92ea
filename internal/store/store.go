// Package store keeps the farm's state in SQL: workspaces and API keys,
// uploads, jobs, the tasks that carry out their work, frames and workers.
// River's tables live in the same database, so a status change and the
// River work it implies are committed in one transaction.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound is returned when a row does not exist (or belongs to another
// workspace, which callers must not be able to tell apart).
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a write lost a race, such as a slug claimed
// twice or a task whose generation moved on.
var ErrConflict = errors.New("conflict")

//go:embed migrations
var migrations embed.FS

// querier is what *sql.DB and *sql.Tx have in common, so every query runs
// the same inside a transaction or outside one.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// Queries holds every query of the farm. Store runs them on the database,
// Tx inside a transaction.
type Queries struct {
	q querier
}

// Store is the farm's database.
type Store struct {
	Queries
	db *sql.DB
}

// Tx is a transaction: the farm's queries plus the raw *sql.Tx that River
// inserts its jobs with.
type Tx struct {
	Queries
	tx *sql.Tx
}

// SQL returns the transaction for River's InsertTx.
func (t *Tx) SQL() *sql.Tx { return t.tx }

// SQLiteDSN returns the connection string that River and the farm share on
// one SQLite file: WAL so readers never wait for the writer, a busy timeout
// so River's maintenance never fails on a lock, and immediate transactions
// so a read-then-write transaction cannot deadlock with another.
//
// The path is escaped as a URI path: a '?' or '#' in it would otherwise
// end the path, and a '%' start an escape, opening another file without
// these settings.
func SQLiteDSN(path string) string {
	return "file:" + uriPathEscaper.Replace(path) + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)&_txlock=immediate"
}

var uriPathEscaper = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// OpenSQLite opens (creating if needed) the SQLite database at path and
// brings its schema up to date.
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// SQLite has one writer; one connection makes every transaction wait
	// its turn in Go instead of failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{Queries: Queries{q: db}, db: db}
	if err := s.migrate(ctx, "migrations/sqlite"); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// DB returns the database handle, for River's driver.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// InTx runs fn in a transaction, committing when it returns nil. Inside fn,
// use only tx: the store's own handle would wait for the connection that
// the transaction holds.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{Queries: Queries{q: sqlTx}, tx: sqlTx}
	// A panic in fn must not leave the transaction open: it would hold
	// the only connection, and every later query would wait forever.
	// After a commit this rollback does nothing.
	defer func() { _ = sqlTx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// migrate applies the embedded migrations not yet recorded, each in its
// own transaction, in file name order.
func (s *Store) migrate(ctx context.Context, dir string) error {
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS farm_migrations (version TEXT PRIMARY KEY, applied_at DATETIME NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".sql") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, name := range names {
		body, err := fs.ReadFile(migrations, dir+"/"+name)
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		err = s.InTx(ctx, func(tx *Tx) error {
			var n int
			if err := tx.q.QueryRowContext(ctx, `SELECT COUNT(*) FROM farm_migrations WHERE version = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.q.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.q.ExecContext(ctx, `INSERT INTO farm_migrations (version, applied_at) VALUES (?, ?)`, name, time.Now().UTC())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}
