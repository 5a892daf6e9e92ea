-- A workspace's storage quota and what its objects hold; usage.
--
-- max_storage_bytes: the most bytes the workspace's objects may hold
-- (NULL: no limit); past it, new uploads are refused.
ALTER TABLE workspaces ADD COLUMN max_storage_bytes INTEGER;
-- An upload's file size, once the farm knows it: when the local store
-- stores the file, and when a job is made from it (on a bucket, that is
-- the first time the farm sees the file). The job's own copy of the file
-- (input_key), which replaces the upload's, is the same size.
ALTER TABLE uploads ADD COLUMN size_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX uploads_by_workspace ON uploads (workspace_id);

-- Usage. A chunk's worker-seconds: its frames' Blender render time times
-- the threads its worker gave each Blender, written with its end
-- (finished_at), whatever the end.
ALTER TABLE tasks ADD COLUMN worker_seconds REAL NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN finished_at DATETIME;
CREATE INDEX tasks_finished ON tasks (workspace_id, finished_at) WHERE finished_at IS NOT NULL;
-- Bytes the farm served from a job's objects through its own download
-- URLs (the local store), a row per job and day (YYYY-MM-DD, UTC).
CREATE TABLE downloads (
    workspace_id TEXT NOT NULL,
    job_id       TEXT NOT NULL,
    day          TEXT NOT NULL,
    bytes        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, day)
);
CREATE INDEX downloads_by_workspace ON downloads (workspace_id, day);

-- Settings of the whole farm, which every process reads from here rather
-- than from its own flags: worker_timeout (Go duration text), written by
-- each `serve` at start from its --worker-timeout, is what the reaper
-- takes a silent worker's work away after, whichever process runs it.
CREATE TABLE farm_settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
