package blender

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/renderfarm/renderfarm/internal/sandbox"
)

const (
	// killGrace is how long Blender gets to exit after SIGTERM before the
	// whole group is killed; Blender 3.4 dies at once on SIGTERM, so this
	// only matters for wrappers and stuck processes.
	killGrace = time.Second
	// drainGrace bounds the wait for the output pipe to close once Blender has
	// exited, in case something outside its process group still holds it.
	drainGrace = 500 * time.Millisecond
	// maxLineBytes caps one line of output; the rest of a longer line is
	// dropped (but still read, so Blender never blocks on a full pipe).
	maxLineBytes = 16 << 10
)

// exitStatus is how a Blender process ended.
type exitStatus struct {
	exitCode int            // -1 when killed by a signal
	signal   syscall.Signal // the signal that killed it, if any
	canceled bool           // the context ended while it ran
}

func (s exitStatus) failed() bool { return s.exitCode != 0 }

// describe says how the process ended, for errors without a better line.
func (s exitStatus) describe() string {
	if s.signal != 0 {
		return "Blender was killed by signal " + s.signal.String()
	}
	return fmt.Sprintf("Blender exited with code %d", s.exitCode)
}

// command is one Blender process to run.
type command struct {
	argv []string
	env  []string
	// paths are the directories a confined Blender may use besides the
	// read-only system.
	paths sandbox.Paths
	// onRead, if set, sees each line the moment it is read, ahead of
	// onLine's queue: a watchdog must time Blender, not the consumer of its
	// output.
	onRead func(string)
	// stdin, if set, is Blender's standard input (a session's commands);
	// run closes it once Blender has its own copy. nil reads /dev/null.
	stdin *os.File
}

// run starts c (confined by the Sandbox, then through Wrap) in a session
// and process group of its own with stdout and stderr on one pipe, so lines
// arrive in the order Blender wrote them, and calls onLine for each line
// from a single goroutine. It returns once the process has exited and the
// output is drained; onLine is never called after. When ctx ends, the group
// is stopped (see stopGroup) and run returns ctx's error with the status.
func (r *Runner) run(ctx context.Context, c command, onLine func(string)) (exitStatus, error) {
	if err := ctx.Err(); err != nil {
		return exitStatus{canceled: true}, err
	}
	argv := r.wrap(r.Sandbox.Command(c.argv, c.paths))
	if len(argv) == 0 {
		return exitStatus{}, fmt.Errorf("%w: Wrap returned an empty command", ErrNotStarted)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return exitStatus{}, fmt.Errorf("%w: %v", ErrNotStarted, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = c.env
	cmd.Stdout = pw
	cmd.Stderr = pw
	if c.stdin != nil {
		cmd.Stdin = c.stdin
		defer c.stdin.Close() // also when run fails before starting Blender
	}
	cmd.SysProcAttr = sysProcAttr(r.Sandbox.Confined())
	var lifeline *os.File
	if r.Sandbox.Confined() {
		// See sandbox.LifelineFD: the write end stays open here until
		// Blender has exited, so a confined Blender starts only while the
		// worker lives.
		lr, lw, err := os.Pipe()
		if err != nil {
			pr.Close()
			pw.Close()
			return exitStatus{}, fmt.Errorf("%w: %v", ErrNotStarted, err)
		}
		defer lw.Close()
		lifeline = lr
		// ExtraFiles start at descriptor 3.
		cmd.ExtraFiles = make([]*os.File, sandbox.LifelineFD-2)
		cmd.ExtraFiles[sandbox.LifelineFD-3] = lr
	}
	// On Linux the child dies with the thread that started it (see
	// sysProcAttr); holding the thread until Wait returns keeps Go from
	// retiring it under a running Blender.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	err = cmd.Start()
	if lifeline != nil {
		lifeline.Close()
	}
	if c.stdin != nil {
		c.stdin.Close()
	}
	if err != nil {
		pr.Close()
		pw.Close()
		return exitStatus{}, startError(argv, err)
	}
	pw.Close()
	pgid := cmd.Process.Pid

	// The pipe is read as fast as Blender writes, into a queue that another
	// goroutine hands to onLine at its own pace: a slow onLine (it stores
	// frames) must neither stall Blender nor lose the lines still queued
	// when Blender exits.
	queue := newLineQueue()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readLines(pr, func(line string) {
			if c.onRead != nil {
				c.onRead(line)
			}
			queue.push(line)
		})
	}()
	deliverDone := make(chan struct{})
	go func() {
		defer close(deliverDone)
		for {
			line, ok := queue.pop()
			if !ok {
				return
			}
			onLine(line)
		}
	}()

	exited := make(chan struct{})
	var canceled atomic.Bool
	go func() {
		select {
		case <-ctx.Done():
			canceled.Store(true)
			stopGroup(pgid, exited)
		case <-exited:
		}
	}()

	waitErr := cmd.Wait()
	close(exited)
	// Whatever Blender left behind in its group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	select {
	case <-readDone:
	case <-time.After(drainGrace):
		pr.Close()
		<-readDone
	}
	pr.Close()
	// Every line read is delivered before run returns.
	queue.close()
	<-deliverDone

	status := exitStatus{canceled: canceled.Load()}
	if waitErr != nil {
		var exitErr *exec.ExitError
		if !errors.As(waitErr, &exitErr) {
			return status, fmt.Errorf("blender: waiting for %s: %w", argv[0], waitErr)
		}
		status.exitCode = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			status.exitCode = -1
			status.signal = ws.Signal()
		}
		// bubblewrap reports its program's death by signal N as exit code
		// 128+N, as shells do; Blender itself exits with 0 or 1.
		if code := status.exitCode; r.Sandbox.Confined() && code > 128 && code <= 128+64 {
			status.exitCode = -1
			status.signal = syscall.Signal(code - 128)
		}
	}
	if status.canceled {
		return status, ctx.Err()
	}
	return status, nil
}

// stopGroup ends the process group led by pgid, whose leader is the
// runner's child: Blender itself, or the sandbox around it. The processes
// under the leader are killed first, and the leader is left to see them end:
// bubblewrap then reaps Blender and exits, whereas killed along with it,
// Blender would be left as a zombie for the node's init to reap, and a
// worker running as PID 1 in a container never does. They are killed
// outright because Blender is PID 1 of its namespace in the sandbox, which
// takes no SIGTERM from outside, and its run directory is thrown away
// anyway. A leader still running half a killGrace later, or a Blender
// leading its own group, gets SIGTERM, and the whole group SIGKILL after
// killGrace.
func stopGroup(pgid int, exited <-chan struct{}) {
	if below := groupMembers(pgid); len(below) > 0 {
		for _, pid := range below {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		select {
		case <-exited:
			return
		case <-time.After(killGrace / 2):
		}
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(killGrace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// readLines calls onLine for every line of r until EOF or a read error.
// Lines are trimmed of their line ending, capped at maxLineBytes and made
// valid UTF-8, since they end up in logs stored as text.
func readLines(r io.Reader, onLine func(string)) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if room := maxLineBytes - len(line); room > 0 {
			line = append(line, chunk[:min(room, len(chunk))]...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == nil || len(line) > 0 {
			s := strings.TrimRight(string(line), "\r\n")
			onLine(strings.ToValidUTF8(s, "\uFFFD"))
		}
		line = line[:0]
		if err != nil {
			return
		}
	}
}

// lineQueue is an unbounded FIFO of output lines between the goroutine that
// reads Blender's pipe and the one that calls onLine.
type lineQueue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	lines  []string
	closed bool
}

func newLineQueue() *lineQueue {
	q := &lineQueue{}
	q.cond = sync.NewCond(&q.mu)
	return q
}

func (q *lineQueue) push(line string) {
	q.mu.Lock()
	q.lines = append(q.lines, line)
	q.mu.Unlock()
	q.cond.Signal()
}

func (q *lineQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.cond.Broadcast()
}

// pop waits for the next line; it answers false once the queue is closed
// and empty.
func (q *lineQueue) pop() (string, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.lines) == 0 && !q.closed {
		q.cond.Wait()
	}
	if len(q.lines) == 0 {
		return "", false
	}
	line := q.lines[0]
	q.lines[0] = ""
	q.lines = q.lines[1:]
	return line, true
}
