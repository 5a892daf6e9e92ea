//go:build unix

package metrics

import "syscall"

// diskSpace is the space free for the farm's user, and the total size, of
// the file system that holds dir.
func diskSpace(dir string) (free, size uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), true
}
