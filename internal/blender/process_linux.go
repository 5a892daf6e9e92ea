package blender

import "syscall"

// sysProcAttr starts Blender in its own process group, so cancelling reaches
// whatever Blender (or a sandbox wrapper) starts and a signal to the worker's
// group does not. Pdeathsig kills Blender if the worker dies: no render
// outlives the process that would record it.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
