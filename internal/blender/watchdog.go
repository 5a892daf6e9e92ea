package blender

import (
	"context"
	"errors"
	"time"
)

// errStalled is the cause of a run's end when its watchdog fired.
var errStalled = errors.New("blender made no progress in time")

// watchdog ends a run that goes its timeout without being fed: a render
// feeds it at every saved frame, so the timeout is each frame's budget. It
// goes by saved frames rather than by output because a stuck Blender can
// keep printing (a frame asking for millions of samples prints progress for
// days) and a working one can go quiet (building a large scene's BVH).
type watchdog struct {
	timeout time.Duration
	timer   *time.Timer // nil when the timeout is 0
}

// startWatchdog returns a context that ends with errStalled as its cause
// when the watchdog is not fed for timeout (never, if timeout is 0), and a
// function that stops the watchdog and releases the context.
func startWatchdog(ctx context.Context, timeout time.Duration) (context.Context, *watchdog, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	w := &watchdog{timeout: timeout}
	if timeout > 0 {
		w.timer = time.AfterFunc(timeout, func() { cancel(errStalled) })
	}
	return ctx, w, func() {
		if w.timer != nil {
			w.timer.Stop()
		}
		cancel(nil)
	}
}

// feed restarts the timeout. It is safe to call from any goroutine.
func (w *watchdog) feed() {
	if w.timer != nil {
		w.timer.Reset(w.timeout)
	}
}

// stalled reports whether ctx, from startWatchdog, ended because the
// watchdog fired.
func stalled(ctx context.Context) bool {
	return errors.Is(context.Cause(ctx), errStalled)
}
