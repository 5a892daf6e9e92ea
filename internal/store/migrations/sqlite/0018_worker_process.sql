-- Where a worker run's process runs, so that a run started under the same
-- name on the same machine can tell at once that the run it replaces is
-- dead, rather than watching it for two heartbeats.
--
-- host: the machine's host name, for messages. machine: the kernel's boot
-- id and the PID namespace of the process; process ids compare only within
-- one boot and one namespace ('' where they cannot be read). pid and
-- pid_start: the process, and when it started (clock ticks after boot,
-- /proc/PID/stat), which tells the run's own process from another that
-- was given its id later.
ALTER TABLE workers ADD COLUMN host TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN machine TEXT NOT NULL DEFAULT '';
ALTER TABLE workers ADD COLUMN pid INTEGER NOT NULL DEFAULT 0;
ALTER TABLE workers ADD COLUMN pid_start INTEGER NOT NULL DEFAULT 0;
