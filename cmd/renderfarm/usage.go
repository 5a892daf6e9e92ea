package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/service"
)

const usageUsage = `Usage:
  renderfarm usage [--workspace NAME] [--since 30d] [--csv] [flags]

What each workspace used of the farm, by day, over the period that ends
now: render seconds (worker-seconds: Blender's render time on each chunk
times the threads its worker gave Blender), frames completed, bytes stored
(what the uploads, inputs and frames' files made that day hold now) and
bytes transferred (what the farm served through its own download URLs; a
bucket's presigned downloads are not seen). The same as
GET /api/external/v1/usage answers a workspace's key, for the operator.

Flags:
`

// usageReport is `renderfarm usage`, run on the farm's database like
// `renderfarm workspaces`.
func usageReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	b := app.DefaultBackends()
	fs := app.NewFlagSet("usage", stderr)
	b.RegisterFlags(fs)
	workspace := fs.String("workspace", "", "report only this workspace (empty: every workspace)")
	since := lookBack(service.DefaultUsagePeriod)
	fs.Var(&since, "since", "how far back the report goes: days (30d) or a duration (12h)")
	csvOut := fs.Bool("csv", false, "print CSV: workspace, day, renderSeconds, frames, bytesStored, bytesTransferred")
	fs.Usage = func() {
		fmt.Fprint(stderr, usageUsage)
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0, 0, "usage takes no arguments"); err != nil {
		return err
	}
	if time.Duration(since) > farm.MaxUsageSpan {
		return fmt.Errorf("%w: --since goes back %.0f days, further than a report covers; give at most %dd",
			errUsage, time.Duration(since).Hours()/24, int(farm.MaxUsageSpan/(24*time.Hour)))
	}
	to := time.Now()
	from := to.Add(-time.Duration(since))
	if _, _, _, err := service.CheckUsagePeriod(&from, &to, farm.UsageByDay, to); err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListWorkspaceUsage(ctx, to)
	if err != nil {
		return err
	}
	type report struct {
		name  string
		usage *farm.Usage
	}
	var reports []report
	for _, w := range list {
		if *workspace != "" && w.Name != *workspace {
			continue
		}
		u, err := service.UsageOf(ctx, st, w.ID, &from, &to, farm.UsageByDay)
		if err != nil {
			return err
		}
		reports = append(reports, report{w.Name, u})
	}
	if *workspace != "" && len(reports) == 0 {
		return fmt.Errorf("%w: there is no workspace %q (renderfarm workspaces list shows them)", errUsage, *workspace)
	}
	if *csvOut {
		w := csv.NewWriter(stdout)
		_ = w.Write([]string{"workspace", "day", "renderSeconds", "gpuSeconds", "frames", "bytesStored", "bytesTransferred"})
		for _, r := range reports {
			for _, row := range r.usage.Rows {
				_ = w.Write([]string{r.name, row.Day, strconv.FormatFloat(row.RenderSeconds, 'f', 3, 64), strconv.FormatFloat(row.GPUSeconds, 'f', 3, 64), strconv.Itoa(row.Frames),
					strconv.FormatInt(row.BytesStored, 10), strconv.FormatInt(row.BytesTransferred, 10)})
			}
		}
		w.Flush()
		return w.Error()
	}
	if len(reports) == 0 {
		fmt.Fprintln(stdout, "no workspaces yet (renderfarm keys create makes one)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "WORKSPACE\tDAY\tRENDER TIME\tGPU TIME\tFRAMES\tSTORED\tTRANSFERRED\n")
	for _, r := range reports {
		for _, row := range r.usage.Rows {
			fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.name, row.Day, formatSeconds(row.RenderSeconds), formatSeconds(row.GPUSeconds), row.Frames, formatBytes(row.BytesStored), formatBytes(row.BytesTransferred))
		}
		t := r.usage.Total
		fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", r.name, "total", formatSeconds(t.RenderSeconds), formatSeconds(t.GPUSeconds), t.Frames, formatBytes(t.BytesStored), formatBytes(t.BytesTransferred))
	}
	return tw.Flush()
}

// lookBack is the value of usage --since: how far back a report goes, as
// days with a "d" (30d) or a Go duration (12h), read as --expires reads
// a key's lifetime but explained as a period.
type lookBack time.Duration

func (l *lookBack) String() string { return time.Duration(*l).String() }

func (l *lookBack) Set(s string) error {
	d, err := parseKeyLifetime(s)
	if err != nil || d == 0 {
		return fmt.Errorf("%q is not a period to look back over; write days as 30d, or a duration such as 12h", s)
	}
	*l = lookBack(d)
	return nil
}
