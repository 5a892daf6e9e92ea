-- A new upload counts its workspace's uploads that no job was made from,
-- which a workspace may hold only so many of; the index holds only those,
-- so the count reads no row of the uploads its jobs were made from.
CREATE INDEX uploads_unclaimed_by_workspace ON uploads (workspace_id) WHERE job_id IS NULL;
