package housekeeping

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// TestASlowWorkspaceDoesNotHoldUpAnothersWebhooks: a workspace's 20
// receivers hang until the test lets them answer; meanwhile another
// workspace's event is delivered at once, while every slow delivery still
// hangs. The slow workspace never has more than its cap in flight, and
// the deliveries turned away meanwhile are each sent once, on their first
// attempt, with their own id and body, when the receivers answer again.
func TestASlowWorkspaceDoesNotHoldUpAnothersWebhooks(t *testing.T) {
	t.Parallel()
	f := newWebhookFarm(t)
	release := make(chan struct{})
	slow := newReceiver(t, func(r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	fast := newReceiver(t, nil)
	noisy, quiet := f.workspace("noisy"), f.workspace("quiet")
	f.hooks(noisy, slow, farm.MaxWebhooksPerWorkspace)
	f.hooks(quiet, fast, 1)
	noisyJob, quietJob := f.job(noisy), f.job(quiet)

	f.cancel(noisy, noisyJob)
	got := map[string]arrival{}
	for range MaxDeliveriesPerWorkspace {
		a := slow.next(t, time.Minute, "slow delivery")
		got[a.deliveryID] = a
	}
	f.cancel(quiet, quietJob)
	fast.next(t, time.Minute, "the quiet workspace's delivery")
	if ended := slow.ended.Load(); ended != 0 {
		t.Errorf("the quiet workspace's event arrived after %d of the slow workspace's deliveries ended; want it while they all hang", ended)
	}
	if most := slow.most(); most > MaxDeliveriesPerWorkspace {
		t.Errorf("the slow workspace had %d deliveries in flight at once, want at most %d", most, MaxDeliveriesPerWorkspace)
	}

	// The slow workspace's deliveries that found no slot wait for one, then
	// snooze; the receivers answer again once one did.
	waitUntil(t, "a delivery snoozed", func() bool {
		return countRows(t, f.store, `river_job`, `kind = 'deliver_webhook' AND coalesce(json_extract(metadata, '$.snoozes'), 0) > 0`) > 0
	})
	close(release)
	for len(got) < farm.MaxWebhooksPerWorkspace {
		a := slow.next(t, time.Minute, "slow delivery after the receivers answer again")
		if _, again := got[a.deliveryID]; again {
			t.Errorf("delivery %s was sent twice", a.deliveryID)
		}
		got[a.deliveryID] = a
	}
	if most := slow.most(); most > MaxDeliveriesPerWorkspace {
		t.Errorf("the slow workspace had %d deliveries in flight at once, want at most %d", most, MaxDeliveriesPerWorkspace)
	}

	// Every event: delivered on its first attempt, River's job completed
	// with one attempt however often it was snoozed, the body sent the one
	// fixed when the event happened.
	const events = farm.MaxWebhooksPerWorkspace + 1
	waitUntil(t, "every River delivery job completed", func() bool {
		return countRows(t, f.store, `river_job`, `kind = 'deliver_webhook' AND state = 'completed'`) == events
	})
	if n := countRows(t, f.store, `river_job`, `kind = 'deliver_webhook' AND (attempt != 1 OR json_array_length(errors) > 0)`); n != 0 {
		t.Errorf("%d delivery jobs took more than one attempt or recorded an error", n)
	}
	if n := countRows(t, f.store, `river_job`, `kind = 'deliver_webhook' AND coalesce(json_extract(metadata, '$.snoozes'), 0) > 0`); n == 0 {
		t.Error("no delivery was snoozed: the slow workspace was never at its cap")
	} else {
		t.Logf("%d of the slow workspace's %d deliveries were snoozed", n, farm.MaxWebhooksPerWorkspace)
	}
	if n := countRows(t, f.store, `webhook_attempts`, `attempt = 1 AND http_status = 200 AND error = '' AND next_retry_at IS NULL`); n != events {
		t.Errorf("%d first attempts delivered, want %d", n, events)
	}
	if n := countRows(t, f.store, `webhook_events`, `state = ?`, store.EventDelivered); n != events {
		t.Errorf("%d events delivered, want %d", n, events)
	}
	for id, a := range got {
		ev, err := f.store.GetWebhookEvent(t.Context(), id)
		if err != nil {
			t.Fatalf("the receiver got delivery %s, which is no event: %v", id, err)
		}
		if a.body != string(ev.Body) {
			t.Errorf("delivery %s sent %s, want the event's body %s", id, a.body, ev.Body)
		}
	}
}

func TestDeliverySnoozeGrowsToTheLongestADeliveryTakes(t *testing.T) {
	last := time.Duration(0)
	for snoozes := range 12 {
		ceiling := min(deliverySnoozeFirst<<snoozes, deliverySnoozeMost)
		for range 100 {
			d := deliverySnooze(snoozes)
			if d > ceiling || d < ceiling*3/4 {
				t.Fatalf("deliverySnooze(%d) = %s, want within [%s, %s]", snoozes, d, ceiling*3/4, ceiling)
			}
		}
		if ceiling < last {
			t.Errorf("the wait after %d snoozes (%s) is shorter than after one fewer (%s)", snoozes, ceiling, last)
		}
		last = ceiling
	}
	if last != deliverySnoozeMost {
		t.Errorf("the wait stops growing at %s, want %s", last, deliverySnoozeMost)
	}
}

func TestDeliverySlotsCapEachWorkspaceAlone(t *testing.T) {
	ctx := t.Context()
	var s deliverySlots
	for i := range MaxDeliveriesPerWorkspace {
		if !s.take(ctx, "a", 0) {
			t.Fatalf("slot %d of workspace a refused", i+1)
		}
	}
	if s.take(ctx, "a", time.Millisecond) {
		t.Error("workspace a got a slot over its cap")
	}
	if !s.take(ctx, "b", 0) {
		t.Error("workspace b was refused because of workspace a")
	}

	// A delivery waiting for a slot of its workspace gets the first one
	// given back.
	got := make(chan bool)
	go func() { got <- s.take(ctx, "a", time.Minute) }()
	waitUntil(t, "a delivery waiting", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.workspaces["a"].waiting == 1
	})
	s.give("a")
	if !<-got {
		t.Fatal("the waiting delivery did not get the slot given back")
	}

	// No more deliveries of a workspace wait than deliveryWaitersPerWorkspace:
	// the others are refused at once.
	results := make(chan bool, deliveryWaitersPerWorkspace)
	for range deliveryWaitersPerWorkspace {
		go func() { results <- s.take(ctx, "a", time.Minute) }()
	}
	waitUntil(t, "deliveries waiting", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.workspaces["a"].waiting == deliveryWaitersPerWorkspace
	})
	if s.take(ctx, "a", time.Minute) {
		t.Error("a delivery over the waiting cap got a slot")
	}
	for range deliveryWaitersPerWorkspace {
		s.give("a")
		if !<-results {
			t.Error("a waiting delivery did not get the slot given back")
		}
	}
	for range MaxDeliveriesPerWorkspace {
		s.give("a")
	}
	s.give("b")
	if len(s.workspaces) != 0 || s.inFlight != 0 || s.waiting != 0 {
		t.Errorf("still counted after every slot was given back: %v, %d in flight, %d waiting", s.workspaces, s.inFlight, s.waiting)
	}
}

// Deliveries waiting for their workspace's slots never take the slots kept
// free for other workspaces' events: past that, they are refused at once.
func TestWaitingDeliveriesLeaveSlotsFree(t *testing.T) {
	ctx := t.Context()
	var s deliverySlots
	used := func() int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.inFlight + s.waiting
	}
	room := webhookDeliverySlots - deliverySlotsKeptFree
	waiters := make(chan bool, room)
	for i := 0; used() < room; i++ {
		ws := fmt.Sprintf("busy-%d", i)
		for range MaxDeliveriesPerWorkspace {
			if !s.take(ctx, ws, 0) {
				t.Fatalf("workspace %s refused under its cap", ws)
			}
		}
		for j := 0; j < deliveryWaitersPerWorkspace && used() < room; j++ {
			want := used() + 1
			go func() { waiters <- s.take(ctx, ws, time.Minute) }()
			waitUntil(t, "one more delivery waiting", func() bool { return used() == want })
		}
	}
	if s.take(ctx, "busy-0", time.Minute) {
		t.Errorf("a delivery waited with %d of %d slots in use", used(), webhookDeliverySlots)
	}
	if !s.take(ctx, "quiet", 0) {
		t.Errorf("a workspace under its cap was refused with %d of %d slots in use", used(), webhookDeliverySlots)
	}
}

// countRows counts the rows of a table that match where.
func countRows(t *testing.T, st *store.Store, table, where string, args ...any) int {
	t.Helper()
	var n int
	if err := st.DB().QueryRowContext(t.Context(), `SELECT COUNT(*) FROM `+table+` WHERE `+where, args...).Scan(&n); err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// waitUntil waits for cond, checking it every 20 ms for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not %s after a minute", what)
		}
	}
}
