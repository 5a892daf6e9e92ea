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
	// Name says what the key is for ("ci", "alice's laptop"); it may be
	// empty, as it is for keys made before keys had names.
	Name      string
	CreatedAt time.Time
	// ExpiresAt is when the key stops working; nil: never.
	ExpiresAt *time.Time
	// RevokedAt is when the key was revoked; nil: it is in force.
	RevokedAt *time.Time
	// LastUsedAt is when a request last came with the key, to the minute
	// (see RecordAPIKeyUse); nil: never.
	LastUsedAt *time.Time
}

// APIKeyInfo is what may be shown of a key: everything but its hash, and
// its workspace's name. The type has no room for the hash, so a listing
// cannot show it by mistake.
type APIKeyInfo struct {
	ID          string
	WorkspaceID string
	Workspace   string
	Name        string
	Prefix      string
	CreatedAt   time.Time
	ExpiresAt   *time.Time
	RevokedAt   *time.Time
	LastUsedAt  *time.Time
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
	_, err := q.exec(ctx, `INSERT INTO api_keys (id, workspace_id, key_hash, prefix, name, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.WorkspaceID, k.Hash, k.Prefix, k.Name, k.CreatedAt, nullTime(k.ExpiresAt))
	if err != nil {
		return fmt.Errorf("store API key: %w", err)
	}
	return nil
}

// APIKeyByHash finds the key whose hash matches, revoked and expired ones
// too: the caller tells the client which it is.
func (q *Queries) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	var k APIKey
	var expires, revoked, used sql.NullTime
	err := q.queryRow(ctx, `SELECT id, workspace_id, key_hash, prefix, name, created_at, expires_at, revoked_at, last_used_at FROM api_keys WHERE key_hash = ?`, hash).
		Scan(&k.ID, &k.WorkspaceID, &k.Hash, &k.Prefix, &k.Name, &k.CreatedAt, &expires, &revoked, &used)
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	if err != nil {
		return k, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = timeOrNil(expires), timeOrNil(revoked), timeOrNil(used)
	return k, nil
}

// apiKeyInfoColumns are the columns scanAPIKeyInfo reads, from api_keys k
// joined with workspaces w.
const apiKeyInfoColumns = `k.id, k.workspace_id, w.name, k.name, k.prefix, k.created_at, k.expires_at, k.revoked_at, k.last_used_at`

func scanAPIKeyInfo(row rowScanner) (APIKeyInfo, error) {
	var k APIKeyInfo
	var expires, revoked, used sql.NullTime
	if err := row.Scan(&k.ID, &k.WorkspaceID, &k.Workspace, &k.Name, &k.Prefix, &k.CreatedAt, &expires, &revoked, &used); err != nil {
		return k, err
	}
	k.CreatedAt = k.CreatedAt.UTC()
	k.ExpiresAt, k.RevokedAt, k.LastUsedAt = timeOrNil(expires), timeOrNil(revoked), timeOrNil(used)
	return k, nil
}

// ListAPIKeys lists the keys of the workspace with this name, or of every
// workspace when it is "", by workspace name, then oldest first. Revoked
// and expired keys are listed too.
func (q *Queries) ListAPIKeys(ctx context.Context, workspace string) ([]APIKeyInfo, error) {
	rows, err := q.query(ctx, `SELECT `+apiKeyInfoColumns+`
		FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id
		WHERE ? = '' OR w.name = ?
		ORDER BY w.name, k.created_at, k.id`, workspace, workspace)
	if err != nil {
		return nil, fmt.Errorf("list API keys: %w", err)
	}
	defer rows.Close()
	keys := []APIKeyInfo{}
	for rows.Next() {
		k, err := scanAPIKeyInfo(rows)
		if err != nil {
			return nil, fmt.Errorf("list API keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// APIKeyInfoByID finds a key by its id.
func (q *Queries) APIKeyInfoByID(ctx context.Context, id string) (APIKeyInfo, error) {
	k, err := scanAPIKeyInfo(q.queryRow(ctx, `SELECT `+apiKeyInfoColumns+`
		FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id WHERE k.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return k, ErrNotFound
	}
	return k, err
}

// RevokeAPIKey marks the key with this id revoked at at, and returns it.
// Revoking is done once: a key revoked before keeps its first revocation
// time, and revoked is false. ErrNotFound if there is no such key.
func (q *Queries) RevokeAPIKey(ctx context.Context, id string, at time.Time) (key APIKeyInfo, revoked bool, err error) {
	res, err := q.exec(ctx, `UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, at, id)
	if err != nil {
		return APIKeyInfo{}, false, fmt.Errorf("revoke API key: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return APIKeyInfo{}, false, fmt.Errorf("revoke API key: %w", err)
	}
	key, err = q.APIKeyInfoByID(ctx, id)
	if err != nil {
		return APIKeyInfo{}, false, err
	}
	return key, n > 0, nil
}

// RecordAPIKeyUse sets the key's last use to at when the one stored is
// staleAt or older (or there is none). Replicas that see the same key at
// once therefore write it once, and a caller that passes at minus a minute
// as staleAt writes a key's last use at most once a minute.
func (q *Queries) RecordAPIKeyUse(ctx context.Context, id string, at, staleAt time.Time) error {
	_, err := q.exec(ctx, `UPDATE api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at <= ?)`, at, id, staleAt)
	if err != nil {
		return fmt.Errorf("record API key use: %w", err)
	}
	return nil
}

// CountAPIKeys says how many keys exist.
func (q *Queries) CountAPIKeys(ctx context.Context) (int, error) {
	var n int
	err := q.queryRow(ctx, `SELECT COUNT(*) FROM api_keys`).Scan(&n)
	return n, err
}

// firstKeyLock is the PostgreSQL advisory lock key that InFirstKeyTx
// holds. Advisory locks are per database, so the key only has to differ
// from other locks the farm and River take in the same database.
const firstKeyLock int64 = 0x66697273746b6579 // "firstkey"

// InFirstKeyTx runs fn in a transaction that holds the farm's first-key
// lock: on PostgreSQL an advisory lock that one transaction at a time may
// hold, on SQLite the write lock every transaction takes when it begins
// (so across processes on one file too). The serve processes that start
// together on a farm without a key (replicas of one release) therefore
// look for a key one after the other, each seeing what the one before it
// committed, and only the first makes one; counting and then making the
// key, each on its own, every one of them made and logged a key.
func (s *Store) InFirstKeyTx(ctx context.Context, fn func(tx *Tx) error) error {
	var opts *sql.TxOptions
	if s.dialect == DialectPostgres {
		// READ COMMITTED whatever the server's default: the count after
		// the lock must see the key the previous holder committed, which
		// a snapshot taken with the lock statement would not.
		opts = &sql.TxOptions{Isolation: sql.LevelReadCommitted}
	}
	return s.inTx(ctx, opts, func(tx *Tx) error {
		if s.dialect == DialectPostgres {
			if _, err := tx.exec(ctx, `SELECT pg_advisory_xact_lock(?)`, firstKeyLock); err != nil {
				return fmt.Errorf("take the first key's lock: %w", err)
			}
		}
		return fn(tx)
	})
}

// nullTime is t for a nullable time column: NULL when t is nil.
func nullTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return *t
}

// timeOrNil is a nullable time column as read: nil when NULL, else UTC.
func timeOrNil(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
