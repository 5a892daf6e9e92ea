package benchkit

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// CPUMeter tells how busy the machine was during a measurement, and how
// much of that was not this benchmark's processes (PostgreSQL and the S3
// server count as others), so that a shared machine shows in the results.
type CPUMeter struct {
	start      time.Time
	busy, ours float64
}

// StartCPUMeter starts measuring now.
func StartCPUMeter() CPUMeter {
	return CPUMeter{start: time.Now(), busy: MachineCPU(), ours: ownCPU()}
}

// Report says, since the meter started, how many cores this benchmark's
// processes used and how many everything else did.
func (m CPUMeter) Report() string {
	busy := MachineCPU()
	wall := time.Since(m.start).Seconds()
	ours := ownCPU() - m.ours
	others := max(0, busy-m.busy-ours)
	return fmt.Sprintf("over these %.0f s: this benchmark's processes used %.2f cores on average, everything else %.2f cores; load average now %s",
		wall, ours/wall, others/wall, LoadAverage())
}

// MachineCPU is the CPU seconds the whole machine spent busy since boot.
func MachineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var user, nice, system, idle, iowait, irq, softirq, steal float64
	if _, err := fmt.Sscanf(line, "cpu %g %g %g %g %g %g %g %g", &user, &nice, &system, &idle, &iowait, &irq, &softirq, &steal); err != nil {
		return 0
	}
	const hz = 100 // USER_HZ on Linux
	return (user + nice + system + irq + softirq + steal) / hz
}

// ownCPU is the CPU seconds this process and its children that have ended
// (with their own children, Blender and ffmpeg) used.
func ownCPU() float64 {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	return Seconds(self.Utime) + Seconds(self.Stime) + Seconds(children.Utime) + Seconds(children.Stime)
}

// Seconds is a Timeval in seconds.
func Seconds(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// LoadAverage is the machine's load average over 1, 5 and 15 minutes.
func LoadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// CPUModel is the processor's name, as /proc/cpuinfo gives it.
func CPUModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

// MemTotal is the machine's memory, in GiB.
func MemTotal() string {
	kb := ProcStatusKB("/proc/meminfo", "MemTotal")
	if kb == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// ProcStatusKB reads a "Name:   123 kB" line of a /proc file.
func ProcStatusKB(path, name string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, name+":"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
