package node

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// MachineMemory is this machine's memory as the kernel reports it
// (MemTotal in /proc/meminfo), in bytes: what the node offers a job's
// minimumRam. 0 where there is no /proc/meminfo; such a node takes only
// jobs that ask for no memory.
func MachineMemory() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if os.IsNotExist(err) {
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
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("read this machine's memory: MemTotal is %q, not a number of kB", strings.TrimSpace(rest))
		}
		return kb << 10, nil
	}
	if err := lines.Err(); err != nil {
		return 0, fmt.Errorf("read this machine's memory: %w", err)
	}
	return 0, fmt.Errorf("read this machine's memory: /proc/meminfo has no MemTotal")
}
