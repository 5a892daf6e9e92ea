-- What a job used, kept once the job itself is removed from the farm's
-- history (serve --history-retention): its render seconds, frames and
-- bytes served, a row per job and day (YYYY-MM-DD, UTC), so that a usage
-- report over a period that held the job answers as before.
CREATE TABLE usage_history (
    workspace_id     TEXT NOT NULL,
    job_id           TEXT NOT NULL,
    day              TEXT NOT NULL,
    render_seconds   REAL NOT NULL DEFAULT 0,
    gpu_seconds      REAL NOT NULL DEFAULT 0,
    frames           BIGINT NOT NULL DEFAULT 0,
    bytes_downloaded BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, day)
);
CREATE INDEX usage_history_by_workspace ON usage_history (workspace_id, day);
CREATE INDEX usage_history_by_day ON usage_history (day);

-- The jobs that ended, by when they last changed: the history's
-- retention removes those that ended longest ago.
CREATE INDEX jobs_ended ON jobs (updated_at) WHERE status IN ('completed', 'failed', 'canceled');

-- A job's webhook events and their attempts, found by job and by event
-- when the job is removed (a cascade from an event to its attempts reads
-- them by event too).
CREATE INDEX webhook_events_by_job ON webhook_events (job_id);
CREATE INDEX webhook_attempts_by_event ON webhook_attempts (event_id);
