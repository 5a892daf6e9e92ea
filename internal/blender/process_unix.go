//go:build unix && !linux

package blender

import "syscall"

// sysProcAttr starts Blender in its own process group, so cancelling reaches
// whatever Blender starts and a signal to the worker's group does not. Only
// Linux can also tie Blender's life to the worker's.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
