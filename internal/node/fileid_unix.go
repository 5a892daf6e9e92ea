//go:build unix

package node

import (
	"io/fs"
	"syscall"
)

// fileNumbers are the device and inode of a file, which tell a file from
// another put in its place.
func fileNumbers(fi fs.FileInfo) (device, inode uint64) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev), st.Ino
	}
	return 0, 0
}
