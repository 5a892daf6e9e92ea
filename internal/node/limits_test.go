package node

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestZipLimitHoldsTheZip: the limit a zip is stored under is never below
// the zip writeZip makes, even for the longest names the farm makes, an
// empty file, or a single one; objects read for the preview alone take no
// room in it.
func TestZipLimitHoldsTheZip(t *testing.T) {
	t.Parallel()
	f := newFixture(t, enginetest.SQLite)
	longName := strings.Repeat("n", farm.MaxRelativeNameBytes-4) + ".png"
	for _, sizes := range [][]int{{0}, {1}, {70_000, 0, 5, 1 << 20}, make([]int, 200)} {
		var entries []zipEntry
		for i, size := range sizes {
			key := fmt.Sprintf("jobs/j1/frames/t.%d/frame_%04d.png", i, i)
			f.PutContent(key, strings.Repeat("x", size))
			entries = append(entries, zipEntry{name: fmt.Sprintf("%d%s", i, longName[len(fmt.Sprint(i)):]), key: key, size: int64(size)})
			// A proxy, read for the preview video alone.
			entries = append(entries, zipEntry{key: key, size: int64(size), video: true})
		}
		var zip bytes.Buffer
		if err := writeZip(f.Ctx, f.Objects, &zip, entries, nil); err != nil {
			t.Fatal(err)
		}
		if limit := zipLimit(entries); int64(zip.Len()) > limit {
			t.Errorf("a zip of %d files is %d bytes, over its limit of %d", len(sizes), zip.Len(), limit)
		}
	}
}
