package node

import (
	"os/exec"
	"syscall"
)

// tieToWorker makes cmd (ffmpeg) die with the worker: a killed worker must
// not leave an encoder writing into a work directory its successor uses.
// The kernel signals the child when the thread that started it ends; the
// Go runtime ends a thread only when a goroutine that locked it returns
// still locked, which this program never does (see package blender's run,
// which unlocks), so in practice the signal comes when the process dies.
func tieToWorker(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
