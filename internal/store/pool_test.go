package store_test

import (
	"database/sql"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/renderfarm/renderfarm/internal/store"
)

// TestPostgresPoolHoldsAtMostItsConnections: however many of a process's
// goroutines want the database at once (a worker's render slots, say),
// the process holds at most the connections its pool was opened with;
// the rest wait their turn. A farm's connections are so bounded by
// configuration (processes times --database-connections), not by how
// many chunks its workers run.
func TestPostgresPoolHoldsAtMostItsConnections(t *testing.T) {
	t.Parallel()
	dsn := newPostgresDatabase(t)
	const poolSize, users = 3, 12
	s, err := store.OpenPostgresPool(t.Context(), dsn, poolSize)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	observer, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer observer.Close()
	observer.SetMaxOpenConns(1)

	var wg sync.WaitGroup
	var done atomic.Int32
	for range users {
		wg.Go(func() {
			defer done.Add(1)
			if _, err := s.DB().ExecContext(t.Context(), `SELECT pg_sleep(0.2)`); err != nil {
				t.Error(err)
			}
		})
	}
	// Counted on both sides: the connections the pool has open, and the
	// statements PostgreSQL runs at once. (Not every backend of the
	// database: one that the test's set-up closed may still be exiting.)
	opened, sleeping := 0, 0
	for done.Load() < users {
		var asleep int
		err := observer.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM pg_stat_activity
			WHERE datname = current_database() AND query LIKE 'SELECT pg_sleep%' AND state = 'active' AND pid <> pg_backend_pid()`).Scan(&asleep)
		if err != nil {
			t.Fatal(err)
		}
		opened, sleeping = max(opened, s.DB().Stats().OpenConnections), max(sleeping, asleep)
	}
	wg.Wait()
	if opened > poolSize || sleeping > poolSize {
		t.Errorf("%d goroutines at once held %d connections, %d of them running at once; the pool's maximum is %d", users, opened, sleeping, poolSize)
	}
	if sleeping != poolSize {
		t.Errorf("at most %d statements ran at once; want the pool's %d busy (the test saw no contention)", sleeping, poolSize)
	}
}

// TestPostgresPoolOfNoConnectionsIsRefused: a pool must have a connection.
func TestPostgresPoolOfNoConnectionsIsRefused(t *testing.T) {
	t.Parallel()
	_, err := store.OpenPostgresPool(t.Context(), "postgres://farm@127.0.0.1:1/farm", 0)
	if err == nil || !strings.Contains(err.Error(), "at least 1") {
		t.Errorf("a pool of 0 connections: %v, want an error that asks for at least 1", err)
	}
}
