package sandbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/sandbox/sandboxtest"
)

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "bwrap", "none"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("firejail"); err == nil {
		t.Error("ParseMode(firejail) succeeded")
	}
}

func TestCommand(t *testing.T) {
	s := &Sandbox{bwrap: "/usr/bin/bwrap", nsArgs: namespaceArgs[0], prlimit: "/usr/bin/prlimit", memory: 8 << 30, files: 4096}
	argv := s.Command([]string{"/usr/bin/blender", "-b", "--disable-autoexec"}, Paths{
		ReadOnly: []string{"/work/job1"},
		Writable: []string{"/tmp/run", "/work/job1/out/t1-1"},
	})
	head := []string{"/usr/bin/prlimit", "--data=8589934592", "--nofile=4096", "--", "/usr/bin/bwrap"}
	if !slices.Equal(argv[:len(head)], head) {
		t.Errorf("argv starts %q, want %q", argv[:len(head)], head)
	}
	tail := []string{"--remount-ro", "/", "--chdir", "/tmp/run", "--", "/usr/bin/blender", "-b", "--disable-autoexec"}
	if !slices.Equal(argv[len(argv)-len(tail):], tail) {
		t.Errorf("argv ends %q, want %q", argv[len(argv)-len(tail):], tail)
	}
	joined := " " + strings.Join(argv, " ") + " "
	for _, want := range []string{
		" --unshare-user --disable-userns --cap-drop ALL ",
		" --unshare-net ", " --unshare-pid ", " --unshare-ipc ", " --as-pid-1 ", " --die-with-parent ",
		" --ro-bind /usr /usr ", " --dev /dev ", " --proc /proc ", " --tmpfs /tmp ",
		" --ro-bind-try /etc/ld.so.cache /etc/ld.so.cache ",
		// The job read-only, then the directories inside it writable.
		" --bind /tmp/run /tmp/run --ro-bind /work/job1 /work/job1 --bind /work/job1/out/t1-1 /work/job1/out/t1-1 ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q:\n%s", want, joined)
		}
	}
	for _, never := range []string{"--new-session", "--share-net", "/etc /etc", "--bind / /"} {
		if strings.Contains(joined, " "+never+" ") {
			t.Errorf("argv has %q", never)
		}
	}
}

func TestCommandUnconfined(t *testing.T) {
	argv := []string{"blender", "-b"}
	if got := (*Sandbox)(nil).Command(argv, Paths{}); !slices.Equal(got, argv) {
		t.Errorf("nil sandbox: %q", got)
	}
	if got := (&Sandbox{}).Command(argv, Paths{Writable: []string{"/tmp"}}); !slices.Equal(got, argv) {
		t.Errorf("no bwrap, no limits: %q", got)
	}
	got := (&Sandbox{prlimit: "/usr/bin/prlimit", files: 100}).Command(argv, Paths{})
	if want := []string{"/usr/bin/prlimit", "--nofile=100", "--", "blender", "-b"}; !slices.Equal(got, want) {
		t.Errorf("limits only: %q, want %q", got, want)
	}
}

func TestBindArgs(t *testing.T) {
	tests := []struct {
		name  string
		paths Paths
		want  string
	}{
		{"writable inside read-only",
			Paths{ReadOnly: []string{"/w/job"}, Writable: []string{"/w/job/out"}},
			"--ro-bind /w/job /w/job --bind /w/job/out /w/job/out"},
		{"read-only inside writable",
			Paths{ReadOnly: []string{"/t/run/in"}, Writable: []string{"/t/run"}},
			"--bind /t/run /t/run --ro-bind /t/run/in /t/run/in"},
		{"same path: read-only wins",
			Paths{ReadOnly: []string{"/a/"}, Writable: []string{"/a"}},
			"--bind /a /a --ro-bind /a /a"},
		{"duplicates once",
			Paths{ReadOnly: []string{"/a", "/a/"}},
			"--ro-bind /a /a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(bindArgs(tt.paths), " "); got != tt.want {
				t.Errorf("bindArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewWithoutBwrap(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "bwrap")
	for _, mode := range []Mode{Bwrap, Auto, ""} {
		s, err := New(context.Background(), Config{Mode: mode, Bwrap: missing})
		if err == nil {
			t.Errorf("--sandbox %q without bubblewrap started (%s); want a refusal", mode, s)
			continue
		}
		for _, want := range []string{missing, "not installed", "apt-get install bubblewrap", "--sandbox none"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("--sandbox %q without bubblewrap: %q does not say %q", mode, err, want)
			}
		}
	}
	s, err := New(context.Background(), Config{Mode: None, Bwrap: missing, MemoryBytes: 3 << 29})
	if err != nil {
		t.Fatal(err)
	}
	if s.Confined() || s.MemoryLimit() != 3<<29 || !strings.Contains(s.String(), "1.5 GiB") || !strings.Contains(s.String(), "unconfined (--sandbox none)") {
		t.Errorf("none: confined %v, limit %d, %q", s.Confined(), s.MemoryLimit(), s)
	}
}

// A bubblewrap that is installed but cannot make its namespaces (a kernel
// without unprivileged user namespaces, a container's security profile)
// stops the node at start, with what bubblewrap said and the ways out.
func TestAutoRefusesABubblewrapThatDoesNotWork(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, script, says string
	}{
		{"exits 1", "#!/bin/sh\nexit 1\n", "exit status 1"},
		{"no user namespaces", "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace, likely because the kernel does not allow non-privileged user namespaces.' >&2\nexit 1\n",
			"No permissions to creating new namespace"},
		{"cannot mount /proc", "#!/bin/sh\necho 'bwrap: Can'\\''t mount proc on /newroot/proc: Operation not permitted' >&2\nexit 1\n",
			"mount proc on /newroot/proc"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bwrap := filepath.Join(dir, fmt.Sprintf("bwrap-%d", i))
			if err := os.WriteFile(bwrap, []byte(tt.script), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, mode := range []Mode{Auto, Bwrap} {
				s, err := New(context.Background(), Config{Mode: mode, Bwrap: bwrap})
				if err == nil {
					t.Fatalf("--sandbox %s with a bubblewrap that %s started (%s); want a refusal", mode, tt.name, s)
				}
				for _, want := range []string{bwrap, "does not work here", tt.says, "user namespaces", "--sandbox none"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("--sandbox %s: %q does not say %q", mode, err, want)
					}
				}
			}
		})
	}
}

// needBwrap returns a sandbox as a worker makes it with --sandbox bwrap.
func needBwrap(t *testing.T, cfg Config) *Sandbox {
	t.Helper()
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bwrap is not on PATH: install bubblewrap (apt-get install bubblewrap) to run the tests of the sandbox")
	}
	cfg.Mode = Bwrap
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox: %s", s)
	return s
}

// The tests below run this test binary inside the sandbox as a probe: with
// RENDERFARM_SANDBOX_PROBE set, TestMain runs the probe it names and exits.
func TestMain(m *testing.M) {
	if probe := os.Getenv("RENDERFARM_SANDBOX_PROBE"); probe != "" {
		if err := runProbe(probe, os.Args[1:]); err != nil {
			fmt.Println("probe failed:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runProbe(probe string, args []string) error {
	switch probe {
	case "connect":
		// connect ADDR: fails unless a TCP connection to ADDR opens.
		c, err := net.Dial("tcp", args[0])
		if err != nil {
			return err
		}
		return c.Close()
	case "write":
		// write PATH: fails unless PATH can be created.
		if err := os.WriteFile(args[0], []byte("x"), 0o600); err != nil {
			return err
		}
		return os.Remove(args[0])
	case "read":
		// read PATH: fails unless PATH can be read.
		_, err := os.ReadFile(args[0])
		return err
	case "print":
		// print PATH: writes the file to stdout.
		body, err := os.ReadFile(args[0])
		os.Stdout.Write(body)
		return err
	}
	return fmt.Errorf("unknown probe %q", probe)
}

// probe runs the test binary inside s with the given paths; it answers the
// probe's output and whether it succeeded.
func probe(t *testing.T, s *Sandbox, paths Paths, args ...string) (string, bool) {
	t.Helper()
	argv := s.Command(append([]string{os.Args[0]}, args[1:]...), paths)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "RENDERFARM_SANDBOX_PROBE=" + args[0]}
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("running the probe: %v\n%s", err, out)
	}
	return string(out), err == nil
}

func TestSandboxHasNoNetwork(t *testing.T) {
	s := needBwrap(t, Config{})
	addrs := sandboxtest.Listener(t)
	for _, addr := range addrs {
		if out, ok := probe(t, nil, Paths{}, "connect", addr); !ok {
			t.Fatalf("the listener at %s cannot be reached even unconfined: %s", addr, out)
		}
		out, ok := probe(t, s, Paths{}, "connect", addr)
		if ok {
			t.Errorf("a sandboxed program connected to %s", addr)
		}
		t.Logf("sandboxed connect to %s: %s", addr, strings.TrimSpace(out))
	}
}

func TestSandboxFiles(t *testing.T) {
	s := needBwrap(t, Config{MemoryBytes: 6 << 30, OpenFiles: 1234})
	root := t.TempDir()
	job, other, run := filepath.Join(root, "job"), filepath.Join(root, "other"), filepath.Join(root, "run")
	out := filepath.Join(job, "out")
	for _, dir := range []string{job, other, run, out} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{filepath.Join(job, "scene.blend"), filepath.Join(other, "secret.png")} {
		if err := os.WriteFile(f, []byte("data"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := Paths{ReadOnly: []string{job}, Writable: []string{run, out}}
	home, _ := os.UserHomeDir()
	source, err := filepath.Abs("sandbox_test.go")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		probe, path string
		ok          bool
	}{
		{"read", filepath.Join(job, "scene.blend"), true},
		{"read", "/usr/bin/true", true},
		{"write", filepath.Join(out, "frame_0001.png"), true},
		{"write", filepath.Join(run, "settings.json"), true},
		{"write", filepath.Join(job, "scene2.blend"), false},
		{"write", "/usr/lib/evil.so", false},
		{"write", "/etc/passwd", false},
		{"write", "/etc/renderfarm-probe", false},
		{"write", "/renderfarm-probe", false},
		{"write", "/tmp/scratch", true},
		{"read", filepath.Join(other, "secret.png"), false},
		{"write", filepath.Join(other, "x"), false},
		{"read", "/etc/shadow", false},
		{"read", source, false},
	}
	if home != "" && home != "/" {
		tests = append(tests, struct {
			probe, path string
			ok          bool
		}{"write", filepath.Join(home, "renderfarm-sandbox-probe"), false})
	}
	for _, tt := range tests {
		out, ok := probe(t, s, paths, tt.probe, tt.path)
		if ok != tt.ok {
			t.Errorf("%s %s inside the sandbox: ok = %v, want %v (%s)", tt.probe, tt.path, ok, tt.ok, strings.TrimSpace(out))
		} else if !ok {
			t.Logf("refused as it should be: %s", strings.TrimSpace(out))
		}
	}

	limits, _ := probe(t, s, paths, "print", "/proc/self/limits")
	for _, want := range []string{`Max data size\s+6442450944\s+6442450944`, `Max open files\s+1234\s+1234`} {
		if !regexpMatch(want, limits) {
			t.Errorf("limits inside lack %q:\n%s", want, limits)
		}
	}
	status, _ := probe(t, s, paths, "print", "/proc/self/status")
	if !regexpMatch(`CapEff:\s+0+\n`, status) {
		t.Errorf("capabilities inside:\n%s", status)
	}
	if slices.Contains(s.nsArgs, "--unshare-user") && !regexpMatch(`CapBnd:\s+0+\n`, status) {
		t.Errorf("capabilities could be regained inside:\n%s", status)
	}
	// The probe runs in a PID namespace of its own (whose /proc knows it
	// as PID 2, under the guard), where the node's processes do not exist.
	if !regexpMatch(`(?m)^NSpid:\s+2$`, status) {
		t.Errorf("the probe is not PID 2 of a namespace of its own:\n%s", status)
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }

// A confined program whose caller is gone by the time the sandbox is set up
// does not start.
func TestLifeline(t *testing.T) {
	s := needBwrap(t, Config{})
	if s.guard == "" {
		t.Skip("no bash to check the lifeline")
	}
	run := func(callerGone bool) (string, error) {
		argv := s.Command([]string{"sh", "-c", "echo program-ran; if [ -e /dev/fd/3 ]; then echo has-3; fi"}, Paths{})
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		lifeline, err := s.Lifeline(cmd)
		if err != nil || lifeline == nil {
			t.Fatalf("Lifeline = %v, %v; want one for a confined program", lifeline, err)
		}
		defer lifeline.Close()
		if callerGone {
			// What the kernel does to the write end when the caller dies.
			lifeline.write.Close()
		}
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lifeline.Started()
		err = cmd.Wait()
		return out.String(), err
	}
	out, err := run(false)
	if err != nil || !strings.HasPrefix(out, "program-ran\n") {
		t.Fatalf("with its caller alive: %v\n%s", err, out)
	}
	if strings.Contains(out, "has-3") {
		t.Error("the program inherited the lifeline")
	}
	out, err = run(true)
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 125 || strings.Contains(out, "program-ran") {
		t.Fatalf("with its caller gone: %v\n%s", err, out)
	}
	t.Log(strings.TrimSpace(out))

	unconfined, err := New(context.Background(), Config{Mode: None})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("true")
	if l, err := unconfined.Lifeline(cmd); l != nil || err != nil || cmd.ExtraFiles != nil {
		t.Errorf("unconfined: Lifeline = %v, %v, extra files %v; want none", l, err, cmd.ExtraFiles)
	}
}

// A confined program whose lifeline hangs up while it runs is killed, even
// when bubblewrap is still there: the sandbox does not count on
// bubblewrap's own death to end it.
func TestLifelineHangupKillsARunningProgram(t *testing.T) {
	s := needBwrap(t, Config{})
	if s.guard == "" {
		t.Skip("no bash to watch the lifeline")
	}
	argv := s.Command([]string{"sh", "-c", "echo started; exec sleep 60"}, Paths{})
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	lifeline, err := s.Lifeline(cmd)
	if err != nil {
		t.Fatal(err)
	}
	defer lifeline.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lifeline.Started()
	line := make([]byte, len("started\n"))
	if _, err := io.ReadFull(stdout, line); err != nil || string(line) != "started\n" {
		t.Fatalf("the program did not start: %q, %v", line, err)
	}
	// What the kernel does to the write end when the caller dies.
	lifeline.write.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) || exitErr.ExitCode() != 128+int(syscall.SIGKILL) {
			t.Errorf("the sandbox ended with %v, want exit code %d (the program killed)", err, 128+int(syscall.SIGKILL))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the program still ran 30 s after its lifeline hung up")
	}
}

// TestCommandInRoot: a root file system's system directories and /etc
// files take the place of the host's, its merged-/usr links are made the
// same, its own bash guards the program, and the run's directories are
// bound as always.
func TestCommandInRoot(t *testing.T) {
	root := t.TempDir()
	for _, dir := range []string{"usr/bin", "usr/lib", "etc"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{"bin": "usr/bin", "lib": "usr/lib"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "usr/bin/bash"), []byte("#!"), 0o755); err != nil {
		t.Fatal(err)
	}
	host := &Sandbox{bwrap: "/usr/bin/bwrap", nsArgs: namespaceArgs[0], guard: "/usr/bin/bash"}
	s, err := host.InRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root() != root || host.Root() != "" {
		t.Errorf("Root = %q, the host's sandbox %q; want %q and none", s.Root(), host.Root(), root)
	}
	argv := s.Command([]string{"/usr/bin/blender", "-b"}, Paths{ReadOnly: []string{"/work/job1"}, Writable: []string{"/tmp/run"}})
	joined := " " + strings.Join(argv, " ") + " "
	for _, want := range []string{
		" --ro-bind " + root + "/usr /usr ",
		" --symlink usr/bin /bin ", " --symlink usr/lib /lib ",
		" --ro-bind-try " + root + "/etc/ld.so.cache /etc/ld.so.cache ",
		" --ro-bind-try " + root + "/etc/passwd /etc/passwd ",
		" --dev /dev ", " --proc /proc ", " --tmpfs /tmp ",
		" --ro-bind-try /sys/devices/system/cpu /sys/devices/system/cpu ",
		" --bind /tmp/run /tmp/run --ro-bind /work/job1 /work/job1 ",
		" --remount-ro / --chdir /tmp/run -- /usr/bin/bash -c ",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("argv lacks %q:\n%s", want, joined)
		}
	}
	for _, never := range []string{"--ro-bind /usr /usr", "--ro-bind-try /etc/passwd /etc/passwd", "--ro-bind /usr/bin /usr/bin"} {
		if strings.Contains(joined, " "+never+" ") {
			t.Errorf("argv binds the host's system: %q", never)
		}
	}
	if !strings.HasSuffix(joined, " /usr/bin/blender -b ") {
		t.Errorf("argv does not end with the program, a path in the root: %s", joined)
	}
}

func TestInRootRefusals(t *testing.T) {
	if _, err := (&Sandbox{unconfined: "--sandbox none"}).InRoot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "only inside bubblewrap") {
		t.Errorf("an unconfined sandbox in a root: %v, want a refusal saying bubblewrap is needed", err)
	}
	host := &Sandbox{bwrap: "/usr/bin/bwrap", nsArgs: namespaceArgs[0]}
	if _, err := host.InRoot(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a root file system") {
		t.Errorf("a directory without usr: %v, want a refusal", err)
	}
}

// trixieRoot is Debian 13's root file system with Blender 4.3, which
// scripts/lib.sh installs; tests of roots skip where it is missing.
const trixieRoot = "/opt/renderfarm/blender/debian-trixie"

// TestProgramsInARootSeeItsSystemAndOnlyTheirDirectories: in Debian 13's
// root, a program reads Debian 13's files, not the host's, writes only
// its run's directories, and has no network.
func TestProgramsInARootSeeItsSystemAndOnlyTheirDirectories(t *testing.T) {
	host := needBwrap(t, Config{})
	if _, err := os.Stat(filepath.Join(trixieRoot, "usr/bin/bash")); err != nil {
		t.Skipf("no root file system at %s (scripts/lib.sh install_blenders makes it): %v", trixieRoot, err)
	}
	s, err := host.InRoot(trixieRoot)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join(trixieRoot, "etc/os-release"))
	if err != nil {
		t.Fatal(err)
	}
	run, other := t.TempDir(), t.TempDir()
	paths := Paths{Writable: []string{run}}
	sh := func(script string) (string, bool) {
		argv := s.Command([]string{"/usr/bin/bash", "-c", script}, paths)
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err == nil
	}
	// Debian 13's own /usr/lib/os-release, which /etc/os-release names.
	if out, ok := sh("cat /usr/lib/os-release"); !ok || out != string(want) {
		t.Errorf("inside the root, os-release is %q (%v); want the root's %q", out, ok, want)
	}
	if out, ok := sh("echo frame > " + run + "/frame && cat " + run + "/frame"); !ok || out != "frame\n" {
		t.Errorf("writing the run's directory: %q, %v", out, ok)
	}
	for _, path := range []string{"/usr/bin/evil", "/etc/renderfarm-probe", other + "/x"} {
		if out, ok := sh("echo x > " + path); ok {
			t.Errorf("wrote %s inside the root: %s", path, out)
		}
	}
	if out, ok := sh("ls " + other); ok {
		t.Errorf("listed a directory of the host not given: %s", out)
	}
	for _, addr := range sandboxtest.Listener(t) {
		host, port, _ := net.SplitHostPort(addr)
		if strings.Contains(host, ":") {
			continue // bash's /dev/tcp takes IPv4 here
		}
		connect := "exec 3<>/dev/tcp/" + host + "/" + port
		if out, err := exec.Command("bash", "-c", connect).CombinedOutput(); err != nil {
			t.Fatalf("the listener at %s cannot be reached even unconfined: %v %s", addr, err, out)
		}
		if out, ok := sh(connect); ok {
			t.Errorf("connected to %s from inside the root: %s", addr, out)
		}
	}
}
