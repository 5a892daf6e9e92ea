//go:build !unix

package node

import "io/fs"

// fileNumbers is unknown here: a file is told from another by its size
// and modification time alone.
func fileNumbers(fs.FileInfo) (device, inode uint64) { return 0, 0 }
