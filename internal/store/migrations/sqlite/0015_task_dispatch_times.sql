-- When a chunk was given to a worker run (dispatched_at: queued on the
-- run's own River queue) and when that run took it (started_at: claimed,
-- running), for its latest generation. Together with created_at (the
-- render request) and finished_at they say where a chunk's wait went:
-- bench/scale reads them, and so can an operator. The same columns as
-- migrations/postgres/0015.
ALTER TABLE tasks ADD COLUMN dispatched_at DATETIME;
ALTER TABLE tasks ADD COLUMN started_at DATETIME;
-- A job's frames not yet completed, so that the end of each chunk asks
-- whether any remain in a step or two instead of counting every frame
-- of the job (a job of 10,000 one-frame chunks counted 10,000 frames at
-- each of their ends).
CREATE INDEX frames_unfinished ON frames (job_id) WHERE status <> 'completed';
