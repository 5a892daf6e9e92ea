package housekeeping

import (
	"context"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/renderfarm/renderfarm/internal/engine"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// countJobLogsEvery is how often the farm counts the logs of the jobs
// that ended since: a workspace's storage misses a log lost to a killed
// node for at most this long.
const countJobLogsEvery = 10 * time.Minute

// countJobLogsBatch is how many jobs one read lists; a run goes on
// until none is left.
const countJobLogsBatch = 100

// countJobLogsWorker is the periodic job (queued by River's leader) that
// counts what the jobs that have ended keep of Blender's logs.
type countJobLogsWorker struct {
	river.WorkerDefaults[engine.CountJobLogsArgs]
	h *Housekeeping
}

func (w *countJobLogsWorker) Work(ctx context.Context, _ *river.Job[engine.CountJobLogsArgs]) error {
	_, err := w.h.CountEndedJobsLogs(ctx)
	return err
}

// CountEndedJobsLogs does now what the periodic job does every ten
// minutes, and answers how many jobs it counted. A render node counts a
// chunk's log towards its workspace's storage with the chunk's end, in
// the statement that writes it, so a node killed between storing the log
// and ending the chunk leaves the log stored but not counted (the chunk
// itself is rendered again elsewhere). Once a job has ended, what its
// logs/ prefix holds is what its logs are counted as (store.CountJobLogs);
// a job retried and ended again is counted again. A job whose logs cannot
// be listed is left for the next run, after the others are counted.
func (h *Housekeeping) CountEndedJobsLogs(ctx context.Context) (int, error) {
	counted, after := 0, ""
	var failed error
	for {
		jobs, err := h.store.JobsWithLogsToCount(ctx, after, countJobLogsBatch)
		if err != nil {
			return counted, err
		}
		for _, job := range jobs {
			id := job.ID
			after = id
			logs, err := h.objects.List(ctx, farm.JobLogsPrefix(id))
			if err != nil {
				h.log.Warn("could not list a job's logs to count them; trying again on the next run", "job", id, "err", err)
				if failed == nil {
					failed = fmt.Errorf("list the logs of job %s: %w", id, err)
				}
				continue
			}
			var listed int64
			for _, o := range logs {
				listed += o.Size
			}
			done, err := h.store.CountJobLogs(ctx, job, listed)
			if err != nil {
				return counted, err
			}
			if done {
				counted++
			}
		}
		if len(jobs) < countJobLogsBatch {
			return counted, failed
		}
	}
}
