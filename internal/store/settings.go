package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// SetFarmWorkerTimeout records the farm's worker timeout, the one the
// reaper goes by on every process (serve's --worker-timeout).
func (q *Queries) SetFarmWorkerTimeout(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("the worker timeout must be positive, not %v", d)
	}
	_, err := q.exec(ctx, `INSERT INTO farm_settings (name, value) VALUES ('worker_timeout', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, d.String())
	if err != nil {
		return fmt.Errorf("record the worker timeout: %w", err)
	}
	return nil
}

// FarmWorkerTimeout is the farm's worker timeout; ok is false when no
// serve has recorded one yet.
func (q *Queries) FarmWorkerTimeout(ctx context.Context) (d time.Duration, ok bool, err error) {
	var text string
	err = q.queryRow(ctx, `SELECT value FROM farm_settings WHERE name = 'worker_timeout'`).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the worker timeout: %w", err)
	}
	if d, err = time.ParseDuration(text); err != nil || d <= 0 {
		return 0, false, fmt.Errorf("the farm's recorded worker timeout %q is not a duration", text)
	}
	return d, true, nil
}
