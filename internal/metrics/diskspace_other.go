//go:build !unix

package metrics

// diskSpace is unknown here: no disk series are reported.
func diskSpace(string) (free, size uint64, ok bool) { return 0, 0, false }
