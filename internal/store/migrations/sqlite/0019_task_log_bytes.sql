-- The Blender logs kept for a task (tasks.log_bytes), counted on the
-- task's own row rather than its job's: a job of thousands of chunks
-- added each chunk's log to one jobs row, and every chunk of the job
-- waited its turn for that row's lock (docs/performance.md, section 5).
-- jobs.log_bytes keeps what was counted before, and the storage of a
-- workspace sums both.
ALTER TABLE tasks ADD COLUMN log_bytes BIGINT NOT NULL DEFAULT 0;
