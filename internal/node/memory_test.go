package node

import (
	"bufio"
	"os"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
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

func TestNodeMemoryIsTheLeastOfTheMachinesAndItsCgroups(t *testing.T) {
	const meminfo = "MemTotal:       24683664 kB\nMemFree:         1000 kB\n" // 23.5 GiB
	pod := func(memoryMax string) fstest.MapFS {
		files := fstest.MapFS{
			"proc/meminfo":        {Data: []byte(meminfo)},
			"proc/self/cgroup":    {Data: []byte("0::/\n")},
			"proc/self/mountinfo": {Data: []byte(mountinfoPod)},
		}
		if memoryMax != "" {
			files["sys/fs/cgroup/memory.max"] = &fstest.MapFile{Data: []byte(memoryMax)}
		}
		return files
	}
	tests := []struct {
		name    string
		files   fstest.MapFS
		blender int64
		want    Memory
	}{
		{
			name:  "a pod limited to 8 GiB offers 8 GiB",
			files: pod("8589934592\n"),
			want:  Memory{Bytes: 8 << 30, Machine: 24683664 << 10, Cgroup: 8 << 30, CgroupFile: "/sys/fs/cgroup/memory.max"},
		},
		{
			name:  "a limit above the machine's memory leaves the machine's",
			files: pod("68719476736\n"),
			want:  Memory{Bytes: 24683664 << 10, Machine: 24683664 << 10, Cgroup: 64 << 30, CgroupFile: "/sys/fs/cgroup/memory.max"},
		},
		{
			name:  "no limit is the machine's memory",
			files: pod("max\n"),
			want:  Memory{Bytes: 24683664 << 10, Machine: 24683664 << 10},
		},
		{
			name:  "no cgroup file is the machine's memory",
			files: fstest.MapFS{"proc/meminfo": {Data: []byte(meminfo)}},
			want:  Memory{Bytes: 24683664 << 10, Machine: 24683664 << 10, Unread: []string{"open proc/self/cgroup: file does not exist"}},
		},
		{
			name:  "a garbled cgroup file is the machine's memory",
			files: pod("a lot\n"),
			want:  Memory{Bytes: 24683664 << 10, Machine: 24683664 << 10, Unread: []string{`/sys/fs/cgroup/memory.max: memory limit "a lot" is not a number of bytes`}},
		},
		{
			name:    "a Blender memory limit below both is what a render can have",
			files:   pod("8589934592\n"),
			blender: 4 << 30,
			want:    Memory{Bytes: 4 << 30, Machine: 24683664 << 10, Cgroup: 8 << 30, CgroupFile: "/sys/fs/cgroup/memory.max", Blender: 4 << 30},
		},
		{
			name:    "a Blender memory limit above the cgroup's leaves the cgroup's",
			files:   pod("8589934592\n"),
			blender: 16 << 30,
			want:    Memory{Bytes: 8 << 30, Machine: 24683664 << 10, Cgroup: 8 << 30, CgroupFile: "/sys/fs/cgroup/memory.max", Blender: 16 << 30},
		},
		{
			name:  "a limit of 7.5 GiB offers 7, not the 8 the farm would round it up to",
			files: pod("8053063680\n"),
			want:  Memory{Bytes: 7 << 30, Machine: 24683664 << 10, Cgroup: 7680 << 20, CgroupFile: "/sys/fs/cgroup/memory.max"},
		},
		{
			name:    "a Blender memory limit of 3.5 GiB offers 3",
			files:   pod("max\n"),
			blender: 3584 << 20,
			want:    Memory{Bytes: 3 << 30, Machine: 24683664 << 10, Blender: 3584 << 20},
		},
		{
			name:  "nothing at all is 0, as before",
			files: fstest.MapFS{},
			want:  Memory{Unread: []string{"open proc/self/cgroup: file does not exist"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := NodeMemory(tt.files, tt.blender)
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("NodeMemory = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestNodeMemoryFailsOnAGarbledMemTotalAlone(t *testing.T) {
	_, err := NodeMemory(fstest.MapFS{"proc/meminfo": {Data: []byte("MemTotal: lots\n")}}, 0)
	if err == nil || !strings.Contains(err.Error(), "not a number of kB") {
		t.Errorf("NodeMemory = %v; want MemTotal's error", err)
	}
}

func TestNodeMemoryOnThisMachineIsAtMostItsMemTotal(t *testing.T) {
	got, err := NodeMemory(os.DirFS("/"), 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	total, err := memTotal(bufio.NewScanner(f))
	if err != nil {
		t.Fatal(err)
	}
	if got.Machine != total || got.Bytes > total || got.Bytes < 64<<20 {
		t.Errorf("NodeMemory = %+v; want MemTotal (%d) as Machine, and at least 64 MiB and at most it as Bytes", got, total)
	}
	t.Logf("this machine: %+v", got)
}
