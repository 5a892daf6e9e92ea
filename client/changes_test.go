package client_test

import (
	"testing"

	"github.com/renderfarm/renderfarm/client"
)

func TestProgressChangesPassesOnlyWhatIsNew(t *testing.T) {
	var seen []client.Progress
	report := client.ProgressChanges(func(p *client.Progress) { seen = append(seen, *p) })
	eta := func(s float64) *float64 { return &s }

	polls := []client.Progress{
		{JobID: "j", Status: client.StatusBooting, FramesTotal: 4},
		{JobID: "j", Status: client.StatusBooting, FramesTotal: 4},
		{JobID: "j", Status: client.StatusRendering, FramesTotal: 4, FramesRendering: 2},
		{JobID: "j", Status: client.StatusRendering, FramesTotal: 4, FramesRendering: 2},
		{JobID: "j", Status: client.StatusRendering, FramesTotal: 4, FramesRendering: 2, FramesCompleted: 1, EtaSeconds: eta(6)},
		{JobID: "j", Status: client.StatusRendering, FramesTotal: 4, FramesRendering: 2, FramesCompleted: 1, EtaSeconds: eta(6)},
		{JobID: "j", Status: client.StatusRendering, FramesTotal: 4, FramesRendering: 2, FramesCompleted: 1, EtaSeconds: eta(5)},
		{JobID: "j", Status: client.StatusCompleted, FramesTotal: 4, FramesCompleted: 4},
	}
	for i := range polls {
		report(&polls[i])
	}
	want := []int{0, 2, 4, 6, 7} // the polls that brought something new
	if len(seen) != len(want) {
		t.Fatalf("passed on %d reports, want %d: %+v", len(seen), len(want), seen)
	}
	for i, w := range want {
		if seen[i].Status != polls[w].Status || seen[i].FramesCompleted != polls[w].FramesCompleted {
			t.Errorf("report %d = %+v, want poll %d", i, seen[i], w)
		}
	}
}

func TestProgressChangesKeepsItsOwnCopy(t *testing.T) {
	calls := 0
	report := client.ProgressChanges(func(*client.Progress) { calls++ })
	p := client.Progress{Status: client.StatusRendering, FramesTotal: 4}
	report(&p)
	// A caller reusing its Progress between polls must not hide the change.
	p.FramesCompleted = 1
	report(&p)
	if calls != 2 {
		t.Errorf("fn called %d times, want 2", calls)
	}
}
