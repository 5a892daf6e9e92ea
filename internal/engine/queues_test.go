package engine_test

import (
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine"
)

// TestBlenderQueueNamesAreRiversAndTheVersions: a version's queue is the
// base queue and the version with "_" for ".", which River's names allow
// (they take no "."); no version is the base queue itself; what is not a
// version is refused rather than made into a name.
func TestBlenderQueueNamesAreRiversAndTheVersions(t *testing.T) {
	for _, tt := range []struct{ base, version, want string }{
		{engine.QueueRender, "4.3.2", "render_4_3_2"},
		{engine.QueueControl, "3.4.1", "control_3_4_1"},
		{engine.QueueRender, "10.0", "render_10_0"},
		{engine.QueueRender, "", "render"},
	} {
		if got, err := engine.BlenderQueue(tt.base, tt.version); err != nil || got != tt.want {
			t.Errorf("BlenderQueue(%q, %q) = %q, %v; want %q", tt.base, tt.version, got, err, tt.want)
		}
	}
	for _, bad := range []string{"4.3-beta", "4", "../4.3", "4.3.2.1"} {
		if got, err := engine.BlenderQueue(engine.QueueRender, bad); err == nil {
			t.Errorf("BlenderQueue of %q = %q, want an error", bad, got)
		}
	}
}
