-- Several Blender versions per farm. A worker run records the versions of
-- the Blenders it runs (blender_versions: full versions, comma-separated,
-- such as "3.4.1,4.3.2"), which is what the farm offers; a task records
-- the version of the Blender it must run on (blender_version, "" for a
-- task any render node takes: a validation not yet routed, a finalizing),
-- so that whoever hands it out again puts it in that version's queue.
ALTER TABLE workers ADD COLUMN blender_versions TEXT NOT NULL DEFAULT '';
ALTER TABLE tasks ADD COLUMN blender_version TEXT NOT NULL DEFAULT '';
