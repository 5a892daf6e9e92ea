package store

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

func openSQLiteForTest(t *testing.T) *Store {
	t.Helper()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "farm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestTheSQLiteReadPoolIsQueryOnly(t *testing.T) {
	t.Parallel()
	s := openSQLiteForTest(t)
	if s.read == s.db {
		t.Fatal("the store reads through the writer's connection")
	}
	for pragma, want := range map[string]string{"query_only": "1", "busy_timeout": "10000", "journal_mode": "wal"} {
		var got string
		if err := s.read.QueryRowContext(t.Context(), "PRAGMA "+pragma).Scan(&got); err != nil {
			t.Fatalf("PRAGMA %s: %v", pragma, err)
		}
		if got != want {
			t.Errorf("read pool: PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	_, err := s.read.ExecContext(t.Context(), `INSERT INTO workspaces (id, name, created_at) VALUES ('ws-1', 'studio', ?)`, now())
	if err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("a write through the read pool: %v, want it refused as read-only", err)
	}
	// The writer, River's connection, writes.
	var queryOnly int
	if err := s.DB().QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&queryOnly); err != nil || queryOnly != 0 {
		t.Errorf("writer: PRAGMA query_only = %d, %v; want 0", queryOnly, err)
	}
}

func TestPreparedReadsAreBounded(t *testing.T) {
	t.Parallel()
	s := openSQLiteForTest(t)
	// More distinct query texts than the cache holds, as if a query
	// carried values in its text: each still answers, and the cache stops
	// at its bound.
	for i := range maxPrepared + 20 {
		var got int
		if err := s.queryRow(t.Context(), fmt.Sprintf(`SELECT %d + ?`, i), 1).Scan(&got); err != nil || got != i+1 {
			t.Fatalf("query %d: %d, %v; want %d", i, got, err, i+1)
		}
	}
	if n := len(s.split.stmts); n != maxPrepared {
		t.Errorf("%d statements kept, want %d", n, maxPrepared)
	}
	// A query that fails to prepare is not kept, and reports its error.
	if err := s.queryRow(t.Context(), `SELECT frame FROM no_such_table`).Scan(new(int)); err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Errorf("a query of a table that does not exist: %v", err)
	}
}

func TestCloseClosesBothPools(t *testing.T) {
	t.Parallel()
	s, err := OpenSQLite(t.Context(), filepath.Join(t.TempDir(), "farm.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.read.PingContext(t.Context()); err == nil {
		t.Error("the read pool is still open after Close")
	}
	if err := s.db.PingContext(t.Context()); err == nil {
		t.Error("the writer is still open after Close")
	}
}
