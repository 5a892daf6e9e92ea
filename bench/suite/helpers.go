package main

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func median[T any](rs []T, of func(T) time.Duration) time.Duration {
	ds := make([]time.Duration, len(rs))
	for i, r := range rs {
		ds[i] = of(r)
	}
	return medianOf(ds)
}

func medianOf(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

func medianFloat(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	fs = slices.Clone(fs)
	slices.Sort(fs)
	if len(fs)%2 == 1 {
		return fs[len(fs)/2]
	}
	return (fs[len(fs)/2-1] + fs[len(fs)/2]) / 2
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func millis(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.0f ms", ms(d))
}

// thousands writes n with a comma every three digits.
func thousands(n float64) string {
	s := strconv.FormatFloat(n, 'f', 0, 64)
	var out []byte
	for i, c := range []byte(s) {
		if i > 0 && (len(s)-i)%3 == 0 && s[0] != '-' {
			out = append(out, ',')
		}
		out = append(out, c)
	}
	return string(out)
}

func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}

// cpuMeter tells how busy the machine was during a measurement, and how
// much of that was not this benchmark's processes (PostgreSQL and the S3
// server count as others), so that a shared machine shows in the results.
type cpuMeter struct {
	start      time.Time
	busy, ours float64
}

func startCPUMeter() cpuMeter {
	return cpuMeter{start: time.Now(), busy: machineCPU(), ours: ourCPU()}
}

func (m cpuMeter) report() string {
	busy := machineCPU()
	wall := time.Since(m.start).Seconds()
	ours := ourCPU() - m.ours
	others := max(0, busy-m.busy-ours)
	return fmt.Sprintf("over these %.0f s: this benchmark's processes used %.2f cores on average, everything else %.2f cores; load average now %s",
		wall, ours/wall, others/wall, loadAverage())
}

// machineCPU is the CPU seconds the whole machine spent busy since boot.
func machineCPU() float64 {
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

// ourCPU is the CPU seconds this process and its children that have ended
// (with their own children, Blender and ffmpeg) used.
func ourCPU() float64 {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	secs := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return secs(self.Utime) + secs(self.Stime) + secs(children.Utime) + secs(children.Stime)
}

func loadAverage() string {
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

func cpuModel() string {
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

func memTotal() string {
	kb := procStatusKB("/proc/meminfo", "MemTotal")
	if kb == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

// procStatusKB reads a "Name:   123 kB" line of a /proc file.
func procStatusKB(path, name string) int64 {
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

// exits are what to undo at the end, last first: processes, databases, the
// bucket, the work directory. fatalf runs them too, so that a failure
// leaves nothing behind.
var exits []func()

func atExit(f func()) { exits = append(exits, f) }

func runExits() {
	for len(exits) > 0 {
		f := exits[len(exits)-1]
		exits = exits[:len(exits)-1]
		f()
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	runExits()
	os.Exit(1)
}
