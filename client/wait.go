package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Wait polls a job until until reports true, and returns the job as it was
// then. A nil until means [UntilFinal]. When onProgress is not nil, Wait
// also fetches the job's [Progress] at every poll, its counters without
// the per-frame state ([Client.ProgressCounts]), and passes it on, for
// progress bars and logs.
//
// If the job reaches a final status that until does not accept (say it
// failed while the caller waited for validated), waiting longer cannot help:
// Wait returns the job and a [*JobEndedError] that carries its
// FailedReason. A server that answers 503 (a part of the farm is out for
// a moment, see [IsUnavailable]) is asked again after its Retry-After;
// Wait stops at any other error and when ctx is done, returning the last
// job it saw. Since waiting changes nothing on the server, calling Wait
// again after a passing network error is safe. The poll interval is set
// with [WithPollInterval].
func (c *Client) Wait(ctx context.Context, id string, until func(*Job) bool, onProgress func(*Progress)) (*Job, error) {
	if until == nil {
		until = UntilFinal
	}
	var last *Job
	timer := time.NewTimer(0) // the first poll happens at once
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("wait for job %s: %w", id, ctx.Err())
		case <-timer.C:
		}

		job, err := c.GetJob(ctx, id)
		if err != nil {
			if wait, ok := unavailableFor(err, c.pollInterval); ok {
				timer.Reset(wait)
				continue
			}
			return last, fmt.Errorf("wait for job %s: %w", id, err)
		}
		last = job
		if onProgress != nil {
			p, err := c.ProgressCounts(ctx, id)
			if err != nil {
				if wait, ok := unavailableFor(err, c.pollInterval); ok {
					timer.Reset(wait)
					continue
				}
				return last, fmt.Errorf("wait for job %s: %w", id, err)
			}
			onProgress(p)
		}
		if until(job) {
			return job, nil
		}
		if job.Status.IsFinal() {
			return job, &JobEndedError{Job: job}
		}
		timer.Reset(c.pollInterval)
	}
}

// unavailableFor reports whether err is the server saying it cannot
// answer for the moment (503), and how long to wait before asking again:
// its Retry-After, or the poll interval when it gave none.
func unavailableFor(err error, poll time.Duration) (time.Duration, bool) {
	var ae *APIError
	if !errors.As(err, &ae) || ae.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	if ae.RetryAfter > 0 {
		return min(ae.RetryAfter, maxRateLimitWait), true
	}
	return poll, true
}

// UntilFinal is a condition for [Client.Wait] that holds once the job is
// completed, failed or canceled. The caller then reads Job.Status to know
// which.
func UntilFinal(j *Job) bool {
	return j.Status.IsFinal()
}

// UntilStatus returns a condition for [Client.Wait] that holds once the job
// has one of the given statuses. Waiting for [StatusCompleted] this way makes
// a failed or canceled job an error ([*JobEndedError]), which is what a
// pipeline that needs the frames usually wants.
func UntilStatus(statuses ...Status) func(*Job) bool {
	want := slices.Clone(statuses)
	return func(j *Job) bool {
		return slices.Contains(want, j.Status)
	}
}

// JobEndedError is returned by [Client.Wait] when the job reached a final
// status that the wait condition did not accept, so it will never be met.
// Job holds the job as it ended, with its FailedReason if it failed.
type JobEndedError struct {
	Job *Job
}

// Error reads like "job 42 ended as failed (render): frame 7: out of memory".
func (e *JobEndedError) Error() string {
	msg := fmt.Sprintf("job %s ended as %s", e.Job.ID, e.Job.Status)
	if r := e.Job.FailedReason; r != nil {
		if r.Type != "" {
			msg += " (" + r.Type + ")"
		}
		switch {
		case r.Name != "" && r.Message != "":
			msg += ": " + r.Name + ": " + r.Message
		case r.Message != "":
			msg += ": " + r.Message
		case r.Name != "":
			msg += ": " + r.Name
		}
	}
	return msg
}
