//go:build !linux

package node

import "os/exec"

// tieToWorker does nothing where the kernel cannot kill a child with its
// parent; stop ends ffmpeg whenever the worker itself ends the work.
func tieToWorker(*exec.Cmd) {}
