package store

import (
	"context"
	"database/sql"
	"sync"
	"testing"
)

// readCost counts what a store's reads outside transactions cost the
// database: the statements they run, and the rows those answer. A read
// whose statements or rows grow with what the database holds, where its
// answer does not, shows here.
type readCost struct {
	inner querier
	t     *testing.T

	mu         sync.Mutex
	statements int
	rows       int
}

// countReads has s count its reads from now on, until reset.
func countReads(t *testing.T, s *Store) *readCost {
	t.Helper()
	c := &readCost{inner: s.Queries.q, t: t}
	s.Queries.q = c
	t.Cleanup(func() { s.Queries.q = c.inner })
	return c
}

// reset forgets what was counted so far.
func (c *readCost) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statements, c.rows = 0, 0
}

// counted is what was counted since the last reset.
func (c *readCost) counted() (statements, rows int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statements, c.rows
}

func (c *readCost) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.add(1, 0)
	return c.inner.ExecContext(ctx, query, args...)
}

// QueryContext counts the rows the statement answers by asking the
// database first how many it will (the same statement, counted), as it
// stands at that moment: the tests that count hold the data still.
func (c *readCost) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	var n int
	if err := c.inner.QueryRowContext(ctx, `SELECT COUNT(*) FROM (`+query+`) AS counted`, args...).Scan(&n); err != nil {
		c.t.Errorf("count the rows of %s: %v", query, err)
	}
	c.add(1, n)
	return c.inner.QueryContext(ctx, query, args...)
}

func (c *readCost) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.add(1, 1)
	return c.inner.QueryRowContext(ctx, query, args...)
}

func (c *readCost) add(statements, rows int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.statements += statements
	c.rows += rows
}
