-- threads is how many threads the node that last claimed the task gives
-- each of its Blenders (store.ClaimTask). A chunk's worker-seconds are
-- its frames' render seconds times it: written by its holder as it ends
-- (FinishTask), or, for a chunk stopped by a cancel or a suspend while
-- frames of it had completed, by the stop (CancelTasksOfJob), which has
-- no holder to ask.
ALTER TABLE tasks ADD COLUMN threads INTEGER NOT NULL DEFAULT 0;
