package client

import "sync"

// ProgressChanges wraps fn so that it is called only when a job's progress
// has changed since the last call: its status, any of its frame counters,
// or the server's estimate of the time left. [Client.Wait] reports at every
// poll, and most polls find nothing new; a log that wrote a line per poll
// would repeat itself many times a second. The first report always gets
// through. The returned function is safe for concurrent use.
func ProgressChanges(fn func(*Progress)) func(*Progress) {
	var (
		mu   sync.Mutex
		last *Progress
	)
	return func(p *Progress) {
		mu.Lock()
		defer mu.Unlock()
		if last != nil && sameProgress(last, p) {
			return
		}
		seen := *p
		last = &seen
		fn(p)
	}
}

func sameProgress(a, b *Progress) bool {
	if a.JobID != b.JobID || a.Status != b.Status || a.WaitingFor != b.WaitingFor ||
		a.FramesTotal != b.FramesTotal || a.FramesCompleted != b.FramesCompleted ||
		a.FramesRendering != b.FramesRendering || a.FramesFailed != b.FramesFailed {
		return false
	}
	switch {
	case a.EtaSeconds == nil || b.EtaSeconds == nil:
		return a.EtaSeconds == b.EtaSeconds
	default:
		return *a.EtaSeconds == *b.EtaSeconds
	}
}
