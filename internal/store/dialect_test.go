package store

import (
	"testing"
	"time"
)

func TestRebindNumbersPlaceholdersForPostgres(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"no placeholders", `SELECT COUNT(*) FROM jobs`, `SELECT COUNT(*) FROM jobs`},
		{"one", `SELECT id FROM jobs WHERE id = ?`, `SELECT id FROM jobs WHERE id = $1`},
		{"in order", `UPDATE tasks SET status = ? WHERE id = ? AND generation = ?`,
			`UPDATE tasks SET status = $1 WHERE id = $2 AND generation = $3`},
		{"more than nine", `VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			`VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`},
		{"next to other characters", `IN (?,?) LIMIT ?`, `IN ($1,$2) LIMIT $3`},
		{"a string literal keeps its ?", `SELECT 'what?' WHERE a = ?`, `SELECT 'what?' WHERE a = $1`},
		{"a doubled quote does not end the literal", `SELECT 'it''s ?' WHERE a = ?`, `SELECT 'it''s ?' WHERE a = $1`},
		{"an empty literal", `WHERE worker_id = '' AND id = ?`, `WHERE worker_id = '' AND id = $1`},
		{"a quoted identifier keeps its ?", `SELECT "why?" FROM t WHERE a = ?`, `SELECT "why?" FROM t WHERE a = $1`},
		{"a line comment keeps its ?", "SELECT 1 -- why?\nWHERE a = ?", "SELECT 1 -- why?\nWHERE a = $1"},
		{"a line comment at the end", `WHERE a = ? -- and b?`, `WHERE a = $1 -- and b?`},
		{"a block comment keeps its ?", `SELECT /* why? */ a WHERE b = ?`, `SELECT /* why? */ a WHERE b = $1`},
		{"an unterminated literal runs to the end", `WHERE a = ? AND b = 'x?`, `WHERE a = $1 AND b = 'x?`},
		{"an unterminated comment runs to the end", `WHERE a = ? /* b = ?`, `WHERE a = $1 /* b = ?`},
		{"a dash or slash alone is text", `SELECT a - ?, b / ?`, `SELECT a - $1, b / $2`},
		{"text that is not ASCII", `SELECT 'é?' WHERE ü = ?`, `SELECT 'é?' WHERE ü = $1`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DialectPostgres.rebind(tt.query); got != tt.want {
				t.Errorf("rebind(%q)\n got %q\nwant %q", tt.query, got, tt.want)
			}
			if got := DialectSQLite.rebind(tt.query); got != tt.query {
				t.Errorf("SQLite's rebind changed %q to %q; SQLite takes ? as it is", tt.query, got)
			}
		})
	}
}

func TestWriteArgsSendsTimesInUTCToTheMicrosecond(t *testing.T) {
	t.Parallel()
	tokyo := time.FixedZone("JST", 9*60*60)
	written := time.Date(2025, 3, 15, 1, 2, 3, 456789999, tokyo)
	args := []any{"job-1", written, 42, nil}
	got := writeArgs(args)

	want := time.Date(2025, 3, 14, 16, 2, 3, 456789000, time.UTC)
	if ts, ok := got[1].(time.Time); !ok || ts.Location() != time.UTC || !ts.Equal(want) {
		t.Errorf("the time went as %#v, want %v", got[1], want)
	}
	if got[0] != "job-1" || got[2] != 42 || got[3] != nil {
		t.Errorf("the other arguments changed: %#v", got)
	}
	if args[1] != written {
		t.Errorf("the caller's arguments changed: %v", args[1])
	}
}
