package node

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

// Mount lines as the kernel writes them: this test machine's hybrid
// layout (v1 controllers, cgroup2 beside them at unified) and a pod's
// (cgroup2 alone, at /sys/fs/cgroup).
const (
	mountinfoHybrid = "23 1 0:21 / /sys rw,nosuid - sysfs sysfs rw\n" +
		"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n" +
		"32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n" +
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n" +
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	mountinfoPod = "1201 1190 0:84 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime master:7 - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n"
)

func TestCgroupMemoryLimitReadsTheProcesssCgroup(t *testing.T) {
	tests := []struct {
		name     string
		files    fstest.MapFS
		want     int64 // 0: no limit
		wantFile string
		wantNote string
	}{
		{
			name: "a pod's cgroup v2 limit is the one at the namespace's root",
			files: fstest.MapFS{
				"proc/self/cgroup":          {Data: []byte("0::/\n")},
				"proc/self/mountinfo":       {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/memory.max":  {Data: []byte("8589934592\n")},
				"sys/fs/cgroup/cgroup.type": {Data: []byte("domain\n")},
			},
			want: 8 << 30, wantFile: "/sys/fs/cgroup/memory.max",
		},
		{
			name: "a cgroup v2 memory.max of max is no limit",
			files: fstest.MapFS{
				"proc/self/cgroup":         {Data: []byte("0::/\n")},
				"proc/self/mountinfo":      {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/memory.max": {Data: []byte("max\n")},
			},
		},
		{
			name: "a parent's smaller cgroup v2 limit holds for its children",
			files: fstest.MapFS{
				"proc/self/cgroup":                                   {Data: []byte("0::/kubepods/pod1/ctr\n")},
				"proc/self/mountinfo":                                {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/kubepods/pod1/ctr/memory.max":         {Data: []byte("17179869184\n")},
				"sys/fs/cgroup/kubepods/pod1/memory.max":             {Data: []byte("8589934592\n")},
				"sys/fs/cgroup/kubepods/memory.max":                  {Data: []byte("max\n")},
				"sys/fs/cgroup/kubepods/pod2/memory.max":             {Data: []byte("1\n")},
				"sys/fs/cgroup/kubepods/pod1/ctr/cgroup.controllers": {Data: []byte("memory\n")},
			},
			want: 8 << 30, wantFile: "/sys/fs/cgroup/kubepods/pod1/memory.max",
		},
		{
			name: "a cgroup v1 limit is read under the memory controller's mount",
			files: fstest.MapFS{
				"proc/self/cgroup":    {Data: []byte("9:name=systemd:/\n5:devices:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n")},
				"proc/self/mountinfo": {Data: []byte(mountinfoHybrid)},
				"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": {Data: []byte("4294967296\n")},
				"sys/fs/cgroup/memory/process_api/memory.limit_in_bytes":     {Data: []byte("9223372036854771712\n")},
				"sys/fs/cgroup/memory/memory.limit_in_bytes":                 {Data: []byte("9223372036854771712\n")},
				"sys/fs/cgroup/cpu/process_api/abc/memory.limit_in_bytes":    {Data: []byte("1\n")},
			},
			want: 4 << 30, wantFile: "/sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes",
		},
		{
			name: "cgroup v1's largest number is no limit, and cgroup2 without the memory controller has none",
			files: fstest.MapFS{
				"proc/self/cgroup":    {Data: []byte("4:memory:/process_api/abc\n0::/\n")},
				"proc/self/mountinfo": {Data: []byte(mountinfoHybrid)},
				"sys/fs/cgroup/memory/process_api/abc/memory.limit_in_bytes": {Data: []byte("9223372036854771712\n")},
				"sys/fs/cgroup/memory/memory.limit_in_bytes":                 {Data: []byte("9223372036854775807\n")},
				"sys/fs/cgroup/unified/cgroup.controllers":                   {Data: []byte("\n")},
			},
		},
		{
			name: "a container's cgroup v1 mount of its own cgroup (no cgroup namespace) is found by its root",
			files: fstest.MapFS{
				"proc/self/cgroup":                           {Data: []byte("4:memory:/docker/abc\n")},
				"proc/self/mountinfo":                        {Data: []byte("35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n")},
				"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("2147483648")},
			},
			want: 2 << 30, wantFile: "/sys/fs/cgroup/memory/memory.limit_in_bytes",
		},
		{
			name: "a mount of another part of the hierarchy is not the process's cgroup",
			files: fstest.MapFS{
				"proc/self/cgroup":                           {Data: []byte("4:memory:/docker/abcd\n")},
				"proc/self/mountinfo":                        {Data: []byte("35 31 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n")},
				"sys/fs/cgroup/memory/memory.limit_in_bytes": {Data: []byte("2147483648")},
			},
		},
		{
			name: "a cgroup outside the process's cgroup namespace cannot be found, and is not guessed",
			files: fstest.MapFS{
				"proc/self/cgroup":         {Data: []byte("0::/../../other\n")},
				"proc/self/mountinfo":      {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
				"sys/fs/other/memory.max":  {Data: []byte("1\n")},
			},
		},
		{
			name: "a mount point with a space is unescaped",
			files: fstest.MapFS{
				"proc/self/cgroup":           {Data: []byte("0::/\n")},
				"proc/self/mountinfo":        {Data: []byte(`7 1 0:84 / /my\040cgroup rw - cgroup2 cgroup2 rw` + "\n")},
				"my cgroup/memory.max":       {Data: []byte("1073741824\n")},
				"sys/fs/cgroup/memory.max":   {Data: []byte("1\n")},
				"my\\040cgroup/memory.max":   {Data: []byte("2\n")},
				"proc/self/cgroup.unrelated": {Data: []byte("x")},
			},
			want: 1 << 30, wantFile: "/my cgroup/memory.max",
		},
		{
			name: "no /proc/self/cgroup is no limit, noted",
			files: fstest.MapFS{
				"proc/self/mountinfo":      {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
			},
			wantNote: "proc/self/cgroup",
		},
		{
			name: "no mountinfo is no limit, noted",
			files: fstest.MapFS{
				"proc/self/cgroup":         {Data: []byte("0::/\n")},
				"sys/fs/cgroup/memory.max": {Data: []byte("1073741824\n")},
			},
			wantNote: "proc/self/mountinfo",
		},
		{
			name: "no memory.max anywhere is no limit, and nothing to note",
			files: fstest.MapFS{
				"proc/self/cgroup":    {Data: []byte("0::/a/b\n")},
				"proc/self/mountinfo": {Data: []byte(mountinfoPod)},
			},
		},
		{
			name: "a garbled limit is passed over and noted; an ancestor's good one still holds",
			files: fstest.MapFS{
				"proc/self/cgroup":            {Data: []byte("0::/a\n")},
				"proc/self/mountinfo":         {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/a/memory.max":  {Data: []byte("8GiB\n")},
				"sys/fs/cgroup/memory.max":    {Data: []byte("1073741824\n")},
				"sys/fs/cgroup/a/memory.high": {Data: []byte("1\n")},
			},
			want: 1 << 30, wantFile: "/sys/fs/cgroup/memory.max", wantNote: `"8GiB" is not a number of bytes`,
		},
		{
			name: "a limit file too long to be one is passed over and noted",
			files: fstest.MapFS{
				"proc/self/cgroup":         {Data: []byte("0::/\n")},
				"proc/self/mountinfo":      {Data: []byte(mountinfoPod)},
				"sys/fs/cgroup/memory.max": {Data: []byte(strings.Repeat("1", 100))},
			},
			wantNote: "longer than 64 bytes",
		},
		{
			name: "garbled cgroup and mount lines are passed over",
			files: fstest.MapFS{
				"proc/self/cgroup": {Data: []byte("garbage\n::\nx:memory:/a\n4:memory:relative\n0::/\n")},
				"proc/self/mountinfo": {Data: []byte("garbage\n1 2 3 / /sys/fs/cgroup rw - cgroup2\n" +
					"1 2 3 / sys/fs/cgroup rw - cgroup2 cgroup2 rw\n" +
					`1 2 3 / /sys/fs/cgroup\9 rw - cgroup2 cgroup2 rw` + "\n" +
					"1 2 3 / /sys/fs/cgroup/../../etc rw - cgroup2 cgroup2 rw\n")},
				"sys/fs/cgroup/memory.max":   {Data: []byte("1\n")},
				"sys/fs/cgroup/a/memory.max": {Data: []byte("1\n")},
				"etc/memory.max":             {Data: []byte("1\n")},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limit, ok, notes := cgroupMemoryLimit(tt.files)
			if tt.want == 0 {
				if ok {
					t.Errorf("cgroupMemoryLimit = %d from %s; want no limit", limit.bytes, limit.file)
				}
			} else if !ok || limit.bytes != tt.want || limit.file != tt.wantFile {
				t.Errorf("cgroupMemoryLimit = %d from %q (%v); want %d from %q", limit.bytes, limit.file, ok, tt.want, tt.wantFile)
			}
			if tt.wantNote == "" && len(notes) > 0 {
				t.Errorf("notes = %q; want none", notes)
			}
			if tt.wantNote != "" && !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, tt.wantNote) }) {
				t.Errorf("notes = %q; want one with %q", notes, tt.wantNote)
			}
		})
	}
}

func TestParseCgroupLimitTakesNumbersAlone(t *testing.T) {
	tests := []struct {
		version cgroupVersion
		content string
		want    int64
		set     bool
		wantErr bool
	}{
		{cgroupV2, "8589934592\n", 8 << 30, true, false},
		{cgroupV2, "8589934592", 8 << 30, true, false},
		{cgroupV2, "max\n", 0, false, false},
		{cgroupV2, "0\n", 0, true, false},
		{cgroupV1, "4294967296\n", 4 << 30, true, false},
		{cgroupV1, "9223372036854771712\n", 0, false, false},
		{cgroupV1, "9223372036854710272\n", 0, false, false},
		{cgroupV1, "18446744073709551615\n", 0, false, false},
		{cgroupV1, "max\n", 0, false, true},
		{cgroupV2, "18446744073709551616\n", 0, false, true},
		{cgroupV2, "", 0, false, true},
		{cgroupV2, "\n", 0, false, true},
		{cgroupV2, "-1\n", 0, false, true},
		{cgroupV2, "+1\n", 0, false, true},
		{cgroupV2, " 1\n", 0, false, true},
		{cgroupV2, "1 2\n", 0, false, true},
		{cgroupV2, "1\n\n", 0, false, true},
		{cgroupV2, "0x10\n", 0, false, true},
		{cgroupV2, "1_000\n", 0, false, true},
		{cgroupV2, "１\n", 0, false, true},
		{cgroupV2, "max max\n", 0, false, true},
	}
	for _, tt := range tests {
		got, set, err := parseCgroupLimit(tt.version, tt.content)
		if got != tt.want || set != tt.set || (err != nil) != tt.wantErr {
			t.Errorf("parseCgroupLimit(v%d, %q) = %d, %v, %v; want %d, %v, an error: %v", tt.version, tt.content, got, set, err, tt.want, tt.set, tt.wantErr)
		}
	}
}

func TestParseMountinfoFindsTheCgroupHierarchiesThatHoldMemory(t *testing.T) {
	got := parseMountinfo(mountinfoHybrid + mountinfoPod)
	want := []cgroupMount{
		{version: cgroupV1, root: "/", point: "/sys/fs/cgroup/memory"},
		{version: cgroupV2, root: "/", point: "/sys/fs/cgroup/unified"},
		{version: cgroupV2, root: "/", point: "/sys/fs/cgroup"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("parseMountinfo = %+v; want %+v", got, want)
	}
}

func TestCgroupDirsClimbToTheMountsRoot(t *testing.T) {
	tests := []struct {
		mount cgroupMount
		path  string
		want  []string
	}{
		{cgroupMount{cgroupV2, "/", "/sys/fs/cgroup"}, "/", []string{"sys/fs/cgroup"}},
		{cgroupMount{cgroupV2, "/", "/sys/fs/cgroup"}, "/a/b", []string{"sys/fs/cgroup/a/b", "sys/fs/cgroup/a", "sys/fs/cgroup"}},
		{cgroupMount{cgroupV1, "/docker", "/sys/fs/cgroup/memory"}, "/docker/abc", []string{"sys/fs/cgroup/memory/abc", "sys/fs/cgroup/memory"}},
		{cgroupMount{cgroupV1, "/docker", "/sys/fs/cgroup/memory"}, "/dockerx", nil},
		{cgroupMount{cgroupV2, "/", "/"}, "/a", []string{"a", "."}},
	}
	for _, tt := range tests {
		if got := cgroupDirs(tt.mount, tt.path); !slices.Equal(got, tt.want) {
			t.Errorf("cgroupDirs(%+v, %q) = %q; want %q", tt.mount, tt.path, got, tt.want)
		}
	}
}
