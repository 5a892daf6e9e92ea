package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

// DefaultUsagePeriod is the period a usage report covers when it is not
// given one: the last 30 days.
const DefaultUsagePeriod = 30 * 24 * time.Hour

// Usage reports the workspace's use of the farm over [from, to) (nil
// when not given: the last 30 days up to now), grouped by day or by job.
func (s *Service) Usage(ctx context.Context, p farm.Principal, from, to *time.Time, groupBy string) (*farm.Usage, error) {
	return UsageOf(ctx, s.store, p.WorkspaceID, from, to, groupBy)
}

// UsageReader is the store's usage report (store.Queries.WorkspaceUsage).
type UsageReader interface {
	WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time, groupBy string) (farm.Usage, error)
}

// UsageOf checks a usage request and reports it: for one workspace, or
// for every one ("": the operator's `renderfarm usage`).
func UsageOf(ctx context.Context, st UsageReader, workspaceID string, from, to *time.Time, groupBy string) (*farm.Usage, error) {
	start, end, groupBy, err := CheckUsagePeriod(from, to, groupBy, time.Now())
	if err != nil {
		return nil, err
	}
	u, err := st.WorkspaceUsage(ctx, workspaceID, start, end, groupBy)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// A usage period lies within these years, in UTC: the farm recorded
// nothing before 1970, and a time past 9999 has no RFC 3339 form, which
// the answer's from and to are written in.
const (
	firstUsageYear = 1970
	lastUsageYear  = 9999
)

// CheckUsagePeriod fills in a usage request's defaults (to: now; from: 30
// days before to; groupBy: day), a bound not given being nil, and refuses
// a period outside the years firstUsageYear to lastUsageYear (UTC), one
// that ends before it starts or is longer than farm.MaxUsageSpan, and an
// unknown grouping. A bound given as Go's zero time (0001-01-01) is given,
// and refused as outside those years.
func CheckUsagePeriod(from, to *time.Time, groupBy string, now time.Time) (time.Time, time.Time, string, error) {
	end := now
	if to != nil {
		end = *to
	}
	start := end.Add(-DefaultUsagePeriod)
	if from != nil {
		start = *from
	}
	if groupBy == "" {
		groupBy = farm.UsageByDay
	}
	invalid := func(field, format string, args ...any) error {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	outside := func(t time.Time) bool {
		y := t.UTC().Year()
		return y < firstUsageYear || y > lastUsageYear
	}
	switch {
	case groupBy != farm.UsageByDay && groupBy != farm.UsageByJob:
		return start, end, groupBy, invalid("groupBy", "groupBy must be \"day\" or \"job\", not %q", groupBy)
	case outside(end):
		return start, end, groupBy, invalid("to", "to (%s) must be in the years %d to %d (UTC)", end.Format(time.RFC3339), firstUsageYear, lastUsageYear)
	case outside(start) && from == nil:
		return start, end, groupBy, invalid("from", "from, 30 days before to by default, would be %s, before the year %d (UTC); give a from in the years %d to %d",
			start.UTC().Format(time.RFC3339), firstUsageYear, firstUsageYear, lastUsageYear)
	case outside(start):
		return start, end, groupBy, invalid("from", "from (%s) must be in the years %d to %d (UTC)", start.Format(time.RFC3339), firstUsageYear, lastUsageYear)
	case !start.Before(end):
		return start, end, groupBy, invalid("from", "from (%s) must be before to (%s)", start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339))
	case end.Sub(start) > farm.MaxUsageSpan:
		return start, end, groupBy, invalid("from", "a usage report covers at most %d days; this one asks for %.0f, so ask for a shorter period",
			int(farm.MaxUsageSpan/(24*time.Hour)), end.Sub(start).Hours()/24)
	}
	return start, end, groupBy, nil
}

// CountDownload counts, for the local store's download URLs
// (objstore.LocalConfig.Served), the bytes served of a job's objects as
// the job's downloads of the day; other keys (uploads) are not counted.
func CountDownload(st *store.Store) func(ctx context.Context, key string, bytes int64) error {
	return func(ctx context.Context, key string, bytes int64) error {
		rest, ok := strings.CutPrefix(key, "jobs/")
		if !ok {
			return nil
		}
		jobID, _, ok := strings.Cut(rest, "/")
		if !ok || jobID == "" {
			return nil
		}
		return st.RecordDownload(ctx, jobID, bytes)
	}
}
