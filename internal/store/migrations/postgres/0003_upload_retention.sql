-- Retention looks for uploads that no job was made from, oldest first;
-- the index holds only those, so it stays small however many jobs there are.
CREATE INDEX uploads_unclaimed ON uploads (created_at) WHERE job_id IS NULL;
