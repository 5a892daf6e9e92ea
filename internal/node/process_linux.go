package node

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/renderfarm/renderfarm/internal/store"
)

// thisProcess says where this process runs: the host name, the machine
// (the kernel's boot id and this process's PID namespace, within which
// process ids mean one process), its id and its start time. What cannot
// be read stays empty, and a successor then cannot prove this process
// dead: it watches its heartbeat instead.
func thisProcess() store.WorkerProcess {
	p := store.WorkerProcess{PID: os.Getpid()}
	p.Host, _ = os.Hostname()
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return p
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return p
	}
	start, state, err := processStat(p.PID)
	if err != nil || state == "" {
		return p
	}
	p.Machine = strings.TrimSpace(string(boot)) + " " + ns
	p.PIDStart = start
	return p
}

// processGone reports whether the process of an earlier run is known to
// be dead: it ran on this machine (the same boot and PID namespace), and
// no process has its id now, or the one that has it started at another
// time (the id was given to another process), or it is a zombie. A
// process of another machine, or one recorded without its machine, is
// never known to be gone.
func processGone(p store.WorkerProcess) bool {
	here := thisProcess()
	if p.Machine == "" || p.PID <= 0 || p.Machine != here.Machine {
		return false
	}
	if p.PID == here.PID {
		// This process has the id now: the earlier one is no more.
		return p.PIDStart != here.PIDStart
	}
	start, state, err := processStat(p.PID)
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	return start != p.PIDStart || state == "Z" || state == "X"
}

// processStat reads a process's state and start time (clock ticks after
// boot) from /proc/PID/stat. The command's name, in parentheses, may hold
// anything, parentheses and spaces included, so the fields are counted
// from the last ')'.
func processStat(pid int) (start int64, state string, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	end := bytes.LastIndexByte(b, ')')
	if end < 0 {
		return 0, "", errors.New("process stat without a command name")
	}
	// After the name: state (field 3), then fields 4 to 22; starttime is
	// field 22, the 20th after the name.
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 20 {
		return 0, "", errors.New("process stat too short")
	}
	start, err = strconv.ParseInt(fields[19], 10, 64)
	if err != nil {
		return 0, "", err
	}
	return start, fields[0], nil
}
