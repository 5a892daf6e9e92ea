// Package store keeps the farm's state in SQL: workspaces and API keys,
// uploads, jobs, the tasks that carry out their work, frames and workers.
// River's tables live in the same database, so a status change and the
// River work it implies are committed in one transaction.
//
// The same queries run on SQLite (one machine) and PostgreSQL (several
// API replicas and render nodes); one test suite runs on both.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/renderfarm/renderfarm/internal/outage"
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
// Tx inside a transaction. They are written once, with ? placeholders,
// and run on either database: the dialect rewrites what differs.
type Queries struct {
	q       querier
	dialect Dialect
}

// Store is the farm's database.
//
// On SQLite it holds two pools on the same file: db, the one connection
// that writes (every transaction, every write, and River), and read, a
// few query_only connections that the store's reads outside transactions
// go to. In WAL mode readers neither wait for the writer nor make it
// wait, and each statement reads what was committed before it started:
// reads queue neither behind the writer's transactions nor behind each
// other, and see what a read outside a transaction sees on PostgreSQL,
// where both are one pool.
type Store struct {
	Queries
	db    *sql.DB
	read  *sql.DB
	split *splitQuerier // SQLite only
}

// Tx is a transaction: the farm's queries plus the raw *sql.Tx that River
// inserts its jobs with.
type Tx struct {
	Queries
	tx *sql.Tx
}

// SQL returns the transaction for River's InsertTx.
func (t *Tx) SQL() *sql.Tx { return t.tx }

// Dialect says which database the queries run on, so that callers can
// pick the River driver that matches.
func (q *Queries) Dialect() Dialect { return q.dialect }

// exec, query and queryRow run a query written with ? placeholders in
// the dialect of the database, with times as writeArgs makes them.
func (q *Queries) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return q.q.ExecContext(ctx, q.dialect.rebind(query), writeArgs(args)...)
}

func (q *Queries) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return q.q.QueryContext(ctx, q.dialect.rebind(query), writeArgs(args)...)
}

// queryStrings runs a query of one text column and answers its values,
// in the order it gives them.
func (q *Queries) queryStrings(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func (q *Queries) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	return q.q.QueryRowContext(ctx, q.dialect.rebind(query), writeArgs(args)...)
}

// splitQuerier is the store's querier on SQLite: statements that may
// write (ExecContext) go to the writer, queries to the read pool. Every
// query the store runs outside a transaction is a SELECT; the read pool
// is query_only besides, so a write sent there by mistake fails at once
// instead of racing the writer.
//
// Queries run as prepared statements, kept by their text: SQLite would
// otherwise parse and plan each one anew, which under a stream of
// progress polls was the largest part of what SQLite did. The farm's
// queries are a fixed set of texts with ? placeholders, so the cache
// stays small; maxPrepared bounds it all the same, in case a query text
// ever carries values, and past it queries run unprepared. (On
// PostgreSQL, pgx keeps such a cache of its own on each connection.)
type splitQuerier struct {
	write, read *sql.DB

	mu    sync.RWMutex
	stmts map[string]*sql.Stmt
}

// maxPrepared is how many query texts the read pool keeps prepared: the
// store's reads are a few dozen.
const maxPrepared = 100

func (s *splitQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.write.ExecContext(ctx, query, args...)
}

func (s *splitQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.read.QueryContext(ctx, query, args...)
}

func (s *splitQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := s.prepared(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.read.QueryRowContext(ctx, query, args...)
}

// prepared returns query prepared on the read pool, preparing it the
// first time. database/sql then prepares it on each connection of the
// pool as it first runs there, and keeps it. It is nil when the cache is
// full or preparing failed: the query then runs unprepared, and reports
// its own error if it has one.
func (s *splitQuerier) prepared(ctx context.Context, query string) *sql.Stmt {
	s.mu.RLock()
	st, ok := s.stmts[query]
	full := len(s.stmts) >= maxPrepared
	s.mu.RUnlock()
	if ok || full {
		return st
	}
	// Prepared outside the lock: it waits for a connection, and other
	// queries need not wait for that.
	st, err := s.read.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev, ok := s.stmts[query]; ok || len(s.stmts) >= maxPrepared {
		// Another caller prepared it first, or filled the cache.
		st.Close()
		return prev
	}
	s.stmts[query] = st
	return st
}

// close closes the prepared statements.
func (s *splitQuerier) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for query, st := range s.stmts {
		st.Close()
		delete(s.stmts, query)
	}
}

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

// sqliteReadDSN is the connection string of the read pool: query_only, so
// that nothing written through it can reach the file, and the writer's
// busy timeout, because a reader too may briefly meet a lock (while a
// connection recovers the write-ahead log, for one). It sets no journal
// mode: WAL is recorded in the file by the writer, which opens first, and
// changing it takes a write.
func sqliteReadDSN(path string) string {
	return "file:" + uriPathEscaper.Replace(path) + "?_pragma=busy_timeout(10000)&_query_only=1"
}

// sqliteReaders is how many read connections a SQLite store keeps. SQLite
// here is Go code, so reads are bound by the CPU: a few more connections
// than cores keep every core busy while some wait for the disk, and more
// would only queue inside SQLite instead of in the pool.
func sqliteReaders() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// SQLiteFileMode is the mode of the SQLite database file and of its -wal
// and -shm files: they hold every workspace's jobs, the hashes of the API
// keys and the webhooks' signing secrets, so only the farm's own user may
// read them.
const SQLiteFileMode fs.FileMode = 0o600

// makeSQLiteFilesPrivate creates the database file at path if it is new,
// and gives it and its -wal and -shm files, those that exist, the mode
// SQLiteFileMode, whatever the umask and whatever mode an older version
// left them with. SQLite gives the -wal and -shm files it creates later
// the mode of the database file, so they are private too.
func makeSQLiteFilesPrivate(path string) error {
	// An empty file is an empty SQLite database.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, SQLiteFileMode)
	if err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("open database %s: %w", path, err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(name, SQLiteFileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make the database file %s readable by its owner only (mode %04o): %w", name, SQLiteFileMode, err)
		}
	}
	return nil
}

// OpenSQLite opens (creating if needed) the SQLite database at path and
// brings its schema up to date. The database's files are made readable
// and writable by their owner alone (SQLiteFileMode).
func OpenSQLite(ctx context.Context, path string) (*Store, error) {
	if err := makeSQLiteFilesPrivate(path); err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", SQLiteDSN(path))
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// SQLite has one writer; one connection makes every transaction wait
	// its turn in Go instead of failing with SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	s, err := open(ctx, db, DialectSQLite, path)
	if err != nil {
		return nil, err
	}
	// The readers open once the writer has put the file in WAL mode.
	read, err := sql.Open("sqlite", sqliteReadDSN(path))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	n := sqliteReaders()
	read.SetMaxOpenConns(n)
	// As many idle as open: database/sql keeps 2 by default and would
	// close and reopen the others under load, and opening a connection
	// costs far more than a read (the pragmas, the schema parsed anew).
	read.SetMaxIdleConns(n)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.read = read
	s.split = &splitQuerier{write: db, read: read, stmts: map[string]*sql.Stmt{}}
	s.Queries.q = s.split
	return s, nil
}

// DefaultPostgresConnections is the most connections one process opens to
// PostgreSQL for the farm's queries unless told otherwise (serve's and
// worker's --database-connections): enough for one process's API
// requests, render chunks and River's work at once. It does not grow
// with a worker's --concurrency: a chunk holds a connection only for the
// moment of a statement or transaction, and waits its turn for one in
// the pool when all are busy. River's listener adds one connection (see
// package engine).
const DefaultPostgresConnections = 20

// OpenPostgres connects to the PostgreSQL database at dsn (a postgres://
// URL) with a pool of DefaultPostgresConnections and brings its schema up
// to date. Several processes may open the same database at once: the
// migrations are applied once, by whichever takes the migration lock
// first.
func OpenPostgres(ctx context.Context, dsn string) (*Store, error) {
	return OpenPostgresPool(ctx, dsn, DefaultPostgresConnections)
}

// OpenPostgresPool is OpenPostgres with a pool of at most maxConnections
// connections, which this process never exceeds however much of its work
// runs at once. The server's max_connections must cover this for every
// replica and worker, plus one listener connection each.
func OpenPostgresPool(ctx context.Context, dsn string, maxConnections int) (*Store, error) {
	name := redactDSN(dsn)
	if maxConnections < 1 {
		return nil, fmt.Errorf("open database %s: a pool of %d connections; it needs at least 1", name, maxConnections)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	// A connection PostgreSQL drops without a word (its backend killed,
	// the server crashed, the network cut) must read as the outage it is,
	// not as a bare "unexpected EOF": see outage.DatabaseConn.
	cfg.DialFunc = outage.DatabaseDialer(cfg.DialFunc)
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(maxConnections)
	// Every connection is kept open when idle (until it has been idle for
	// minutes): opening one costs PostgreSQL a process, and a pool that
	// kept half opened and closed connections all through a busy farm's
	// steady load, hundreds a minute on a render node of many slots
	// (docs/performance.md, section 5).
	db.SetMaxIdleConns(maxConnections)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return open(ctx, db, DialectPostgres, name)
}

// open checks that db answers and migrates it; name says which database
// in errors.
func open(ctx context.Context, db *sql.DB, dialect Dialect, name string) (*Store, error) {
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", name, err)
	}
	s := &Store{Queries: Queries{q: db, dialect: dialect}, db: db, read: db}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// redactDSN is the connection string without its password, for errors
// and logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme == "" {
		return "(PostgreSQL)"
	}
	return u.Redacted()
}

// DB returns the database handle, for River's driver. On SQLite it is
// the writer's one connection: River writes through it, and its
// transactions take the write lock when they begin (_txlock=immediate).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks that the database answers a statement, on a connection
// that is good now: a pooled connection the server has since closed is
// replaced, not trusted. Readiness checks and the wait for a database to
// come back use it.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one); err != nil {
		return fmt.Errorf("ping the database: %w", err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error {
	var err error
	if s.split != nil {
		s.split.close()
		err = s.read.Close()
	}
	return errors.Join(s.db.Close(), err)
}

// InTx runs fn in a transaction, committing when it returns nil. Inside fn,
// use only tx: the store's own reads do not see what the transaction has
// written until it commits, and on SQLite a write through the store would
// wait for the connection that the transaction holds.
//
// On PostgreSQL the transaction is READ COMMITTED: each statement sees
// what others committed before it started, and nothing stops another
// transaction from changing a row between a read and a write. A
// transaction that reads a row to decide what to write takes it with
// LockJob or LockTask first.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	return s.inTx(ctx, nil, fn)
}

func (s *Store) inTx(ctx context.Context, opts *sql.TxOptions, fn func(tx *Tx) error) error {
	sqlTx, err := s.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	tx := &Tx{Queries: Queries{q: sqlTx, dialect: s.dialect}, tx: sqlTx}
	// A panic in fn must not leave the transaction open: it would hold
	// a connection (on SQLite the only one), and every later query would
	// wait for it. After a commit this rollback does nothing.
	defer func() { _ = sqlTx.Rollback() }()
	if err := fn(tx); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// migrationLock is the PostgreSQL advisory lock key that migrations hold.
// Advisory locks are per database, so the key only has to differ from
// other locks the farm and River take in the same database.
const migrationLock int64 = 0x72656e6465726661 // "renderfa"

// InMigrationTx runs fn in a transaction that holds the farm's migration
// lock: on PostgreSQL an advisory lock that one transaction at a time may
// hold, on SQLite the write lock every transaction takes. Replicas that
// start together therefore migrate one after the other, and each finds
// what the one before it recorded. River's migrations can run under the
// same lock: rivermigrate's MigrateTx on tx.SQL(), with River's
// database/sql driver.
func (s *Store) InMigrationTx(ctx context.Context, fn func(tx *Tx) error) error {
	var opts *sql.TxOptions
	if s.dialect == DialectPostgres {
		// READ COMMITTED whatever the server's default: each statement
		// after the lock must see what the previous holder committed,
		// which a snapshot taken with the lock statement would not.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return s.inTx(ctx, opts, func(tx *Tx) error {
		if s.dialect == DialectPostgres {
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, migrationLock); err != nil {
				return fmt.Errorf("take the migration lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// migrate applies the embedded migrations of the store's dialect not yet
// recorded, each in its own transaction under the migration lock, in file
// name order. farm_migrations is created under the lock too: PostgreSQL's
// CREATE TABLE IF NOT EXISTS fails, rather than waits, when another
// session creates the same table at the same moment.
func (s *Store) migrate(ctx context.Context) error {
	appliedAt := "DATETIME"
	if s.dialect == DialectPostgres {
		appliedAt = "TIMESTAMPTZ"
	}
	err := s.InMigrationTx(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS farm_migrations (version TEXT PRIMARY KEY, applied_at `+appliedAt+` NOT NULL)`)
		return err
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dir := "migrations/" + string(s.dialect)
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
		err = s.InMigrationTx(ctx, func(tx *Tx) error {
			var n int
			if err := tx.queryRow(ctx, `SELECT COUNT(*) FROM farm_migrations WHERE version = ?`, name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			// Without arguments the statement goes as it is, so a file
			// may hold several statements on both databases.
			if _, err := tx.q.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.exec(ctx, `INSERT INTO farm_migrations (version, applied_at) VALUES (?, ?)`, name, now())
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", name, err)
		}
	}
	return nil
}
