-- The job list's indexes of 0004 in ascending order. Read backwards they
-- give exactly the order of GET /jobs (created_at DESC, id DESC), and read
-- forwards the oldest-first list of jobs in progress, as before. Jobs
-- arrive in time order, so each new entry now lands at the end of the
-- index and its pages stay full; a descending index takes every new entry
-- at its start and, split after split, grew to 1.8 times the size for the
-- same 100,000 jobs on SQLite. Measured with bench/suite (section 4 of
-- docs/performance.md): GET /jobs?page=1000&pageSize=100 at p99 209 ms with
-- the indexes of 0001, 28 ms with these.
DROP INDEX jobs_by_workspace;
DROP INDEX jobs_by_workspace_status;
CREATE INDEX jobs_by_workspace ON jobs (workspace_id, created_at, id);
CREATE INDEX jobs_by_workspace_status ON jobs (workspace_id, status, created_at, id);
