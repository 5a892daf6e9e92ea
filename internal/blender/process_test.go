package blender

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// A slow consumer of Blender's output (the farm stores each frame as its
// line arrives) still gets every line, even those still queued when the
// process exits.
func TestRunDeliversEveryLineToASlowConsumer(t *testing.T) {
	r := &Runner{}
	var got []string
	status, err := r.run(context.Background(), command{argv: []string{"sh", "-c", "for i in $(seq 1 300); do echo line $i; done"}}, func(line string) {
		time.Sleep(5 * time.Millisecond) // 1.5 s in all, three times drainGrace
		got = append(got, line)
	})
	if err != nil || status.failed() {
		t.Fatalf("run: %v %+v", err, status)
	}
	if len(got) != 300 || got[299] != "line 300" {
		t.Fatalf("got %d lines (last %q), want all 300", len(got), fmt.Sprint(got[len(got)-1:]))
	}
}
