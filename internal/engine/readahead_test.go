package engine

import "testing"

// A dispatch reads a workspace's waiting chunks ahead: its part of the
// slots first, then twice as many at each read, never more than the
// slots left, nor maxReadAhead.
func TestReadAheadAsksForAWorkspacesPartThenDoubles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                    string
		left, asked, workspaces int
		want                    int
	}{
		{"one workspace: every slot left", 10, 0, 1, 10},
		{"no workspace counted: as one", 10, 0, 0, 10},
		{"four workspaces share 100 slots", 100, 0, 4, 25},
		{"fifty workspaces share 200 slots", 200, 0, 50, 4},
		{"a part rounds up", 10, 0, 3, 4},
		{"more workspaces than slots: one each", 3, 0, 10, 1},
		{"a read after one of 4 asks for 8", 200, 4, 50, 8},
		{"never more than the slots left", 5, 4, 50, 5},
		{"never more than maxReadAhead", 1000, 0, 1, maxReadAhead},
		{"doubling stops at maxReadAhead", 1000, 48, 2, maxReadAhead},
		{"a dispatch with no slot left reads one", 0, 0, 1, 1},
	}
	for _, tt := range tests {
		if got := readAheadSize(tt.left, tt.asked, tt.workspaces); got != tt.want {
			t.Errorf("%s: readAheadSize(%d, %d, %d) = %d, want %d", tt.name, tt.left, tt.asked, tt.workspaces, got, tt.want)
		}
	}
}
