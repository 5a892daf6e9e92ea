-- A workspace's storage quota and what its objects hold.
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
