package blender

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// sysProcAttr starts Blender in a session of its own, which is also a
// process group of its own: cancelling reaches whatever Blender (or its
// sandbox) starts, a signal to the worker's group does not, and Blender has
// no controlling terminal to push input into.
//
// An unconfined Blender gets Pdeathsig, so it dies with the worker: no
// render outlives the process that would record it. A confined one does
// not: its bubblewrap, killed by the signal while it sets the sandbox up,
// would leave its first process blocked for ever. The sandbox's lifeline
// ends a confined Blender instead (see sandbox.LifelineFD): the guard
// inside the sandbox kills it when the worker's end of the pipe closes,
// also when that happens before the sandbox was ready.
func sysProcAttr(confined bool) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setsid: true}
	if !confined {
		attr.Pdeathsig = syscall.SIGKILL
	}
	return attr
}

// groupMembers lists the processes of group pgid other than its leader.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pgid {
			continue
		}
		if g, ok := processGroup(pid); ok && g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// processGroup reads a process's group from /proc/PID/stat, whose second
// field, the command name in parentheses, may itself hold spaces and
// parentheses.
func processGroup(pid int) (int, bool) {
	body, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(body)
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, false
	}
	// After the name: state, ppid, pgrp.
	fields := strings.Fields(s[end+1:])
	if len(fields) < 3 {
		return 0, false
	}
	g, err := strconv.Atoi(fields[2])
	return g, err == nil
}
