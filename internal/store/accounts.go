package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Workspace is a tenant: its jobs, uploads and keys are invisible to others.
type Workspace struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// APIKey is a stored key: only its hash and a short prefix to recognise it.
type APIKey struct {
	ID          string
	WorkspaceID string
	Hash        string
	Prefix      string
	CreatedAt   time.Time
}

// EnsureWorkspace returns the workspace with this name, creating it if new.
// Callers racing to create the same name all get the one that was made.
func (q *Queries) EnsureWorkspace(ctx context.Context, name string) (Workspace, error) {
	w, err := q.workspaceNamed(ctx, name)
	if err == nil {
		return w, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return Workspace{}, fmt.Errorf("find workspace %q: %w", name, err)
	}
	// A racing caller's insert makes this one do nothing (on PostgreSQL
	// after waiting for it to commit), and the lookup below finds its row.
	if _, err := q.exec(ctx, `INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		uuid.NewString(), name, now()); err != nil {
		return Workspace{}, fmt.Errorf("create workspace %q: %w", name, err)
	}
	if w, err = q.workspaceNamed(ctx, name); err != nil {
		return Workspace{}, fmt.Errorf("find workspace %q: %w", name, err)
	}
	return w, nil
}

func (q *Queries) workspaceNamed(ctx context.Context, name string) (Workspace, error) {
	var w Workspace
	err := q.queryRow(ctx, `SELECT id, name, created_at FROM workspaces WHERE name = ?`, name).Scan(&w.ID, &w.Name, &w.CreatedAt)
	w.CreatedAt = w.CreatedAt.UTC()
	return w, err
}

// InsertAPIKey stores a new key.
func (q *Queries) InsertAPIKey(ctx context.Context, k APIKey) error {
	_, err := q.exec(ctx, `INSERT INTO api_keys (id, workspace_id, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)`,
		k.ID, k.WorkspaceID, k.Hash, k.Prefix, k.CreatedAt)
	if err != nil {
		return fmt.Errorf("store API key: %w", err)
	}
	return nil
}

// APIKeyByHash finds the key whose hash matches.
func (q *Queries) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	var k APIKey
	err := q.queryRow(ctx, `SELECT id, workspace_id, key_hash, prefix, created_at FROM api_keys WHERE key_hash = ?`, hash).
		Scan(&k.ID, &k.WorkspaceID, &k.Hash, &k.Prefix, &k.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	k.CreatedAt = k.CreatedAt.UTC()
	return k, err
}

// CountAPIKeys says how many keys exist, so a first start can make one.
func (q *Queries) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n)
	return n, err
}
