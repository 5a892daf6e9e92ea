package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/google/uuid"

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
	// Jobs counts its jobs not deleted.
	Jobs int
	// StorageBytes is what its objects hold (see storageUsedQuery),
	// MaxStorageBytes the most they may, 0 for no limit.
	StorageBytes, MaxStorageBytes int64
	// Budget is the render seconds it may use in a calendar month (UTC),
	// 0 for no budget; MonthSeconds what its chunks that ended this month
	// used, summed from them.
	Budget, MonthSeconds float64
}

// ListWorkspaceUsage lists every workspace by name with its share and
// use, its render seconds counted over frames completed since since (of
// the jobs that had not ended a day before it, as WorkspaceUsage reads
// them).
func (q *Queries) ListWorkspaceUsage(ctx context.Context, since time.Time) ([]WorkspaceUsage, error) {
	rows, err := q.query(ctx, `SELECT ws.id, ws.name, ws.weight, COALESCE(ws.max_running_chunks, 0),
			(SELECT COUNT(*) FROM tasks r WHERE r.workspace_id = ws.id AND r.kind = 'render' AND r.status IN ('queued', 'running')),
			(SELECT COUNT(*) FROM tasks w WHERE w.workspace_id = ws.id AND w.status = 'waiting'),
			COALESCE((SELECT SUM(f.render_seconds) FROM jobs j JOIN frames f ON f.job_id = j.id
				WHERE j.workspace_id = ws.id AND f.status = ? AND f.updated_at >= ?
					AND (j.status NOT IN `+endedStatuses+` OR j.updated_at >= ?)), 0),
			(SELECT COUNT(*) FROM jobs cj WHERE cj.workspace_id = ws.id AND NOT cj.output_deleted),
			`+strings.ReplaceAll(storageUsedQuery, "?", "ws.id")+`,
			COALESCE(ws.max_storage_bytes, 0),
			COALESCE(ws.max_render_seconds_per_month, 0), `+strings.Replace(monthSecondsQuery, "?", "ws.id", 1)+`
		FROM workspaces ws ORDER BY ws.name`, farm.FrameCompleted, since.UTC(), since.UTC().Add(-endedJobFramesMargin), monthStart(now()))
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	defer rows.Close()
	var out []WorkspaceUsage
	for rows.Next() {
		var u WorkspaceUsage
		if err := rows.Scan(&u.ID, &u.Name, &u.Weight, &u.MaxRunning, &u.Running, &u.Waiting, &u.RenderSeconds, &u.Jobs, &u.StorageBytes, &u.MaxStorageBytes, &u.Budget, &u.MonthSeconds); err != nil {
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

// MaxBudget is the largest monthly render budget a workspace may be
// given, in seconds: a million render hours, more than any farm renders
// in a month, so that a typo is refused rather than taken for no limit.
const MaxBudget = 1e6 * 3600

// SetWorkspaceBudget sets the render seconds (worker-seconds and
// GPU-seconds) a workspace may use in a calendar month (UTC); 0 removes
// the budget. ErrNotFound when there is no workspace of that name. The
// month's total, which CountTowardsBudget keeps only for a workspace with
// a budget, is summed afresh from the month's chunks.
func (q *Queries) SetWorkspaceBudget(ctx context.Context, name string, seconds float64) error {
	if math.IsNaN(seconds) || seconds < 0 || seconds > MaxBudget {
		return fmt.Errorf("a monthly render budget must be 0 (no budget) to %g hours, not %g", MaxBudget/3600, seconds/3600)
	}
	var budget any
	if seconds > 0 {
		budget = seconds
	}
	at := now()
	return q.updateWorkspace(ctx, `UPDATE workspaces SET max_render_seconds_per_month = ?, render_month = ?,
			month_render_seconds = `+strings.Replace(monthSecondsQuery, "?", "workspaces.id", 1)+`
		WHERE name = ?`, budget, at.Format(renderMonthLayout), monthStart(at), name)
}

// WorkspaceName is the name of the workspace workspaceID; ErrNotFound
// when there is none.
func (q *Queries) WorkspaceName(ctx context.Context, workspaceID string) (string, error) {
	var name string
	err := q.queryRow(ctx, `SELECT name FROM workspaces WHERE id = ?`, workspaceID).Scan(&name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("workspace name: %w", err)
	}
	return name, nil
}

// WorkspaceBudget is a workspace's monthly render budget in seconds (0:
// none) and the render seconds its chunks that ended this month (UTC)
// used, as kept for a workspace with a budget (0 without one).
func (q *Queries) WorkspaceBudget(ctx context.Context, workspaceID string) (budget, spent float64, err error) {
	err = q.queryRow(ctx, `SELECT COALESCE(max_render_seconds_per_month, 0), CASE WHEN render_month = ? THEN month_render_seconds ELSE 0 END
		FROM workspaces WHERE id = ?`, now().Format(renderMonthLayout), workspaceID).Scan(&budget, &spent)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNotFound
	}
	if err != nil {
		return 0, 0, fmt.Errorf("workspace budget: %w", err)
	}
	return budget, spent, nil
}

// storageUsedQuery sums, for one workspace (the ? is its id), the bytes
// its objects hold, from the sizes the farm recorded as it stored them:
// each upload's file (until a job is made from it, then the job's own
// copy of it, which replaces it); every file of every frame (frame_outputs, or the frame's one
// image for frames completed before frames had several files); a job's
// frames.zip, compositeNodes.zip and preview.mp4 (jobs.files_bytes) and
// the Blender logs kept for its tasks (tasks.log_bytes, and jobs.log_bytes:
// what those missed, once the job ended, see CountJobLogs; before
// migration 0019, every log). A deleted job's objects
// are removed, so they count no more. Not counted: a file sent to a
// bucket's upload URL until a job is made from it (a bucket tells the
// farm nothing of a presigned PUT).
//
// The sum is computed when asked rather than kept as a running total:
// sizes are written by many transactions (a frame's completion on a
// render node, a job's creation, deletions), and a total missed by one of
// them would be wrong for ever, where a sum over rows indexed by job is
// exact and costs a few milliseconds for a workspace of many thousand
// frames.
const storageUsedQuery = `CAST((SELECT COALESCE(SUM(u.size_bytes), 0)
		FROM uploads u LEFT JOIN jobs uj ON uj.id = u.job_id
		WHERE u.workspace_id = ? AND (uj.id IS NULL OR NOT uj.output_deleted))
	+ (SELECT COALESCE(SUM(fo.size_bytes), 0) FROM frame_outputs fo JOIN jobs oj ON oj.id = fo.job_id
		WHERE oj.workspace_id = ? AND NOT oj.output_deleted)
	+ (SELECT COALESCE(SUM(f.size_bytes), 0) FROM frames f JOIN jobs fj ON fj.id = f.job_id
		WHERE fj.workspace_id = ? AND NOT fj.output_deleted AND f.size_bytes > 0
		AND NOT EXISTS (SELECT 1 FROM frame_outputs x WHERE x.job_id = f.job_id AND x.frame = f.frame))
	+ (SELECT COALESCE(SUM(xj.files_bytes + xj.log_bytes), 0) FROM jobs xj
		WHERE xj.workspace_id = ? AND NOT xj.output_deleted)
	+ (SELECT COALESCE(SUM(t.log_bytes), 0) FROM tasks t JOIN jobs tj ON tj.id = t.job_id
		WHERE tj.workspace_id = ? AND NOT tj.output_deleted AND t.log_bytes > 0) AS BIGINT)`

// WorkspaceStorage is what a workspace's objects hold and the most they
// may (0: no limit); see storageUsedQuery for what is counted.
type WorkspaceStorage struct {
	UsedBytes, MaxBytes int64
}

// Left is how many more bytes the workspace may store; negative when it
// is over its quota, and math.MaxInt64 without one.
func (s WorkspaceStorage) Left() int64 {
	if s.MaxBytes <= 0 {
		return math.MaxInt64
	}
	return s.MaxBytes - s.UsedBytes
}

// GetWorkspaceStorage answers a workspace's storage quota and use,
// leaving out the upload of slug exceptSlug ("" for none): the file
// being checked against the quota is not yet part of what is used.
func (q *Queries) GetWorkspaceStorage(ctx context.Context, workspaceID, exceptSlug string) (WorkspaceStorage, error) {
	var s WorkspaceStorage
	var except int64
	err := q.queryRow(ctx, `SELECT COALESCE(ws.max_storage_bytes, 0), `+storageUsedQuery+`,
			COALESCE((SELECT size_bytes FROM uploads WHERE slug = ? AND workspace_id = ws.id AND job_id IS NULL), 0)
		FROM workspaces ws WHERE ws.id = ?`, workspaceID, workspaceID, workspaceID, workspaceID, workspaceID, exceptSlug, workspaceID).Scan(&s.MaxBytes, &s.UsedBytes, &except)
	if errors.Is(err, sql.ErrNoRows) {
		return WorkspaceStorage{}, ErrNotFound
	}
	if err != nil {
		return WorkspaceStorage{}, fmt.Errorf("workspace storage: %w", err)
	}
	s.UsedBytes -= except
	return s, nil
}

// LockWorkspace takes a workspace's row until the transaction ends, so
// that the transactions that check one of its limits against what it has
// (its storage quota, its most webhooks) and then add to it run one at a
// time: each waits here for the one before it to end, and its checks then
// read what that one wrote. Without it, under READ COMMITTED, several
// could each count the same room and all take it. ErrNotFound when there
// is no such workspace. Take it before anything else the transaction
// locks or writes, so that no two transactions wait for each other, or,
// in a transaction that writes a job's tasks, after them, as a render
// node's and the dispatcher's do (CountTowardsBudget, MarkServed).
//
// On PostgreSQL the lock is FOR NO KEY UPDATE, as LockJob's: it excludes
// every other LockWorkspace and write of the row, not the foreign key
// checks of rows added to the workspace (its uploads, jobs, keys). On
// SQLite, whose transactions run one at a time, it only checks that the
// workspace exists.
func (tx *Tx) LockWorkspace(ctx context.Context, workspaceID string) error {
	var id string
	err := tx.queryRow(ctx, `SELECT id FROM workspaces WHERE id = ?`+tx.dialect.rowLock("FOR NO KEY UPDATE"), workspaceID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("lock workspace %s: %w", workspaceID, err)
	}
	return nil
}

// SetWorkspaceMaxStorage sets the most bytes a workspace's objects may
// hold (0: no limit). ErrNotFound when there is no workspace of that name.
func (q *Queries) SetWorkspaceMaxStorage(ctx context.Context, name string, maxBytes int64) error {
	if maxBytes < 0 {
		return fmt.Errorf("the most storage must be 0 (no limit) or more bytes, not %d", maxBytes)
	}
	var limit any
	if maxBytes > 0 {
		limit = maxBytes
	}
	return q.updateWorkspace(ctx, `UPDATE workspaces SET max_storage_bytes = ? WHERE name = ?`, limit, name)
}

// CreateWorkspace makes a workspace named name; ErrConflict when one of
// that name exists.
func (q *Queries) CreateWorkspace(ctx context.Context, name string) (Workspace, error) {
	if err := checkWorkspaceName(name); err != nil {
		return Workspace{}, err
	}
	res, err := q.exec(ctx, `INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		uuid.NewString(), name, now())
	if err != nil {
		return Workspace{}, fmt.Errorf("create workspace %q: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Workspace{}, ErrConflict
	}
	return q.workspaceNamed(ctx, name)
}

// RenameWorkspace gives workspace old the name new; its keys, jobs and
// uploads follow it, being tied to its id. ErrNotFound when there is no
// workspace old, ErrConflict when new is taken.
func (q *Queries) RenameWorkspace(ctx context.Context, old, new string) error {
	if err := checkWorkspaceName(new); err != nil {
		return err
	}
	if _, err := q.workspaceNamed(ctx, new); err == nil {
		return ErrConflict
	} else if !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("rename workspace: %w", err)
	}
	return q.updateWorkspace(ctx, `UPDATE workspaces SET name = ? WHERE name = ?`, new, old)
}

// RecordUploadSize records the size of an upload's file, known once the
// file is stored.
func (q *Queries) RecordUploadSize(ctx context.Context, slug string, size int64) error {
	if _, err := q.exec(ctx, `UPDATE uploads SET size_bytes = ? WHERE slug = ?`, size, slug); err != nil {
		return fmt.Errorf("record upload size: %w", err)
	}
	return nil
}

// MaxWorkspaceNameBytes bounds a workspace's name, which the operator's
// commands print in columns.
const MaxWorkspaceNameBytes = 64

func checkWorkspaceName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return fmt.Errorf("a workspace needs a name, for example \"studio\"")
	case len(name) > MaxWorkspaceNameBytes:
		return fmt.Errorf("the workspace name is %d bytes; keep it to %d", len(name), MaxWorkspaceNameBytes)
	case strings.IndexFunc(name, unicode.IsControl) >= 0 || strings.TrimSpace(name) != name:
		return fmt.Errorf("the workspace name %q holds control characters or spaces at its ends; give a plain name", name)
	}
	return nil
}
