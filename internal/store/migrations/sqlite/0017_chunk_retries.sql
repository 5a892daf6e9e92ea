-- A chunk whose attempt failed, with attempts left, frees its worker's
-- slot at once: it waits for the dispatcher again (a new generation, no
-- worker), like any waiting chunk, and may go to another worker.
--
-- failed_attempts: the attempts at the chunk that failed so far, which
-- its next River job carries, so that the job's retry limit counts
-- every attempt, on whichever worker.
-- retry_at: the chunk is not given to a worker before then (the wait
-- after a failed attempt); NULL for a chunk that may go at once.
ALTER TABLE tasks ADD COLUMN failed_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN retry_at DATETIME;
