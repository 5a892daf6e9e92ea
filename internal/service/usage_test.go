package service

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/renderfarm/renderfarm/internal/engine/enginetest"
	"github.com/renderfarm/renderfarm/internal/farm"
)

// TestCheckUsagePeriod: the defaults are the last 30 days by day; a
// period that ends before it starts, one over 366 days, and an unknown
// grouping are refused naming the field.
func TestCheckUsagePeriod(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	from, to, by, err := CheckUsagePeriod(nil, nil, "", now)
	if err != nil || !to.Equal(now) || !from.Equal(now.Add(-30*24*time.Hour)) || by != "day" {
		t.Errorf("defaults = %v, %v, %q, %v; want the 30 days to now, by day", from, to, by, err)
	}
	for _, c := range []struct {
		name     string
		from, to *time.Time
		groupBy  string
		want     string
	}{
		{"backwards", &now, at(now.Add(-time.Hour)), "job", "must be before"},
		{"empty", &now, &now, "job", "must be before"},
		{"too long", at(now.Add(-367 * 24 * time.Hour)), &now, "day", "at most 366 days"},
		{"by week", nil, nil, "week", `"day" or "job"`},
	} {
		if _, _, _, err := CheckUsagePeriod(c.from, c.to, c.groupBy, now); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	if _, _, _, err := CheckUsagePeriod(at(now.Add(-366*24*time.Hour)), &now, "job", now); err != nil {
		t.Errorf("366 days: %v, want it taken", err)
	}
}

// TestAUsagePeriodLiesWithinTheYears1970To9999: a period's bounds, given
// or by default, must fall within the years 1970 to 9999 in UTC, the
// years the answer can write as RFC 3339 times: outside them the bound is
// refused naming it (from for a default one, which to put too early) and
// saying the years. A bound given as Go's zero time, 0001-01-01, is given
// and refused, not taken for no bound. The first and last instants of
// those years are taken, and the answer carrying them is written.
func TestAUsagePeriodLiesWithinTheYears1970To9999(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	minus2, plus1 := time.FixedZone("-02:00", -2*3600), time.FixedZone("+01:00", 3600)
	for _, c := range []struct {
		name     string
		from, to *time.Time
		field    string
	}{
		{"to in the year 10000 in UTC", at(time.Date(9999, 12, 31, 0, 0, 0, 0, minus2)), at(time.Date(9999, 12, 31, 23, 0, 0, 0, minus2)), "to"},
		{"from and to in the years -1 and 0 in UTC", at(time.Date(0, 1, 1, 0, 0, 0, 0, plus1)), at(time.Date(0, 1, 2, 0, 0, 0, 0, time.UTC)), "to"},
		{"from in the year 0", at(time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)), at(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)), "from"},
		{"to in the year 0, from by default", nil, at(time.Date(0, 1, 2, 0, 0, 0, 0, time.UTC)), "to"},
		{"to early in 1970, from by default before it", nil, at(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)), "from"},
		{"from the zero time", &time.Time{}, nil, "from"},
		{"to the zero time", nil, &time.Time{}, "to"},
		{"from 1969", at(time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC)), at(time.Date(1970, 1, 2, 0, 0, 0, 0, time.UTC)), "from"},
	} {
		_, _, _, err := CheckUsagePeriod(c.from, c.to, "", now)
		fe, ok := err.(*farm.Error)
		if !ok || fe.Code != farm.CodeInvalidRequest || fe.Field != c.field || !strings.Contains(fe.Message, "1970 to 9999") {
			t.Errorf("%s: %v, want INVALID_REQUEST naming %s and saying the years 1970 to 9999", c.name, err, c.field)
		}
	}
	first, last := time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)
	for _, period := range [][2]time.Time{{first, first.Add(time.Hour)}, {last.Add(-time.Hour), last}} {
		from, to, _, err := CheckUsagePeriod(&period[0], &period[1], "", now)
		if err != nil {
			t.Errorf("%v to %v: %v, want it taken", period[0], period[1], err)
			continue
		}
		if _, err := json.Marshal(farm.Usage{From: from, To: to}); err != nil {
			t.Errorf("%v to %v: the answer cannot be written: %v", from, to, err)
		}
	}
}

// TestUsageAnswersAPeriodAtTheEndOfTheYear9999: the service reads the
// store for a period that ends with the year 9999, and answers it.
func TestUsageAnswersAPeriodAtTheEndOfTheYear9999(t *testing.T) {
	t.Parallel()
	eachFixture(t, func(t *testing.T, f *fixture) {
		to := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		u, err := f.api.Usage(f.Ctx, f.P, at(to.Add(-24*time.Hour)), &to, farm.UsageByJob)
		if err != nil {
			t.Fatalf("Usage: %v", err)
		}
		if _, err := json.Marshal(u); err != nil {
			t.Errorf("the answer cannot be written: %v", err)
		}
		if _, err := f.api.Usage(f.Ctx, f.P, nil, at(to.Add(time.Second)), ""); enginetest.ErrorCode(err) != farm.CodeInvalidRequest {
			t.Errorf("Usage to the year 10000: %v, want %s", err, farm.CodeInvalidRequest)
		}
	})
}

func at(t time.Time) *time.Time { return &t }
