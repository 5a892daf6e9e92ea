//go:build !linux

package node

import (
	"os"

	"github.com/renderfarm/renderfarm/internal/store"
)

// thisProcess says where this process runs, as far as this system lets
// it be told: without /proc, no successor can prove it dead, and watches
// its heartbeat instead.
func thisProcess() store.WorkerProcess {
	p := store.WorkerProcess{PID: os.Getpid()}
	p.Host, _ = os.Hostname()
	return p
}

// processGone never knows an earlier run's process dead here.
func processGone(store.WorkerProcess) bool { return false }
