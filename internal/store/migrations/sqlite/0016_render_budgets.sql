-- Render budgets, and GPU-seconds.
--
-- gpu_seconds: a chunk rendered on GPUs records its frames' Blender
-- render time times the GPUs it rendered with, and 0 worker_seconds; a
-- chunk rendered on the CPU the reverse. A chunk's render seconds are
-- their sum.
ALTER TABLE tasks ADD COLUMN gpu_seconds REAL NOT NULL DEFAULT 0;

-- max_render_seconds_per_month: the render seconds (worker-seconds and
-- GPU-seconds) a workspace may use in a calendar month (UTC); NULL is no
-- budget. Once spent, its waiting chunks wait for the next month (or a
-- larger budget) and its running chunks finish.
ALTER TABLE workspaces ADD COLUMN max_render_seconds_per_month REAL;
-- render_month (YYYY-MM, UTC) and month_render_seconds: the render
-- seconds of the workspace's chunks that ended in that month, kept for
-- a workspace with a budget (summed afresh when the budget is set, then
-- added to in the transaction that records each chunk's), so that the
-- dispatcher reads one row rather than summing the month's chunks for
-- each slot it fills.
ALTER TABLE workspaces ADD COLUMN render_month TEXT NOT NULL DEFAULT '';
ALTER TABLE workspaces ADD COLUMN month_render_seconds REAL NOT NULL DEFAULT 0;

-- This month's render seconds so far.
UPDATE workspaces SET render_month = strftime('%Y-%m', 'now'),
    month_render_seconds = COALESCE((SELECT SUM(t.worker_seconds) FROM tasks t
        WHERE t.workspace_id = workspaces.id AND t.finished_at >= strftime('%Y-%m-01', 'now')), 0);

-- What a job's files other than its input and frames hold, for the
-- workspace's storage: files_bytes, its frames.zip, compositeNodes.zip and
-- preview.mp4, written with the job when its finalizing stores them;
-- log_bytes, the Blender logs kept under its logs/ prefix, added to as
-- each is stored.
ALTER TABLE jobs ADD COLUMN files_bytes INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN log_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE jobs SET files_bytes = COALESCE(json_extract(files, '$.framesZipSize'), 0)
    + COALESCE(json_extract(files, '$.compositeNodesZipSize'), 0) + COALESCE(json_extract(files, '$.videoSize'), 0)
WHERE files IS NOT NULL;
