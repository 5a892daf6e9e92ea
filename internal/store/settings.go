package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
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

// downloadURLSecretLen is the size of the secret that signs the download
// URLs of a bucket whose downloads go through the farm (HMAC-SHA256's).
const downloadURLSecretLen = 32

// DownloadURLSecret is the secret that signs the download URLs of a bucket
// whose downloads go through the farm (serve --serve-downloads), made on
// first use. It is the database's so that every process of the farm signs
// and checks the same way: a URL one replica hands out is served by any
// other, and stays good across restarts.
func (q *Queries) DownloadURLSecret(ctx context.Context) ([]byte, error) {
	fresh := make([]byte, downloadURLSecretLen)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("make the download URL secret: %w", err)
	}
	// The first process to ask makes it; the others read that one.
	if _, err := q.exec(ctx, `INSERT INTO farm_settings (name, value) VALUES ('download_url_secret', ?)
		ON CONFLICT (name) DO NOTHING`, hex.EncodeToString(fresh)); err != nil {
		return nil, fmt.Errorf("record the download URL secret: %w", err)
	}
	var text string
	if err := q.queryRow(ctx, `SELECT value FROM farm_settings WHERE name = 'download_url_secret'`).Scan(&text); err != nil {
		return nil, fmt.Errorf("read the download URL secret: %w", err)
	}
	secret, err := hex.DecodeString(text)
	if err != nil || len(secret) < downloadURLSecretLen {
		return nil, fmt.Errorf("the farm's download URL secret is not %d bytes of hex: delete the farm_settings row 'download_url_secret' to make a new one (download URLs handed out stop working)", downloadURLSecretLen)
	}
	return secret, nil
}

// SetFarmDownloadsURL records where the farm serves its bucket's
// downloads: serve's public URL when it serves them (--serve-downloads),
// "" when clients download from the bucket. Render nodes, which sign the
// frame URLs of a job's completed event, sign them the same way.
func (q *Queries) SetFarmDownloadsURL(ctx context.Context, url string) error {
	_, err := q.exec(ctx, `INSERT INTO farm_settings (name, value) VALUES ('downloads_url', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, url)
	if err != nil {
		return fmt.Errorf("record where downloads are served: %w", err)
	}
	return nil
}

// FarmDownloadsURL is where the farm serves its bucket's downloads, "" if
// from the bucket itself (or no serve has said).
func (q *Queries) FarmDownloadsURL(ctx context.Context) (string, error) {
	var url string
	err := q.queryRow(ctx, `SELECT value FROM farm_settings WHERE name = 'downloads_url'`).Scan(&url)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read where downloads are served: %w", err)
	}
	return url, nil
}

// SetFarmHistoryRetention records how long the farm keeps an ended job
// in its history (serve's --history-retention; 0 keeps it for ever),
// which the periodic removal goes by on whichever process runs it.
func (q *Queries) SetFarmHistoryRetention(ctx context.Context, d time.Duration) error {
	if d < 0 {
		return fmt.Errorf("the history retention must not be negative, not %v", d)
	}
	_, err := q.exec(ctx, `INSERT INTO farm_settings (name, value) VALUES ('history_retention', ?)
		ON CONFLICT (name) DO UPDATE SET value = excluded.value`, d.String())
	if err != nil {
		return fmt.Errorf("record the history retention: %w", err)
	}
	return nil
}

// FarmHistoryRetention is how long the farm keeps an ended job in its
// history; 0 (also when no serve has recorded one) keeps it for ever.
func (q *Queries) FarmHistoryRetention(ctx context.Context) (time.Duration, error) {
	var text string
	err := q.queryRow(ctx, `SELECT value FROM farm_settings WHERE name = 'history_retention'`).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the history retention: %w", err)
	}
	d, err := time.ParseDuration(text)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("the farm's recorded history retention %q is not a duration", text)
	}
	return d, nil
}
