package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// WorkspaceUsage is a workspace's share of the farm and what it uses of
// it: what `renderfarm workspaces list` shows.
type WorkspaceUsage struct {
	ID, Name string
	// Weight is its share against the other workspaces' (farm.NextWorkspace);
	// MaxRunning the most chunks it may have running, 0 for no limit.
	Weight, MaxRunning int
	// Running counts its chunks given to workers, Waiting those that wait.
	Running, Waiting int
	// RenderSeconds is Blender's time on its frames completed since the
	// time asked for.
	RenderSeconds float64
}

// ListWorkspaceUsage lists every workspace by name with its share and
// use, its render seconds counted over frames completed since since.
func (q *Queries) ListWorkspaceUsage(ctx context.Context, since time.Time) ([]WorkspaceUsage, error) {
	rows, err := q.query(ctx, `SELECT ws.id, ws.name, ws.weight, COALESCE(ws.max_running_chunks, 0),
			(SELECT COUNT(*) FROM tasks r WHERE r.workspace_id = ws.id AND r.kind = 'render' AND r.status IN ('queued', 'running')),
			(SELECT COUNT(*) FROM tasks w WHERE w.workspace_id = ws.id AND w.status = 'waiting'),
			COALESCE((SELECT SUM(f.render_seconds) FROM frames f JOIN jobs j ON j.id = f.job_id
				WHERE j.workspace_id = ws.id AND f.status = ? AND f.updated_at >= ?), 0)
		FROM workspaces ws ORDER BY ws.name`, farm.FrameCompleted, since.UTC())
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	defer rows.Close()
	var out []WorkspaceUsage
	for rows.Next() {
		var u WorkspaceUsage
		if err := rows.Scan(&u.ID, &u.Name, &u.Weight, &u.MaxRunning, &u.Running, &u.Waiting, &u.RenderSeconds); err != nil {
			return nil, fmt.Errorf("list workspaces: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// SetWorkspaceShare changes a workspace's weight and the most chunks it
// may have running (0: no limit), each when not nil. ErrNotFound when
// there is no workspace of that name.
func (q *Queries) SetWorkspaceShare(ctx context.Context, name string, weight, maxRunning *int) error {
	if weight != nil {
		if *weight < 1 || *weight > farm.MaxWeight {
			return fmt.Errorf("a weight must be from 1 to %d, not %d", farm.MaxWeight, *weight)
		}
		if err := q.updateWorkspace(ctx, `UPDATE workspaces SET weight = ? WHERE name = ?`, *weight, name); err != nil {
			return err
		}
	}
	if maxRunning != nil {
		if *maxRunning < 0 {
			return fmt.Errorf("the most running chunks must be 0 (no limit) or more, not %d", *maxRunning)
		}
		var limit any
		if *maxRunning > 0 {
			limit = *maxRunning
		}
		if err := q.updateWorkspace(ctx, `UPDATE workspaces SET max_running_chunks = ? WHERE name = ?`, limit, name); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queries) updateWorkspace(ctx context.Context, query string, args ...any) error {
	res, err := q.exec(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("change workspace: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// WorkspaceQuota is a workspace's most running chunks (0: no limit) and
// how many it runs now.
func (q *Queries) WorkspaceQuota(ctx context.Context, workspaceID string) (maxRunning, running int, err error) {
	err = q.queryRow(ctx, `SELECT COALESCE(ws.max_running_chunks, 0),
			(SELECT COUNT(*) FROM tasks r WHERE r.workspace_id = ws.id AND r.kind = 'render' AND r.status IN ('queued', 'running'))
		FROM workspaces ws WHERE ws.id = ?`, workspaceID).Scan(&maxRunning, &running)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNotFound
	}
	return maxRunning, running, err
}
