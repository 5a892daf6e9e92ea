-- The same as migrations/sqlite/0024.
--
-- counted_failure names the attempt at a chunk whose failure was last
-- counted against its node and job ("{generation}.{attempt}", see
-- store.CountFailureOnce): the count is tried again through an outage of
-- the database, and a try whose commit went through while its answer was
-- lost must not count the same failure twice.
ALTER TABLE tasks ADD COLUMN counted_failure TEXT NOT NULL DEFAULT '';
