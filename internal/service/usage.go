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

// Usage reports the workspace's use of the farm over [from, to) (zero
// times: the last 30 days up to now), grouped by day or by job.
func (s *Service) Usage(ctx context.Context, p farm.Principal, from, to time.Time, groupBy string) (*farm.Usage, error) {
	return UsageOf(ctx, s.store, p.WorkspaceID, from, to, groupBy)
}

// UsageReader is the store's usage report (store.Queries.WorkspaceUsage).
type UsageReader interface {
	WorkspaceUsage(ctx context.Context, workspaceID string, from, to time.Time, groupBy string) (farm.Usage, error)
}

// UsageOf checks a usage request and reports it: for one workspace, or
// for every one ("": the operator's `renderfarm usage`).
func UsageOf(ctx context.Context, st UsageReader, workspaceID string, from, to time.Time, groupBy string) (*farm.Usage, error) {
	from, to, groupBy, err := CheckUsagePeriod(from, to, groupBy, time.Now())
	if err != nil {
		return nil, err
	}
	u, err := st.WorkspaceUsage(ctx, workspaceID, from, to, groupBy)
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// CheckUsagePeriod fills in a usage request's defaults (to: now; from: 30
// days before to; groupBy: day) and refuses a period that ends before it
// starts or is longer than farm.MaxUsageSpan, and an unknown grouping.
func CheckUsagePeriod(from, to time.Time, groupBy string, now time.Time) (time.Time, time.Time, string, error) {
	if to.IsZero() {
		to = now
	}
	if from.IsZero() {
		from = to.Add(-DefaultUsagePeriod)
	}
	if groupBy == "" {
		groupBy = farm.UsageByDay
	}
	invalid := func(field, format string, args ...any) error {
		return &farm.Error{Kind: farm.KindInvalid, Code: farm.CodeInvalidRequest, Field: field, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case groupBy != farm.UsageByDay && groupBy != farm.UsageByJob:
		return from, to, groupBy, invalid("groupBy", "groupBy must be \"day\" or \"job\", not %q", groupBy)
	case !from.Before(to):
		return from, to, groupBy, invalid("from", "from (%s) must be before to (%s)", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	case to.Sub(from) > farm.MaxUsageSpan:
		return from, to, groupBy, invalid("from", "a usage report covers at most %d days; this one asks for %.0f, so ask for a shorter period",
			int(farm.MaxUsageSpan/(24*time.Hour)), to.Sub(from).Hours()/24)
	}
	return from, to, groupBy, nil
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
