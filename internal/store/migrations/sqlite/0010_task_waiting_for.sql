-- What a task's holder waits for while a part of the farm is out: '' when
-- it waits for nothing, else words a client reads in a job's progress
-- ("the bucket", "disk space on node-a"). Claiming, releasing, finishing
-- and requeueing a task clear it.
ALTER TABLE tasks ADD COLUMN waiting_for TEXT NOT NULL DEFAULT '';
