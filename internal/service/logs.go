package service

import (
	"bufio"
	"context"
	"io"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// maxLogBytes bounds what JobLog reads of a stored log.
const maxLogBytes = 256 << 10

// JobLog returns the tail of the newest Blender log kept for a job: the
// one of its last failure. A job with none answers no lines.
func (s *Service) JobLog(ctx context.Context, p farm.Principal, id string) (*farm.JobLog, error) {
	job, err := s.loadJob(ctx, p, id, s.store.GetJob)
	if err != nil {
		return nil, err
	}
	log := &farm.JobLog{Lines: []string{}}
	if job.Output.IsDeletedForClient {
		// Gone with the job's other files, even while their removal runs.
		return log, nil
	}
	logs, err := s.objects.List(ctx, farm.JobLogsPrefix(id))
	if err != nil || len(logs) == 0 {
		return log, err
	}
	// Keys start with their time, so the last one listed is the newest.
	r, err := s.objects.Get(ctx, logs[len(logs)-1].Key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	sc := bufio.NewScanner(io.LimitReader(r, maxLogBytes))
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		log.Lines = append(log.Lines, sc.Text())
	}
	return log, nil
}
