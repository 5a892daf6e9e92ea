-- late_logs counts the logs whose size was recorded after their job had
-- ended (store.AddTaskLogBytes marks the job to be counted again). The
-- housekeeping reads it before it lists a job's logs, and records its
-- count as made only if no log was recorded late in between: a log
-- stored after the listing is then counted at the next run.
ALTER TABLE jobs ADD COLUMN late_logs INTEGER NOT NULL DEFAULT 0;
