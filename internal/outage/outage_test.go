package outage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	_ "modernc.org/sqlite"

	"github.com/renderfarm/renderfarm/internal/outage"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// Each error here is the real one, met the way the farm meets it: a
// refused connection, a server that cut the connection, a full SQLite file,
// a write to a full device, a bucket that answers 503. The statement and
// object errors beside them are the farm's everyday refusals, which must
// stay what they are.

func TestAnErrorThatIsNoOutageIsNone(t *testing.T) {
	for _, err := range []error{
		nil,
		errors.New("frame 3 failed"),
		context.Canceled,
		fmt.Errorf("render: %w", context.Canceled),
		os.ErrNotExist,
	} {
		if got := outage.Of(err); got != outage.None {
			t.Errorf("Of(%v) = %s, want none", err, got)
		}
	}
	marked := fmt.Errorf("prepare: %w", outage.Errorf(outage.Bucket, "the bucket did not answer within 2s"))
	if got := outage.Of(marked); got != outage.Bucket {
		t.Errorf("Of(%v) = %s, want bucket", marked, got)
	}
}

func TestAFullDiskIsADiskOutage(t *testing.T) {
	f, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	defer f.Close()
	_, err = f.Write([]byte("a frame"))
	if got := outage.Of(fmt.Errorf("store frame 1: %w", err)); got != outage.Disk {
		t.Errorf("Of(%v) = %s, want disk", err, got)
	}
}

func TestAFullSQLiteDatabaseIsADiskOutage(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "full.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, stmt := range []string{`CREATE TABLE frames (n INTEGER PRIMARY KEY, image BLOB)`, `PRAGMA max_page_count = 8`} {
		if _, err := db.Exec(stmt); err != nil {
			t.Fatal(err)
		}
	}
	// The file may grow to 8 pages: the rows run out of room, as on a
	// full disk ("database or disk is full").
	var full error
	for n := 0; n < 100 && full == nil; n++ {
		_, full = db.Exec(`INSERT INTO frames (n, image) VALUES (?, ?)`, n, strings.Repeat("x", 4096))
	}
	if got := outage.Of(full); got != outage.Disk {
		t.Errorf("Of(%v) = %s, want disk", full, got)
	}
	// A constraint the statement broke is the statement's fault.
	_, dup := db.Exec(`INSERT INTO frames (n, image) VALUES (0, '')`)
	if dup == nil || outage.Of(dup) != outage.None {
		t.Errorf("Of(%v) = %s, want none", dup, outage.Of(dup))
	}
}

func TestAPostgreSQLThatDoesNotAnswerIsADatabaseOutage(t *testing.T) {
	port := closedPort(t)
	db, err := sql.Open("pgx", fmt.Sprintf("postgres://postgres@127.0.0.1:%d/renderfarm?sslmode=disable&connect_timeout=5", port))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.PingContext(t.Context())
	if got := outage.Of(fmt.Errorf("claim task: %w", err)); got != outage.Database {
		t.Errorf("Of(%v) = %s, want database", err, got)
	}
}

func TestAPostgreSQLThatCutTheConnectionIsADatabaseOutage(t *testing.T) {
	dsn := testbackends.PostgresDatabase(t, "")
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	victim, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	var pid int
	if err := victim.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// What a server shutting down does to every session.
	if _, err := db.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	_, cut := victim.ExecContext(ctx, `SELECT 1`)
	if cut == nil {
		t.Fatal("a terminated session still answered")
	}
	if got := outage.Of(cut); got != outage.Database {
		t.Errorf("Of(%v) = %s, want database", cut, got)
	}
	// A statement the server refuses is the statement's fault.
	_, bad := db.ExecContext(ctx, `SELECT * FROM no_such_table`)
	if got := outage.Of(bad); bad == nil || got != outage.None {
		t.Errorf("Of(%v) = %s, want none", bad, got)
	}
}

func TestABucketThatDoesNotAnswerIsABucketOutage(t *testing.T) {
	core := s3Client(t, fmt.Sprintf("127.0.0.1:%d", closedPort(t)))
	_, err := core.StatObject(t.Context(), "farm", "jobs/1/frames/frame_0001.png", minio.StatObjectOptions{})
	if got := outage.Of(fmt.Errorf("objstore: stat: %w", err)); got != outage.Bucket {
		t.Errorf("Of(%v) = %s, want bucket", err, got)
	}
}

func TestABucketThatAnswers5xxIsABucketOutageAnd4xxIsNot(t *testing.T) {
	for _, tt := range []struct {
		status int
		code   string
		want   outage.Part
	}{
		{http.StatusServiceUnavailable, "ServiceUnavailable", outage.Bucket},
		{http.StatusInternalServerError, "InternalError", outage.Bucket},
		{http.StatusForbidden, "AccessDenied", outage.None},
		{http.StatusNotFound, "NoSuchKey", outage.None},
	} {
		t.Run(tt.code, func(t *testing.T) {
			addr := s3Answering(t, tt.status, tt.code)
			_, err := s3Client(t, addr).PutObject(t.Context(), "farm", "jobs/1/frames/frame_0001.png", strings.NewReader("png"), 3, "", "", minio.PutObjectOptions{})
			if err == nil {
				t.Fatal("the put succeeded")
			}
			if got := outage.Of(err); got != tt.want {
				t.Errorf("Of(%v) = %s, want %s", err, got, tt.want)
			}
		})
	}
}

func s3Client(t *testing.T, host string) *minio.Core {
	t.Helper()
	core, err := minio.NewCore(host, &minio.Options{
		Creds: credentials.NewStaticV4("key", "secret", ""), Region: "us-east-1",
		BucketLookup: minio.BucketLookupPath, MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return core
}

// s3Answering serves every request with an S3 error of the status and
// code, as a bucket's server does, and answers its address.
func s3Answering(t *testing.T, status int, code string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message></Error>`, code, code)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// closedPort is a loopback port nothing listens on: connecting to it is
// refused at once.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestTheAnswerOfAnOutage(t *testing.T) {
	if got := outage.Unavailable(outage.Database); got != http.StatusServiceUnavailable {
		t.Errorf("database: %d, want 503", got)
	}
	if got := outage.Unavailable(outage.Bucket); got != http.StatusServiceUnavailable {
		t.Errorf("bucket: %d, want 503", got)
	}
	if got := outage.Unavailable(outage.Disk); got != http.StatusInsufficientStorage {
		t.Errorf("disk: %d, want 507", got)
	}
}

// TestABrokenPipeOrATruncatedFileIsNoOutage: Blender or ffmpeg dying
// breaks the pipe the node writes to, and a truncated archive ends early;
// neither is the database's doing.
func TestABrokenPipeOrATruncatedFileIsNoOutage(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	_, broken := w.Write([]byte("render 1 2 3\n"))
	w.Close()
	truncated := fmt.Errorf("read project.zip: %w", io.ErrUnexpectedEOF)
	for _, err := range []error{broken, truncated} {
		if err == nil {
			t.Fatal("the write to a closed pipe succeeded")
		}
		if got := outage.Of(err); got != outage.None {
			t.Errorf("Of(%v) = %s, want none", err, got)
		}
	}
}

// TestAConnectionDroppedWithoutAWordIsADatabaseOutage: PostgreSQL's side
// of a connection goes away mid-statement without an error message (its
// backend killed, the server crashed, the network or a proxy dropped
// it). pgx reports a statement with arguments, a row being read or a
// transaction's statement cut so as a bare "unexpected EOF"; the store's
// connections (outage.DatabaseConn) make each an outage of the database.
// What follows on the dead connections is one too: the commit of the
// transaction, the next statement. And a reset rather than a FIN.
func TestAConnectionDroppedWithoutAWordIsADatabaseOutage(t *testing.T) {
	dsn := testbackends.PostgresDatabase(t, "")
	for _, reset := range []bool{false, true} {
		name := map[bool]string{false: "FIN", true: "reset"}[reset]
		t.Run(name, func(t *testing.T) {
			target, err := testbackends.HostOf(dsn)
			if err != nil {
				t.Fatal(err)
			}
			proxy := testbackends.NewCuttingProxy(t, target)
			through, err := proxy.Through(dsn)
			if err != nil {
				t.Fatal(err)
			}
			s, err := store.OpenPostgres(t.Context(), through)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := t.Context()

			conn, err := s.DB().Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			tx, err := s.DB().BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback()
			row, inTx, rows := make(chan error, 1), make(chan error, 1), make(chan error, 1)
			go func() {
				var slept string
				row <- conn.QueryRowContext(ctx, `SELECT pg_sleep($1)::text`, 30).Scan(&slept)
			}()
			go func() {
				_, err := tx.ExecContext(ctx, `SELECT pg_sleep($1)`, 30)
				inTx <- err
			}()
			go func() {
				r, err := s.DB().QueryContext(ctx, `SELECT g, pg_sleep(0.5) FROM generate_series(1, 60) g`)
				if err != nil {
					rows <- err
					return
				}
				defer r.Close()
				for r.Next() {
				}
				rows <- r.Err()
			}()
			// The three statements run when the connections drop.
			until(t, func() bool {
				var n int
				err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%pg_sleep(%' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&n)
				return err == nil && n == 3
			})
			proxy.Cut(reset)

			shapes := map[string]error{"a row's statement cut short": <-row, "a transaction's statement cut short": <-inTx, "rows cut short": <-rows}
			_, shapes["the next statement on the dropped connection"] = conn.ExecContext(ctx, `SELECT $1::int`, 1)
			shapes["the commit of the transaction"] = tx.Commit()
			for what, err := range shapes {
				if err == nil {
					t.Errorf("%s succeeded", what)
					continue
				}
				if got := outage.Of(fmt.Errorf("record frame 3: %w", err)); got != outage.Database {
					t.Errorf("%s: Of(%T %v) = %s, want database", what, err, err, got)
				}
			}
			// The pool replaces the dropped connections: the store works on.
			if err := s.Ping(ctx); err != nil {
				t.Errorf("the store after the drop: %v", err)
			}
		})
	}
}

// TestAServerThatHangsUpAtStartIsADatabaseOutage: the server (or what
// stands in its place) accepts the connection and closes it before
// answering the start-up: pgx's "failed to receive message".
func TestAServerThatHangsUpAtStartIsADatabaseOutage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, err = store.OpenPostgres(t.Context(), fmt.Sprintf("postgres://postgres@%s/renderfarm?sslmode=disable&connect_timeout=5", l.Addr()))
	if err == nil || !strings.Contains(err.Error(), "failed to receive message") {
		t.Fatalf("open a database that hangs up at start: %v; want pgx's failed to receive message", err)
	}
	if got := outage.Of(err); got != outage.Database {
		t.Errorf("Of(%v) = %s, want database", err, got)
	}
}

// TestWhatPostgreSQLSaysAsItEndsASessionIsADatabaseOutage: the error
// codes PostgreSQL sends as it ends or refuses sessions for its own
// reasons are outages; those of a statement it refuses are not.
func TestWhatPostgreSQLSaysAsItEndsASessionIsADatabaseOutage(t *testing.T) {
	for code, want := range map[string]outage.Part{
		"57P01": outage.Database, // terminating connection due to administrator command
		"57P02": outage.Database, // terminating connection because of crash of another server process
		"57P03": outage.Database, // the database system is starting up
		"53300": outage.Database, // too many connections
		"08006": outage.Database, // connection failure
		"42P01": outage.None,     // undefined table
		"23505": outage.None,     // unique violation
		"40001": outage.None,     // serialization failure: the caller's transaction to run again
	} {
		err := fmt.Errorf("claim task: %w", &pgconn.PgError{Severity: "FATAL", Code: code})
		if got := outage.Of(err); got != want {
			t.Errorf("Of(SQLSTATE %s) = %s, want %s", code, got, want)
		}
	}
}

// until waits, for up to 10 s, until cond holds.
func until(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("not within 10 s")
		}
	}
}
