-- Every file a completed frame made: its image (one per view of a
-- multiview scene), the images of the compositor's File Output nodes, and
-- the PNG proxy its preview is made from. A frame's rows are written in
-- the transaction that completes it, by the holder of its task's
-- generation, so they are written once; object_key is under that holder's
-- jobs/{job}/frames/{task}.{generation}/. frames.object_key keeps the
-- frame's own image (its first view's). Frames completed before this
-- migration have no rows, and are listed from frames.object_key alone.
-- The same columns as migrations/sqlite/0008.
CREATE TABLE frame_outputs (
    job_id              TEXT NOT NULL REFERENCES jobs (id),
    frame               INTEGER NOT NULL,
    -- The file's place among its frame's: the frame's images first.
    position            INTEGER NOT NULL,
    -- frame, compositeNode or preview.
    kind                TEXT NOT NULL,
    -- The view's name, "stereo", or NULL for a file of no one view.
    view                TEXT,
    composite_node_name TEXT NOT NULL DEFAULT '',
    file_name           TEXT NOT NULL,
    relative_path       TEXT NOT NULL,
    object_key          TEXT NOT NULL,
    size_bytes          BIGINT NOT NULL,
    PRIMARY KEY (job_id, frame, position)
);
