package benchkit

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Proc is one renderfarm process.
type Proc struct {
	Cmd *exec.Cmd
	// URL is what follows the ready line: the API's URL for serve.
	URL     string
	LogPath string
	done    chan struct{}
}

// Start runs `binary args…` in logPath's directory, its stderr (the log)
// in logPath, and waits up to 90 s for a line of its stdout that starts with
// ready. The process is stopped at exit.
func Start(ctx context.Context, binary, logPath, ready string, args ...string) *Proc {
	log, err := os.Create(logPath)
	if err != nil {
		Fatalf("%v", err)
	}
	p := &Proc{Cmd: exec.Command(binary, args...), LogPath: logPath, done: make(chan struct{})}
	up := make(chan string, 1)
	p.Cmd.Stdout = &readyWriter{prefix: ready, up: up}
	p.Cmd.Stderr = log
	p.Cmd.Dir = filepath.Dir(logPath)
	if err := p.Cmd.Start(); err != nil {
		Fatalf("start renderfarm %s: %v", args[0], err)
	}
	AtExit(p.Stop)
	go func() { _ = p.Cmd.Wait(); log.Close(); close(p.done) }()
	select {
	case p.URL = <-up:
	case <-p.done:
		Fatalf("renderfarm %s exited at start:\n%s", args[0], Tail(logPath, 30))
	case <-time.After(90 * time.Second):
		Fatalf("renderfarm %s did not start:\n%s", args[0], Tail(logPath, 30))
	case <-ctx.Done():
		Fatalf("interrupted")
	}
	return p
}

// Pid is the process's id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop asks the process to stop and waits; it is killed after 30 s.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.Kill()
	}
}

// Kill kills the process with SIGKILL and waits for it to be gone.
func (p *Proc) Kill() {
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// readyWriter takes a process's stdout and passes on the rest of the
// first line that starts with prefix.
type readyWriter struct {
	prefix string
	up     chan string
	line   []byte
}

func (w *readyWriter) Write(b []byte) (int, error) {
	for _, c := range b {
		if c != '\n' {
			w.line = append(w.line, c)
			continue
		}
		if rest, ok := strings.CutPrefix(string(w.line), w.prefix); ok {
			select {
			case w.up <- rest:
			default:
			}
		}
		w.line = w.line[:0]
	}
	return len(b), nil
}

// Tail is the last lines of the file at path, for error messages.
func Tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	all := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(all[max(0, len(all)-lines):], "\n")
}
