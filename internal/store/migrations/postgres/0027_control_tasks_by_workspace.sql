-- Validations and finalizings are made with their job's workspace (merges
-- always were), and a workspace's validations and merges that wait to
-- run are counted by the index below when another is queued: its River
-- priority follows how many of them are ahead of it, so that one
-- workspace's thousand validations do not hold up every other's first.
UPDATE tasks SET workspace_id = (SELECT j.workspace_id FROM jobs j WHERE j.id = tasks.job_id) WHERE workspace_id = '';
CREATE INDEX tasks_control_queued ON tasks (workspace_id, created_at) WHERE kind IN ('validate', 'merge') AND status = 'queued';
