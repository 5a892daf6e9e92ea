// Package outage tells the failures of the farm's own parts from every
// other error: the database that does not answer, the bucket that does
// not answer or answers 5xx, a disk that is full. Such a failure says
// nothing about the job, the file or the request that met it; it passes.
// A render node waits it out instead of spending the chunk's attempts on
// it, and the API answers 503 or 507 instead of 500.
//
// Of is the one place where an error is classified; everything that
// decides how to treat an outage asks it.
package outage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/minio/minio-go/v7"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// Part is the part of the farm an outage is of.
type Part int

// The parts of the farm that can be out. None is an error that is not an
// outage.
const (
	None Part = iota
	// Database: PostgreSQL does not answer, refuses connections, or shut
	// down the connection in use.
	Database
	// Bucket: the object store's server does not answer, or answers with
	// a server error (5xx).
	Bucket
	// Disk: a local file system, the work directory's or the SQLite
	// database's, is full.
	Disk
)

// String names the part for logs and metric labels.
func (p Part) String() string {
	switch p {
	case Database:
		return "database"
	case Bucket:
		return "bucket"
	case Disk:
		return "disk"
	}
	return "none"
}

// Error marks err as an outage of Part, for an error that Of could not
// tell by itself: a check of free space, a probe that timed out.
type Error struct {
	Part Part
	Err  error
}

func (e *Error) Error() string { return e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// Of answers which part of the farm err says is out, or None.
//
// Cancellation is never an outage: it is the caller's own decision. The
// order of the checks matters where one error could be read two ways: a
// network error inside a *url.Error comes from an HTTP client, which in
// the farm's paths is the bucket's; the other network errors come from
// the database's driver.
func Of(err error) Part {
	if err == nil || errors.Is(err, context.Canceled) {
		return None
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Part
	}
	if diskFull(err) {
		return Disk
	}
	if resp, ok := errors.AsType[minio.ErrorResponse](err); ok {
		if resp.StatusCode >= 500 || resp.Code == "SlowDown" || resp.Code == "ServiceUnavailable" {
			return Bucket
		}
		return None
	}
	if _, ok := errors.AsType[*url.Error](err); ok {
		// The HTTP client could not reach the bucket, or the connection
		// broke: there was no answer to judge.
		return Bucket
	}
	if databaseDown(err) {
		return Database
	}
	return None
}

// Is reports whether err is an outage of any part.
func Is(err error) bool { return Of(err) != None }

// diskFull reports a file system with no space left, as the kernel says
// it (ENOSPC, EDQUOT) or as SQLite does (SQLITE_FULL, "database or disk
// is full").
func diskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	if se, ok := errors.AsType[*sqlite.Error](err); ok {
		return se.Code()&0xff == sqlite3.SQLITE_FULL
	}
	return false
}

// PostgreSQL's error classes and codes that mean the server, not the
// statement, is the trouble: class 08 (connection exception), 53300 (too
// many connections), 57P01-57P03 (shut down by an administrator, by a
// crash, or not yet accepting connections).
func postgresDown(code string) bool {
	switch {
	case strings.HasPrefix(code, "08"):
		return true
	case code == "53300", code == "57P01", code == "57P02", code == "57P03":
		return true
	}
	return false
}

// databaseDown reports an error of the database's driver that says the
// server did not answer or went away, rather than refusing a statement.
// The shapes pgx and database/sql give a connection that fails or drops:
//
//   - *pgconn.ConnectError: no connection could be made (refused, timed
//     out, or the server hung up during the start-up, "failed to receive
//     message");
//   - *pgconn.PgError of class 08, or 57P01-57P03, 53300: the server says
//     it ends the session (pg_terminate_backend, a shutdown, a crash of
//     another backend) or takes no more;
//   - driver.ErrBadConn, sql.ErrConnDone, pgconn.ErrConnClosed ("conn
//     closed"), and pgconn's errors that are safe to retry or timeouts: a
//     connection pgx had already found dead, used again;
//   - a *net.OpError, ECONNREFUSED, ECONNRESET: the socket failed;
//   - the end of the connection read mid-message, which pgx answers as a
//     bare io.ErrUnexpectedEOF (a backend killed, a server crashed, a
//     proxy or the network dropped the connection): DatabaseConn marks it
//     as an *Error of Database where it is read, since a bare
//     io.ErrUnexpectedEOF is also a truncated file's error, which is none.
func databaseDown(err error) bool {
	if _, ok := errors.AsType[*pgconn.ConnectError](err); ok {
		return true
	}
	if pe, ok := errors.AsType[*pgconn.PgError](err); ok {
		return postgresDown(pe.Code)
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || errors.Is(err, pgconn.ErrConnClosed) ||
		pgconn.Timeout(err) || pgconn.SafeToRetry(err) {
		return true
	}
	// Errors of sockets only: a pipe to Blender or ffmpeg that breaks
	// (EPIPE), or a truncated file read (io.ErrUnexpectedEOF), is not the
	// database's.
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	return false
}

// ErrDatabaseHungUp is the error of a read from the database's
// connection that met its end: PostgreSQL's side went away without a
// word. It wraps io.ErrUnexpectedEOF, which is what pgx would report.
var ErrDatabaseHungUp = fmt.Errorf("the database closed the connection: %w", io.ErrUnexpectedEOF)

// DatabaseConn wraps a network connection to the database so that its end
// is told for what it is: a read that meets the end of the connection
// answers an outage of the database (ErrDatabaseHungUp, marked Database)
// where the connection would answer io.EOF, and pgx would pass that on as
// a bare io.ErrUnexpectedEOF that Of cannot tell from a truncated file's.
// Everything else, deadlines included, is the connection's own. Install
// it under pgx's TLS, in pgconn.Config.DialFunc (see DatabaseDialer).
func DatabaseConn(conn net.Conn) net.Conn { return &databaseConn{Conn: conn} }

type databaseConn struct{ net.Conn }

func (c *databaseConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == io.EOF {
		err = &Error{Part: Database, Err: ErrDatabaseHungUp}
	}
	return n, err
}

// DialFunc is how pgx opens a network connection (pgconn.DialFunc).
type DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// DatabaseDialer is dial, whose connections are DatabaseConns.
func DatabaseDialer(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return DatabaseConn(conn), nil
	}
}

// RetryAfter is what an API server tells a client to wait, in the
// Retry-After header, before sending a request that met an outage again:
// long enough not to hammer a recovering database, short enough that a
// restart of it is noticed quickly.
const RetryAfter = 5 * time.Second

// Unavailable is the HTTP status an outage of part is answered with: 507
// when the disk is full (the request may work once space is freed), 503
// otherwise.
func Unavailable(part Part) int {
	if part == Disk {
		return http.StatusInsufficientStorage
	}
	return http.StatusServiceUnavailable
}

// Describe says, in words for a client, what is out: "the farm's
// database", "the farm's file store", "disk space". It names no address or
// path of the farm.
func Describe(part Part) string {
	switch part {
	case Database:
		return "the farm's database"
	case Bucket:
		return "the farm's file store"
	case Disk:
		return "disk space"
	}
	return "a part of the farm"
}

// Errorf is an outage of part whose message is the format's.
func Errorf(part Part, format string, args ...any) error {
	return &Error{Part: part, Err: fmt.Errorf(format, args...)}
}
