-- The same as migrations/sqlite/0021.
--
-- What a job that has ended keeps of Blender's logs is counted once
-- more, from its logs/ prefix, by the housekeeping (store.CountJobLogs):
-- a log stored by a node that was killed before its chunk's end was
-- written is counted nowhere else. logs_counted_for is the updated_at
-- the job had when its logs were last counted, so a job that changes
-- (retried, and ended again) is counted again. Jobs that had ended
-- before this migration were counted as their attempts ended, and are
-- left as they are. The index holds only the jobs whose count is to be
-- made (and those still going), so that finding them reads none of the
-- many counted ones.
ALTER TABLE jobs ADD COLUMN logs_counted_for TIMESTAMPTZ;
UPDATE jobs SET logs_counted_for = updated_at WHERE status IN ('completed', 'failed', 'canceled');
CREATE INDEX jobs_logs_to_count ON jobs (id) WHERE logs_counted_for IS NULL OR logs_counted_for <> updated_at;
