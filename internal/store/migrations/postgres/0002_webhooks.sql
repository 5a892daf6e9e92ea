-- Webhooks: where a workspace wants to hear about its jobs. The secret is
-- kept as it is, since every delivery is signed with it.
CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,
    secret       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, created_at);

-- One event for one webhook: its body is fixed when the event happens, so
-- every attempt sends the same bytes, and its id is the delivery id that
-- receivers use to drop duplicates.
CREATE TABLE webhook_events (
    id           TEXT PRIMARY KEY,
    webhook_id   TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    job_id       TEXT NOT NULL,
    event        TEXT NOT NULL,
    body         TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX webhook_events_by_webhook ON webhook_events (webhook_id, created_at);

-- Every attempt to deliver an event, for the deliveries log.
CREATE TABLE webhook_attempts (
    id            TEXT PRIMARY KEY,
    event_id      TEXT NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
    webhook_id    TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    attempt       INTEGER NOT NULL,
    attempted_at  TIMESTAMPTZ NOT NULL,
    duration_ms   BIGINT NOT NULL,
    http_status   INTEGER,
    error         TEXT NOT NULL DEFAULT '',
    next_retry_at TIMESTAMPTZ
);
CREATE INDEX webhook_attempts_by_webhook ON webhook_attempts (webhook_id, attempted_at DESC);
