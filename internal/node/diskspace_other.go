//go:build !unix

package node

// freeBytes is unknown here: the node relies on the errors of full
// writes alone.
func freeBytes(string) (uint64, bool) { return 0, false }
