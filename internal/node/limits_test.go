package node

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestFramesZipLimitHoldsTheZip: the limit frames.zip is stored under is
// never below the zip writeFramesZip makes, even for the longest frame
// names a key allows, an empty frame, or a single one.
func TestFramesZipLimitHoldsTheZip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, enginetest.SQLite)
	longName := strings.Repeat("n", 251) + ".png" // a key segment's 255 bytes
	for _, sizes := range [][]int{{0}, {1}, {70_000, 0, 5, 1 << 20}, make([]int, 200)} {
		var frames []store.Frame
		for i, size := range sizes {
			key := fmt.Sprintf("jobs/j1/frames/t.%d/%s", i, longName)
			f.PutContent(key, strings.Repeat("x", size))
			frames = append(frames, store.Frame{Frame: i + 1, ObjectKey: key, SizeBytes: int64(size)})
		}
		var zip bytes.Buffer
		if err := writeFramesZip(f.Ctx, f.Objects, &zip, frames, nil); err != nil {
			t.Fatal(err)
		}
		if limit := framesZipLimit(frames); int64(zip.Len()) > limit {
			t.Errorf("a zip of %d frames is %d bytes, over its limit of %d", len(frames), zip.Len(), limit)
		}
	}
}
