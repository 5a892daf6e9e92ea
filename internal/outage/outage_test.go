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

	_ "github.com/jackc/pgx/v5/stdlib"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	_ "modernc.org/sqlite"

	"github.com/renderfarm/renderfarm/internal/outage"
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
