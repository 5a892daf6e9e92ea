package node

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"strconv"
	"strings"
)

// Memory is the memory a node offers a job's minimumRam, and what it is
// the least of.
type Memory struct {
	// Bytes is what the node offers: the least of the figures below that
	// are known; 0 where none is, and such a node takes only jobs that ask
	// for no memory.
	Bytes int64
	// Machine is the machine's memory as the kernel reports it (MemTotal
	// in /proc/meminfo); 0 where there is no /proc/meminfo.
	Machine int64
	// Cgroup is the least memory limit of the cgroups the process is in
	// (a container's limit), read from CgroupFile; 0 and "" where none
	// has one or none could be read.
	Cgroup     int64
	CgroupFile string
	// Blender is the memory limit of each Blender (--blender-memory-limit,
	// its data segment); 0 where there is none. It is per render, not for
	// the whole node, but a render is what a job's minimumRam asks memory
	// for: a job that needs more than a Blender may allocate fails on the
	// node however much memory the machine has.
	Blender int64
	// Unread are the cgroup files that could not be read, and why: they
	// are passed over, and logged.
	Unread []string
}

// NodeMemory is the memory this node offers, read under root, the file
// system's root (os.DirFS("/")), and at most blenderLimit, the memory
// limit of each Blender (0: none). Only a MemTotal that cannot be read or
// makes no sense is an error; a cgroup file that cannot be read is passed
// over (Unread).
func NodeMemory(root fs.FS, blenderLimit int64) (Memory, error) {
	m := Memory{Blender: blenderLimit}
	var err error
	if m.Machine, err = machineMemory(root); err != nil {
		return Memory{}, err
	}
	limit, ok, unread := cgroupMemoryLimit(root)
	m.Unread = unread
	if ok {
		m.Cgroup, m.CgroupFile = limit.bytes, limit.file
	}
	m.Bytes = m.Machine
	limited := false
	if m.CgroupFile != "" && (m.Bytes == 0 || m.Cgroup < m.Bytes) {
		m.Bytes, limited = m.Cgroup, true
	}
	if m.Blender > 0 && (m.Bytes == 0 || m.Blender < m.Bytes) {
		m.Bytes, limited = m.Blender, true
	}
	if limited {
		// A limit is offered in whole GiB, rounded down. The farm rounds a
		// node's memory up to whole GiB (farm.WorkerOffer.MemoryGiB), for
		// what the kernel keeps of a machine's: a "32 GB" machine's
		// MemTotal is some 31.3 GiB. A limit is exact, and a pod limited
		// to 7.5 GiB cannot hold a job that asks for 8.
		m.Bytes = m.Bytes / gibibyte * gibibyte
	}
	return m, nil
}

// gibibyte is the unit a node's memory is offered in.
const gibibyte = 1 << 30

// machineMemory is MemTotal in /proc/meminfo under root, in bytes; 0
// where there is no /proc/meminfo.
func machineMemory(root fs.FS) (int64, error) {
	f, err := root.Open("proc/meminfo")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read this machine's memory: %w", err)
	}
	defer f.Close()
	return memTotal(bufio.NewScanner(f))
}

// memTotal reads the MemTotal line of /proc/meminfo ("MemTotal:
// 16315504 kB").
func memTotal(lines *bufio.Scanner) (int64, error) {
	for lines.Scan() {
		name, rest, ok := strings.Cut(lines.Text(), ":")
		if !ok || name != "MemTotal" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) != 2 || fields[1] != "kB" {
			return 0, fmt.Errorf("read this machine's memory: MemTotal is %q, not a number of kB", strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil || kb < 0 || kb > math.MaxInt64>>10 {
			return 0, fmt.Errorf("read this machine's memory: MemTotal is %q, not a number of kB", strings.TrimSpace(rest))
		}
		return kb << 10, nil
	}
	if err := lines.Err(); err != nil {
		return 0, fmt.Errorf("read this machine's memory: %w", err)
	}
	return 0, fmt.Errorf("read this machine's memory: /proc/meminfo has no MemTotal")
}
