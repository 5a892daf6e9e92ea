-- Sharing the farm: a render chunk waits in tasks (status 'waiting', no
-- River job) until the dispatcher gives it to a worker run with a free
-- slot (status 'queued', worker_id set, a River job on that run's own
-- queue, render_<worker id>). See "Dispatch" in docs/architecture.md.
--
-- A job's priority (0-100), copied onto its waiting chunks so that they
-- are read in order from an index.
ALTER TABLE jobs ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;
-- A workspace's share of the farm against the others' (weight), the most
-- chunks it may have running (NULL: no limit), and when it was last
-- served (one of its chunks given a worker, or ended): of workspaces tied
-- on running chunks per weight, the one served least recently goes first.
ALTER TABLE workspaces ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workspaces ADD COLUMN max_running_chunks INTEGER;
ALTER TABLE workspaces ADD COLUMN last_served_at DATETIME;
-- What a worker run offers: render slots, tags (comma-separated), GPUs
-- ("CUDA:2,OPTIX:2") and memory. state may now also be 'stopping': it
-- finishes what it runs and takes nothing new.
ALTER TABLE workers ADD COLUMN slots INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN tags TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN gpus TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN memory_bytes INTEGER NOT NULL DEFAULT 0;
-- A task's workspace and priority (its job's), and what it needs of a
-- worker: the key of a row of requirements ('' for nothing).
ALTER TABLE tasks ADD COLUMN workspace_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN priority INTEGER NOT NULL DEFAULT 50;
ALTER TABLE tasks ADD COLUMN requirements TEXT NOT NULL DEFAULT '';
-- Every set of requirements chunks were queued with, so that the
-- dispatcher can tell which a worker meets without reading the chunks.
-- Rows are never changed, and only ever a few per farm.
CREATE TABLE requirements (
    key             TEXT PRIMARY KEY,
    blender_version TEXT NOT NULL DEFAULT '',
    gpu_type        TEXT NOT NULL DEFAULT '',
    gpu_count       INTEGER NOT NULL DEFAULT 0,
    minimum_ram_gib INTEGER NOT NULL DEFAULT 0,
    tags            TEXT NOT NULL DEFAULT ''
);
UPDATE tasks SET workspace_id = (SELECT j.workspace_id FROM jobs j WHERE j.id = tasks.job_id);
UPDATE tasks SET requirements = 'blender=' || blender_version WHERE kind = 'render' AND blender_version <> '';
INSERT INTO requirements (key, blender_version) SELECT DISTINCT requirements, blender_version FROM tasks WHERE kind = 'render';
-- Chunks queued before, on the queues every node worked, wait for the
-- dispatcher now; their old River jobs claim nothing (a new generation).
UPDATE tasks SET status = 'waiting', worker_id = '', river_job_id = NULL, generation = generation + 1 WHERE kind = 'render' AND status = 'queued';
-- The dispatcher's reads, each a few index steps however many chunks
-- wait: a workspace's best waiting chunk that a worker can take (by
-- requirements, then priority, then the render request's time, job and
-- chunk), when its oldest chunk began waiting, and the chunks given to
-- workers (at most the farm's slots) by workspace and by worker.
CREATE INDEX tasks_waiting ON tasks (workspace_id, requirements, priority DESC, created_at, job_id, chunk) WHERE status = 'waiting';
CREATE INDEX tasks_waiting_since ON tasks (workspace_id, updated_at) WHERE status = 'waiting';
CREATE INDEX tasks_dispatched_by_workspace ON tasks (workspace_id) WHERE kind = 'render' AND status IN ('queued', 'running');
CREATE INDEX tasks_dispatched_by_worker ON tasks (worker_id) WHERE kind = 'render' AND status IN ('queued', 'running');
