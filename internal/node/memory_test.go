package node

import (
	"bufio"
	"strings"
	"testing"
)

func TestMemTotalReadsTheKernelsLine(t *testing.T) {
	tests := []struct {
		name, meminfo string
		want          int64
		wantErr       string
	}{
		{name: "a 16 GB machine", meminfo: "MemTotal:       16315504 kB\nMemFree:         1000 kB\n", want: 16315504 << 10},
		{name: "not first", meminfo: "Foo: 1 kB\nMemTotal: 2048 kB\n", want: 2 << 20},
		{name: "no line", meminfo: "MemFree: 1 kB\n", wantErr: "has no MemTotal"},
		{name: "another unit", meminfo: "MemTotal: 16 GB\n", wantErr: `MemTotal is "16 GB", not a number of kB`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := memTotal(bufio.NewScanner(strings.NewReader(tt.meminfo)))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("memTotal = %d, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("memTotal = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestMachineMemoryIsThisMachines(t *testing.T) {
	got, err := MachineMemory()
	if err != nil || got < 64<<20 {
		t.Errorf("MachineMemory = %d, %v; want this machine's memory, at least 64 MiB", got, err)
	}
}
