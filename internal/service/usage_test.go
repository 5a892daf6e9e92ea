package service

import (
	"strings"
	"testing"
	"time"
)

// TestCheckUsagePeriod: the defaults are the last 30 days by day; a
// period that ends before it starts, one over 366 days, and an unknown
// grouping are refused naming the field.
func TestCheckUsagePeriod(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	from, to, by, err := CheckUsagePeriod(time.Time{}, time.Time{}, "", now)
	if err != nil || !to.Equal(now) || !from.Equal(now.Add(-30*24*time.Hour)) || by != "day" {
		t.Errorf("defaults = %v, %v, %q, %v; want the 30 days to now, by day", from, to, by, err)
	}
	for _, c := range []struct {
		name     string
		from, to time.Time
		groupBy  string
		want     string
	}{
		{"backwards", now, now.Add(-time.Hour), "job", "must be before"},
		{"empty", now, now, "job", "must be before"},
		{"too long", now.Add(-367 * 24 * time.Hour), now, "day", "at most 366 days"},
		{"by week", time.Time{}, time.Time{}, "week", `"day" or "job"`},
	} {
		if _, _, _, err := CheckUsagePeriod(c.from, c.to, c.groupBy, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if _, _, _, err := CheckUsagePeriod(now.Add(-366*24*time.Hour), now, "job", now); err != nil {
		t.Errorf("366 days: %v, want it taken", err)
	}
}
