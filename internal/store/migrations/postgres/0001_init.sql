-- The farm's own tables. River keeps its tables beside these, migrated by
-- rivermigrate.
--
-- The same tables as migrations/sqlite/0001_init.sql, in PostgreSQL's
-- types: TIMESTAMPTZ for times, DOUBLE PRECISION for seconds, BOOLEAN for
-- flags, BIGINT for sizes and River job ids. JSON stays TEXT: the farm
-- reads and writes it whole and never queries inside it.

CREATE TABLE workspaces (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL
);

-- API keys are stored as SHA-256 hashes: a stolen database yields no key.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    key_hash     TEXT NOT NULL UNIQUE,
    prefix       TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE uploads (
    slug         TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    file_name    TEXT NOT NULL,
    file_type    TEXT NOT NULL,
    object_key   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    -- A slug makes at most one job.
    job_id       TEXT UNIQUE
);

CREATE TABLE jobs (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id),
    user_id            TEXT NOT NULL,
    slug               TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    normalized_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    failed_reason      TEXT,
    requested_config   TEXT,
    final_config       TEXT,
    analysis           TEXT,
    analysis_id        TEXT,
    scene_file         TEXT,
    output_deleted     BOOLEAN NOT NULL DEFAULT FALSE,
    files              TEXT
);
CREATE INDEX jobs_by_workspace ON jobs (workspace_id, created_at DESC, id);
CREATE INDEX jobs_by_workspace_status ON jobs (workspace_id, status, created_at DESC, id);

-- A task is one unit of River work the farm tracks itself: validating a
-- file, rendering a chunk of frames, finalizing outputs. The generation
-- says which River job owns it: when a dead worker's task is handed out
-- again the generation goes up, and the old holder's writes are refused.
CREATE TABLE tasks (
    id           TEXT PRIMARY KEY,
    job_id       TEXT NOT NULL REFERENCES jobs (id),
    kind         TEXT NOT NULL,
    chunk        INTEGER NOT NULL DEFAULT 0,
    status       TEXT NOT NULL,
    generation   INTEGER NOT NULL DEFAULT 1,
    worker_id    TEXT NOT NULL DEFAULT '',
    river_job_id BIGINT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX tasks_by_job ON tasks (job_id, kind);
CREATE INDEX tasks_by_status ON tasks (status, worker_id);

CREATE TABLE frames (
    job_id         TEXT NOT NULL REFERENCES jobs (id),
    frame          INTEGER NOT NULL,
    task_id        TEXT NOT NULL,
    status         TEXT NOT NULL,
    worker         TEXT NOT NULL DEFAULT '',
    render_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    attempts       INTEGER NOT NULL DEFAULT 0,
    object_key     TEXT NOT NULL DEFAULT '',
    size_bytes     BIGINT NOT NULL DEFAULT 0,
    error          TEXT NOT NULL DEFAULT '',
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (job_id, frame)
);
CREATE INDEX frames_by_task ON frames (task_id);

-- Workers record a heartbeat; a worker whose heartbeat is stale is dead and
-- its tasks are handed out again. A row is one run of a worker process, so
-- that a node restarted under the same name does not vouch for the tasks
-- its previous run held.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    heartbeat_at TIMESTAMPTZ NOT NULL,
    state        TEXT NOT NULL,
    current_task TEXT NOT NULL DEFAULT ''
);
CREATE INDEX workers_by_name ON workers (name);
