// Package benchkit holds what the benchmark programs under bench/ share:
// undoing what they set up when they end or fail, starting renderfarm
// processes, medians, and how busy the machine was meanwhile.
package benchkit

import (
	"fmt"
	"os"
)

// exits are what to undo at the end, last first: processes, databases, the
// bucket, the work directory. Fatalf runs them too, so that a failure
// leaves nothing behind.
var exits []func()

// AtExit adds f to what RunExits undoes.
func AtExit(f func()) { exits = append(exits, f) }

// RunExits runs what AtExit registered, last first.
func RunExits() {
	for len(exits) > 0 {
		f := exits[len(exits)-1]
		exits = exits[:len(exits)-1]
		f()
	}
}

// Fatalf reports a failure, undoes everything and exits with status 1.
func Fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	RunExits()
	os.Exit(1)
}
