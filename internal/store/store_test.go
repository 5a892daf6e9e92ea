package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// openStore opens a fresh SQLite database in the test's temporary
// directory and closes it when the test ends.
func openStore(t *testing.T) *store.Store {
	t.Helper()
	s, err := store.OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "farm.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ensureWorkspace(t *testing.T, s *store.Store, name string) store.Workspace {
	t.Helper()
	ws, err := s.EnsureWorkspace(t.Context(), name)
	if err != nil {
		t.Fatalf("EnsureWorkspace(%q): %v", name, err)
	}
	return ws
}

// at is a fixed moment, with nanoseconds, so that round trips show whether
// any precision is lost.
func at(minute int) time.Time {
	return time.Date(2025, 3, 14, 15, minute, 26, 535897932, time.UTC)
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

func TestOpenSQLiteTwiceAppliesMigrationsOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "farm.db")
	s, err := store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	ws := ensureWorkspace(t, s, "studio")
	s.Close()

	s, err = store.OpenSQLite(t.Context(), path)
	if err != nil {
		t.Fatalf("opening an up-to-date database again: %v", err)
	}
	defer s.Close()
	if got := countRows(t, s, "farm_migrations"); got != 1 {
		t.Errorf("farm_migrations has %d rows, want 1: one per migration file, recorded once", got)
	}
	again, err := s.EnsureWorkspace(t.Context(), "studio")
	if err != nil || again.ID != ws.ID {
		t.Errorf("after reopening, workspace = %+v, %v; want the one made before, %s", again, err, ws.ID)
	}
}

func TestOpenSQLiteSetsTheConnectionPragmas(t *testing.T) {
	t.Parallel()
	s := openStore(t)
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

func TestOpenSQLiteEnforcesForeignKeys(t *testing.T) {
	t.Parallel()
	s := openStore(t)
	err := s.InsertJob(t.Context(), newJob("job-1", "no-such-workspace", at(0)))
	if err == nil {
		t.Fatal("a job of a workspace that does not exist was stored")
	}
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
	s := openStore(t)
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
}

func TestInTxRollsBackEverythingWhenTheFunctionFails(t *testing.T) {
	t.Parallel()
	s := openStore(t)
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
}

func TestInTxRollsBackWhenTheFunctionPanicsAndTheStoreStaysUsable(t *testing.T) {
	t.Parallel()
	s := openStore(t)
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

	// The store has one connection: a transaction left open would make
	// this wait forever.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	var n int
	if err := s.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM workspaces`).Scan(&n); err != nil {
		t.Fatalf("the store is stuck after a panic in a transaction: %v", err)
	}
	if n != 0 {
		t.Errorf("%d workspaces after the panic, want 0: the transaction must be rolled back", n)
	}
}
