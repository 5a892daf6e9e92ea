package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
	"github.com/renderfarm/renderfarm/internal/testbackends"
)

// The suite runs in a zone other than UTC, so that a time written or read
// back in the process's local zone shows up as a failure.
func TestMain(m *testing.M) {
	time.Local = time.FixedZone("BRT", -3*60*60)
	os.Exit(m.Run())
}

// testDatabase is a fresh, empty database of one dialect, and a way to
// open stores on it; the caller closes each store it opens.
type testDatabase struct {
	dialect store.Dialect
	open    func(ctx context.Context) (*store.Store, error)
}

// forEachDatabase runs test once per database the farm supports, each
// time on a fresh, empty database: SQLite in the test's temporary
// directory, and a new database on the PostgreSQL server that
// RENDERFARM_TEST_POSTGRES names.
func forEachDatabase(t *testing.T, test func(t *testing.T, db testDatabase)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "farm.db")
		test(t, testDatabase{dialect: store.DialectSQLite, open: func(ctx context.Context) (*store.Store, error) {
			return store.OpenSQLite(ctx, path)
		}})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := newPostgresDatabase(t)
		test(t, testDatabase{dialect: store.DialectPostgres, open: func(ctx context.Context) (*store.Store, error) {
			return store.OpenPostgres(ctx, dsn)
		}})
	})
}

// forEachStore runs test once per database the farm supports, each time
// on a fresh store that is closed when the test ends. The store is one
// contract whatever the database, and the tests that use this are its
// conformance suite.
func forEachStore(t *testing.T, test func(t *testing.T, s *store.Store)) {
	t.Helper()
	forEachDatabase(t, func(t *testing.T, db testDatabase) {
		test(t, openStore(t, db))
	})
}

// openStore opens a store on db and closes it when the test ends.
func openStore(t *testing.T, db testDatabase) *store.Store {
	t.Helper()
	s, err := db.open(t.Context())
	if err != nil {
		t.Fatalf("open %s store: %v", db.dialect, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openSQLite(t *testing.T) *store.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "farm.db")
	return openStore(t, testDatabase{dialect: store.DialectSQLite, open: func(ctx context.Context) (*store.Store, error) {
		return store.OpenSQLite(ctx, path)
	}})
}

// newPostgresDatabase creates an empty database for one test and drops it
// when the test ends; it returns the database's URL. Without a server the
// test is skipped, except in CI, which must run both halves.
func newPostgresDatabase(t *testing.T) string {
	t.Helper()
	return testbackends.PostgresDatabase(t, "")
}

// awaitBlocked returns a function that waits until a query on s, started
// after this call, waits for a transaction that holds what it needs: on
// PostgreSQL a row lock, on SQLite the one connection.
func awaitBlocked(t *testing.T, s *store.Store) func() {
	t.Helper()
	waitsBefore := s.DB().Stats().WaitCount
	return func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if s.Dialect() == store.DialectSQLite {
				if s.DB().Stats().WaitCount > waitsBefore {
					return
				}
			} else {
				var waiting int
				err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity
					WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting)
				if err != nil {
					t.Fatalf("look for a blocked query: %v", err)
				}
				if waiting > 0 {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("after 10 s, no query was waiting for the open transaction: nothing it holds kept the other out")
	}
}

func ensureWorkspace(t *testing.T, s *store.Store, name string) store.Workspace {
	t.Helper()
	ws, err := s.EnsureWorkspace(t.Context(), name)
	if err != nil {
		t.Fatalf("EnsureWorkspace(%q): %v", name, err)
	}
	return ws
}

// at is a fixed moment, to the microsecond (what both databases keep), so
// that round trips show whether any precision is lost.
func at(minute int) time.Time {
	return time.Date(2025, 3, 14, 15, minute, 26, 535897000, time.UTC)
}

// newJob is a job just created from an upload.
func newJob(id, workspaceID string, created time.Time) *farm.Job {
	return &farm.Job{
		ID: id, Status: farm.StatusCreated, WorkspaceID: workspaceID, UserID: "key-1",
		CreatedAt: created, UpdatedAt: created, Slug: "slug-" + id,
	}
}

func insertJob(t *testing.T, s *store.Store, j *farm.Job) {
	t.Helper()
	if err := s.InsertJob(t.Context(), j); err != nil {
		t.Fatalf("InsertJob(%s): %v", j.ID, err)
	}
}

func countRows(t *testing.T, s *store.Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

func TestOpeningAgainAppliesMigrationsOnce(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDatabase) {
		s := openStore(t, db)
		ws := ensureWorkspace(t, s, "studio")
		s.Close()

		s = openStore(t, db)
		files, err := filepath.Glob("migrations/" + string(db.dialect) + "/*.sql")
		if err != nil || len(files) == 0 {
			t.Fatalf("no migration files: %v", err)
		}
		if got := countRows(t, s, "farm_migrations"); got != len(files) {
			t.Errorf("farm_migrations has %d rows, want %d: one per migration file, recorded once", got, len(files))
		}
		again, err := s.EnsureWorkspace(t.Context(), "studio")
		if err != nil || again.ID != ws.ID {
			t.Errorf("after reopening, workspace = %+v, %v; want the one made before, %s", again, err, ws.ID)
		}
	})
}

func TestReplicasStartingAtOnceOnPostgresMigrateOnce(t *testing.T) {
	t.Parallel()
	// Several `serve` replicas and workers start together on a new
	// database: each must come up, and each migration be applied once.
	// (SQLite is one process's database: it has no replicas.)
	dsn := newPostgresDatabase(t)
	const replicas = 5
	stores := make([]*store.Store, replicas)
	errs := make([]error, replicas)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range replicas {
		wg.Go(func() {
			start.Wait()
			stores[i], errs[i] = store.OpenPostgres(t.Context(), dsn)
		})
	}
	start.Done()
	wg.Wait()
	for i, s := range stores {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
			continue
		}
		defer s.Close()
	}
	if t.Failed() {
		return
	}
	files, err := filepath.Glob("migrations/postgres/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	if got := countRows(t, stores[0], "farm_migrations"); got != len(files) {
		t.Errorf("farm_migrations has %d rows, want %d: one per migration file, recorded once", got, len(files))
	}
	// Every replica works on the same schema.
	for i, s := range stores {
		if _, err := s.EnsureWorkspace(t.Context(), "studio"); err != nil {
			t.Errorf("replica %d: %v", i, err)
		}
	}
}

func TestDialectNamesTheDatabase(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDatabase) {
		s := openStore(t, db)
		if got := s.Dialect(); got != db.dialect {
			t.Errorf("Dialect() = %q, want %q", got, db.dialect)
		}
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			if got := tx.Dialect(); got != db.dialect {
				t.Errorf("in a transaction, Dialect() = %q, want %q", got, db.dialect)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func TestOpenPostgresDoesNotShowThePasswordInErrors(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Nothing listens on port 1.
	_, err := store.OpenPostgres(ctx, "postgres://farm:s3cret-pw@127.0.0.1:1/renderfarm?connect_timeout=5")
	if err == nil {
		t.Fatal("OpenPostgres of a server that is not there succeeded")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("the error shows the password: %v", err)
	}
}

func TestOpenSQLiteSetsTheConnectionPragmas(t *testing.T) {
	t.Parallel()
	s := openSQLite(t)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"synchronous", "1"}, // NORMAL
	}
	for _, tt := range tests {
		var got string
		if err := s.DB().QueryRowContext(t.Context(), "PRAGMA "+tt.pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", tt.pragma, err)
		}
		if got != tt.want {
			t.Errorf("PRAGMA %s = %s, want %s", tt.pragma, got, tt.want)
		}
	}
}

func TestForeignKeysAreEnforced(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		err := s.InsertJob(t.Context(), newJob("job-1", "no-such-workspace", at(0)))
		if err == nil {
			t.Fatal("a job of a workspace that does not exist was stored")
		}
	})
}

func TestOpenSQLiteKeepsTheDatabaseAtThePathGiven(t *testing.T) {
	t.Parallel()
	// A data directory may have any name; characters that mean something
	// in a URI must not move the database or drop its settings.
	for _, dirName := range []string{"plain", "render farm", "render #2", "what?", "100%", "50%20off"} {
		t.Run(dirName, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), dirName)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "farm.db")
			s, err := store.OpenSQLite(t.Context(), path)
			if err != nil {
				t.Fatalf("OpenSQLite(%q): %v", path, err)
			}
			defer s.Close()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("no database at %q: %v", path, err)
			}
			var mode string
			if err := s.DB().QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
				t.Errorf("journal_mode = %q, %v; want wal", mode, err)
			}
		})
	}
}

func TestInTxCommitsWhenTheFunctionSucceeds(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			ws, err := tx.EnsureWorkspace(t.Context(), "studio")
			if err != nil {
				return err
			}
			return tx.InsertJob(t.Context(), newJob("job-1", ws.ID, at(0)))
		})
		if err != nil {
			t.Fatal(err)
		}
		if got := countRows(t, s, "jobs"); got != 1 {
			t.Errorf("%d jobs after the transaction, want 1", got)
		}
	})
}

func TestInTxRollsBackEverythingWhenTheFunctionFails(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		errStop := errors.New("stop")
		err := s.InTx(t.Context(), func(tx *store.Tx) error {
			ws, err := tx.EnsureWorkspace(t.Context(), "studio")
			if err != nil {
				return err
			}
			if err := tx.InsertJob(t.Context(), newJob("job-1", ws.ID, at(0))); err != nil {
				return err
			}
			if tx.SQL() == nil {
				t.Error("Tx.SQL() is nil; River could not insert in this transaction")
			}
			return errStop
		})
		if !errors.Is(err, errStop) {
			t.Fatalf("InTx returned %v, want the function's error", err)
		}
		for _, table := range []string{"workspaces", "jobs"} {
			if got := countRows(t, s, table); got != 0 {
				t.Errorf("%d rows in %s after a rolled back transaction, want 0", got, table)
			}
		}
	})
}

func TestInTxRollsBackWhenTheFunctionPanicsAndTheStoreStaysUsable(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, s *store.Store) {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("the panic did not reach the caller")
				}
			}()
			_ = s.InTx(t.Context(), func(tx *store.Tx) error {
				if _, err := tx.EnsureWorkspace(t.Context(), "studio"); err != nil {
					return err
				}
				panic("a bug in the caller")
			})
		}()

		// On SQLite the store has one connection: a transaction left open
		// would make this wait forever.
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		var n int
		if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM workspaces`).Scan(&n); err != nil {
			t.Fatalf("the store is stuck after a panic in a transaction: %v", err)
		}
		if n != 0 {
			t.Errorf("%d workspaces after the panic, want 0: the transaction must be rolled back", n)
		}
	})
}

func TestEveryTimeIsKeptInUTCToTheMicrosecond(t *testing.T) {
	t.Parallel()
	// Every time goes in with nanoseconds, in a zone east of UTC (the
	// process's own zone, in these tests, is another one), and must come
	// back as the same instant to the microsecond, in UTC.
	tokyo := time.FixedZone("JST", 9*60*60)
	written := time.Date(2025, 3, 15, 1, 2, 3, 456789123, tokyo)
	want := time.Date(2025, 3, 14, 16, 2, 3, 456789000, time.UTC)
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ctx := t.Context()
		check := func(what string, got time.Time) {
			t.Helper()
			if got.Location() != time.UTC || !got.Equal(want) {
				t.Errorf("%s = %v, want %v", what, got, want)
			}
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		ws := ensureWorkspace(t, s, "studio")

		must(s.InsertAPIKey(ctx, store.APIKey{ID: "key-1", WorkspaceID: ws.ID, Hash: "h", Prefix: "RF-a", CreatedAt: written}))
		key, err := s.APIKeyByHash(ctx, "h")
		must(err)
		check("APIKey.CreatedAt", key.CreatedAt)

		must(s.InsertUpload(ctx, store.Upload{Slug: "slug-1", WorkspaceID: ws.ID, FileName: "a.blend", FileType: "blend",
			ObjectKey: "uploads/slug-1/a.blend", CreatedAt: written, ExpiresAt: written}))
		up, err := s.GetUpload(ctx, ws.ID, "slug-1")
		must(err)
		check("Upload.CreatedAt", up.CreatedAt)
		check("Upload.ExpiresAt", up.ExpiresAt)

		insertJob(t, s, newJob("job-1", ws.ID, written))
		job, err := s.GetJob(ctx, ws.ID, "job-1")
		must(err)
		check("Job.CreatedAt", job.CreatedAt)
		check("Job.UpdatedAt", job.UpdatedAt)
		jobs, _, err := s.ListJobs(ctx, ws.ID, "", 10, 0)
		must(err)
		check("listed Job.CreatedAt", jobs[0].CreatedAt)

		must(s.InsertTask(ctx, store.Task{ID: "task-1", JobID: "job-1", Kind: store.TaskRender, Status: store.TaskQueued,
			Generation: 1, CreatedAt: written, UpdatedAt: written}))
		task, err := s.GetTask(ctx, "task-1")
		must(err)
		check("Task.CreatedAt", task.CreatedAt)
		check("Task.UpdatedAt", task.UpdatedAt)

		must(s.InsertFrame(ctx, store.Frame{JobID: "job-1", Frame: 1, TaskID: "task-1", Status: farm.FrameQueued, UpdatedAt: written}))
		frames, err := s.FramesOfJob(ctx, "job-1")
		must(err)
		check("Frame.UpdatedAt", frames[0].UpdatedAt)

		must(s.InsertWebhook(ctx, store.Webhook{ID: "hook-1", WorkspaceID: ws.ID, URL: "https://example.com/hook",
			Events: []string{"job.completed"}, Secret: "s", CreatedAt: written}))
		hook, err := s.GetWebhook(ctx, ws.ID, "hook-1")
		must(err)
		check("Webhook.CreatedAt", hook.CreatedAt)
		must(s.InsertWebhookEvent(ctx, store.WebhookEvent{ID: "event-1", WebhookID: "hook-1", JobID: "job-1",
			Event: "job.completed", Body: []byte("{}"), State: store.EventPending, CreatedAt: written}))
		event, err := s.GetWebhookEvent(ctx, "event-1")
		must(err)
		check("WebhookEvent.CreatedAt", event.CreatedAt)
		must(s.InsertWebhookAttempt(ctx, store.WebhookAttempt{ID: "attempt-1", EventID: "event-1", WebhookID: "hook-1",
			Attempt: 1, AttemptedAt: written, NextRetryAt: &written}))
		attempts, err := s.ListWebhookAttempts(ctx, "hook-1", 10)
		must(err)
		check("WebhookAttempt.AttemptedAt", attempts[0].AttemptedAt)
		check("WebhookAttempt.NextRetryAt", *attempts[0].NextRetryAt)
	})
}

func TestTimesInOtherZonesSortByTheInstant(t *testing.T) {
	t.Parallel()
	// 15:00 in New York is after 16:00 in London: ordering must go by the
	// instant, not by the text of the time as written.
	newYork := time.FixedZone("EST", -5*60*60)
	forEachStore(t, func(t *testing.T, s *store.Store) {
		ws := ensureWorkspace(t, s, "studio")
		insertJob(t, s, newJob("london-16", ws.ID, time.Date(2025, 3, 14, 16, 0, 0, 0, time.UTC)))
		insertJob(t, s, newJob("new-york-15", ws.ID, time.Date(2025, 3, 14, 15, 0, 0, 0, newYork)))
		insertJob(t, s, newJob("london-17", ws.ID, time.Date(2025, 3, 14, 17, 0, 0, 0, time.UTC)))
		jobs, _, err := s.ListJobs(t.Context(), ws.ID, "", 10, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, j := range jobs {
			ids = append(ids, j.ID)
		}
		if want := []string{"new-york-15", "london-17", "london-16"}; !slices.Equal(ids, want) {
			t.Errorf("ListJobs = %q, want newest first %q", ids, want)
		}
	})
}
