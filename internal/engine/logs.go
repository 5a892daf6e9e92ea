package engine

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
)

// maxLogBytes bounds what JobLog reads of a stored log.
const maxLogBytes = 256 << 10

// keepLog stores the tail of a Blender run that failed, under the job's
// logs/ prefix, so the user can read why.
func (e *Engine) keepLog(ctx context.Context, jobID, name string, lines []string) {
	if len(lines) == 0 {
		return
	}
	key := fmt.Sprintf("jobs/%s/logs/%s-%s.log", jobID, time.Now().UTC().Format("20060102T150405.000"), name)
	if _, err := e.objects.Put(context.WithoutCancel(ctx), key, strings.NewReader(strings.Join(lines, "\n")+"\n"), maxStoredLogBytes); err != nil {
		e.log.Warn("could not keep Blender's log", "job", jobID, "err", err)
	}
}

// JobLog returns the tail of the newest Blender log kept for a job: the
// one of its last failure. A job with none answers no lines.
func (e *Engine) JobLog(ctx context.Context, p farm.Principal, id string) (*farm.JobLog, error) {
	job, err := e.loadJob(ctx, e.store.Queries, p, id)
	if err != nil {
		return nil, err
	}
	log := &farm.JobLog{Lines: []string{}}
	if job.Output.IsDeletedForClient {
		// Gone with the job's other files, even while their removal runs.
		return log, nil
	}
	logs, err := e.objects.List(ctx, "jobs/"+id+"/logs/")
	if err != nil || len(logs) == 0 {
		return log, err
	}
	// Keys start with their time, so the last one listed is the newest.
	r, err := e.objects.Get(ctx, logs[len(logs)-1].Key)
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
