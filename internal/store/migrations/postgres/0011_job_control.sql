-- Job control: suspended jobs, and render nodes set aside for failing.
--
-- Why a suspended job waits ('' in every other status): REQUESTED (POST
-- /suspend) or SCOUT_FRAMES_READY (its scout frames are rendered).
ALTER TABLE jobs ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';

-- A render node's record with one job: how many of the job's chunks
-- failed there, and, once BlockAfterFailedChunks did, since when it takes
-- no more of them. A node is named as in frames.worker (a name, not a
-- run: a restarted node is the same machine). The sum of failed_chunks
-- over a job is what --max-failed-chunks bounds. A retry of the job
-- starts it afresh.
CREATE TABLE job_workers (
    job_id        TEXT NOT NULL REFERENCES jobs (id),
    worker_name   TEXT NOT NULL,
    failed_chunks INTEGER NOT NULL DEFAULT 0,
    blocked_at    TIMESTAMPTZ,
    last_error    TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (job_id, worker_name)
);

-- A render node's health, by name. failed_jobs lists, comma-separated,
-- the jobs whose chunks failed on it since its last chunk that succeeded;
-- once they are SickAfterJobs, the node is sick (sick_since, and why) and
-- takes nothing until `renderfarm workers enable NAME`. A job that fails
-- for its own fault (its file fails everywhere) is taken off every list.
CREATE TABLE worker_health (
    name        TEXT PRIMARY KEY,
    failed_jobs TEXT NOT NULL DEFAULT '',
    sick_since  TIMESTAMPTZ,
    sick_reason TEXT NOT NULL DEFAULT ''
);
