-- One still frame on many workers (docs/split-frame.md): a split frame's
-- parts, one row per part. Each part is rendered by a render task of its
-- own (task_id, which the dispatcher hands out like any chunk); when it
-- is stored, object_key names the part's file (by the task's generation,
-- so a part rendered twice is used once) and render_seconds its time.
-- When the last part of a frame is stored, a merge task (tasks.kind
-- 'merge', tasks.chunk the frame) becomes the frame's task and stores the
-- merged frame as a render stores one.
CREATE TABLE frame_parts (
    job_id         TEXT NOT NULL REFERENCES jobs (id),
    frame          INTEGER NOT NULL,
    part           INTEGER NOT NULL,
    task_id        TEXT NOT NULL,
    object_key     TEXT NOT NULL DEFAULT '',
    render_seconds REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, frame, part)
);
CREATE INDEX frame_parts_by_task ON frame_parts (task_id);
