//go:build unix && !linux

package blender

import "syscall"

// sysProcAttr starts Blender in a session of its own, which is also a
// process group of its own, so cancelling reaches whatever Blender starts
// and a signal to the worker's group does not. Only Linux can also tie
// Blender's life to the worker's.
func sysProcAttr(bool) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setsid: true}
}

// groupMembers would list the processes under the group's leader; without
// /proc the whole group is signalled at once.
func groupMembers(int) []int { return nil }
