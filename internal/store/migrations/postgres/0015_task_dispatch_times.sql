-- The same as migrations/sqlite/0015, in PostgreSQL's types: when a
-- chunk was given to a worker run (dispatched_at) and when that run took
-- it (started_at), for its latest generation.
ALTER TABLE tasks ADD COLUMN dispatched_at TIMESTAMPTZ;
ALTER TABLE tasks ADD COLUMN started_at TIMESTAMPTZ;
-- A job's frames not yet completed (see migrations/sqlite/0015).
CREATE INDEX frames_unfinished ON frames (job_id) WHERE status <> 'completed';
