package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/farm"
	"github.com/renderfarm/renderfarm/internal/store"
)

const workspacesUsage = `Usage:
  renderfarm workspaces list [flags]
  renderfarm workspaces create NAME [flags]
  renderfarm workspaces rename OLD NEW [flags]
  renderfarm workspaces set NAME [--weight N] [--max-running-chunks N] [--max-storage-bytes N]
                                 [--max-render-hours-per-month H] [flags]

How the workspaces share the farm. A freed render slot goes to the
workspace whose running chunks divided by its weight are fewest (ties to
the one that waited longest); a workspace never runs more chunks than its
--max-running-chunks (0: no limit). Once its files take
--max-storage-bytes (0: no limit; 500GiB, 2TB), new uploads are refused.
Once its chunks that ended this calendar month (UTC) used
--max-render-hours-per-month render hours (0: no budget; worker-seconds,
Blender's render time times its threads, and GPU-seconds, as renderfarm
usage counts them), its waiting chunks wait until the next month or a
larger budget, and its running chunks finish.
list shows each workspace's weight and limits, its jobs, its chunks
running and waiting, the bytes its files take, its render hours this
month against its budget, and Blender's render time on its frames over
the last day. create makes an empty workspace (keys
create makes one too); rename keeps its keys, jobs and files.

Flags:
`

// workspaces is `renderfarm workspaces list|set`, run on the farm's
// database like `renderfarm keys`.
func workspaces(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	positional := map[string]int{"list": 0, "create": 1, "rename": 2, "set": 1}
	if len(args) == 0 {
		fmt.Fprint(stderr, workspacesUsage)
		return fmt.Errorf("%w: say list, create, rename or set", errUsage)
	}
	want, known := positional[args[0]]
	if !known {
		fmt.Fprint(stderr, workspacesUsage)
		return fmt.Errorf("%w: say list, create, rename or set, not %q", errUsage, args[0])
	}
	sub, args := args[0], args[1:]
	b := app.DefaultBackends()
	fs := app.NewFlagSet("workspaces "+sub, stderr)
	b.RegisterFlags(fs)
	jsonOut := fs.Bool("json", false, "print the workspaces as JSON")
	weight := fs.Int("weight", farm.DefaultWeight, fmt.Sprintf("set: the workspace's share of the farm against the others', 1 to %d", farm.MaxWeight))
	maxRunning := fs.Int("max-running-chunks", 0, "set: the most chunks the workspace may have running at once (0: no limit)")
	var maxStorage int64
	fs.Var(app.ByteSizeValue(&maxStorage), "max-storage-bytes", "set: the most bytes the workspace's files may take before new uploads are refused, e.g. 500GiB (0: no limit)")
	budgetHours := fs.Float64("max-render-hours-per-month", 0, "set: the render hours (worker- and GPU-hours) the workspace may use in a calendar month (UTC) before its chunks wait (0: no budget)")
	fs.Usage = func() {
		fmt.Fprint(stderr, workspacesUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, want, want, map[string]string{
		"list": "list takes no NAME", "create": "give the NAME of the workspace to create",
		"rename": "give the OLD name and the NEW one", "set": "give the NAME of the workspace to set",
	}[sub])
	if err != nil {
		return err
	}
	var setWeight, setMax *int
	if sub == "set" {
		if given(fs, "weight") {
			if *weight < 1 || *weight > farm.MaxWeight {
				return fmt.Errorf("%w: --weight must be from 1 to %d, not %d", errUsage, farm.MaxWeight, *weight)
			}
			setWeight = weight
		}
		if given(fs, "max-running-chunks") {
			if *maxRunning < 0 {
				return fmt.Errorf("%w: --max-running-chunks must be 0 (no limit) or more, not %d", errUsage, *maxRunning)
			}
			setMax = maxRunning
		}
		if given(fs, "max-render-hours-per-month") && !(*budgetHours >= 0 && *budgetHours <= store.MaxBudget/3600) {
			return fmt.Errorf("%w: --max-render-hours-per-month must be 0 (no budget) to %g hours, not %g", errUsage, store.MaxBudget/3600, *budgetHours)
		}
		if setWeight == nil && setMax == nil && !given(fs, "max-storage-bytes") && !given(fs, "max-render-hours-per-month") {
			return fmt.Errorf("%w: give --weight, --max-running-chunks, --max-storage-bytes, --max-render-hours-per-month or more of them", errUsage)
		}
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	show := ""
	switch sub {
	case "create":
		_, err := st.CreateWorkspace(ctx, pos[0])
		if errors.Is(err, store.ErrConflict) {
			return fmt.Errorf("%w: there is a workspace %q already", errUsage, pos[0])
		}
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		show = pos[0]
	case "rename":
		err := st.RenameWorkspace(ctx, pos[0], pos[1])
		switch {
		case errors.Is(err, store.ErrNotFound):
			return fmt.Errorf("%w: there is no workspace %q (renderfarm workspaces list shows them)", errUsage, pos[0])
		case errors.Is(err, store.ErrConflict):
			return fmt.Errorf("%w: there is a workspace %q already; choose another name", errUsage, pos[1])
		case err != nil:
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		show = pos[1]
	case "set":
		err := st.SetWorkspaceShare(ctx, pos[0], setWeight, setMax)
		if err == nil && given(fs, "max-storage-bytes") {
			err = st.SetWorkspaceMaxStorage(ctx, pos[0], maxStorage)
		}
		if err == nil && given(fs, "max-render-hours-per-month") {
			err = st.SetWorkspaceBudget(ctx, pos[0], *budgetHours*3600)
		}
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: there is no workspace %q (renderfarm workspaces list shows them)", errUsage, pos[0])
		}
		if err != nil {
			return err
		}
		show = pos[0]
	}
	usage, err := st.ListWorkspaceUsage(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		return err
	}
	type row struct {
		Name string `json:"name"`
		// MaxRunningChunks is 0 for no limit.
		Weight           int     `json:"weight"`
		MaxRunningChunks int     `json:"maxRunningChunks"`
		Running          int     `json:"runningChunks"`
		Waiting          int     `json:"waitingChunks"`
		RenderSeconds    float64 `json:"renderSecondsLastDay"`
		Jobs             int     `json:"jobs"`
		StorageBytes     int64   `json:"storageBytes"`
		// MaxStorageBytes is 0 for no limit.
		MaxStorageBytes int64 `json:"maxStorageBytes"`
		// MaxRenderHoursPerMonth is 0 for no budget; RenderHoursThisMonth
		// is what the workspace's chunks that ended this month (UTC) used.
		MaxRenderHoursPerMonth float64 `json:"maxRenderHoursPerMonth"`
		RenderHoursThisMonth   float64 `json:"renderHoursThisMonth"`
	}
	rows := []row{}
	for _, u := range usage {
		if show != "" && u.Name != show {
			continue
		}
		rows = append(rows, row{Name: u.Name, Weight: u.Weight, MaxRunningChunks: u.MaxRunning, Running: u.Running, Waiting: u.Waiting,
			RenderSeconds: u.RenderSeconds, Jobs: u.Jobs, StorageBytes: u.StorageBytes, MaxStorageBytes: u.MaxStorageBytes,
			MaxRenderHoursPerMonth: u.Budget / 3600, RenderHoursThisMonth: u.MonthSeconds / 3600})
	}
	if *jsonOut {
		return writeJSON(stdout, rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no workspaces yet (renderfarm keys create makes one)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWEIGHT\tMAX RUNNING\tJOBS\tRUNNING\tWAITING\tSTORAGE\tMAX STORAGE\tRENDER HOURS (MONTH)\tRENDER TIME (24 H)")
	for _, r := range rows {
		limit, storageLimit := "-", "-"
		month := fmt.Sprintf("%.2f", r.RenderHoursThisMonth)
		if r.MaxRenderHoursPerMonth > 0 {
			month += fmt.Sprintf(" of %g", r.MaxRenderHoursPerMonth)
		}
		if r.MaxRunningChunks > 0 {
			limit = fmt.Sprint(r.MaxRunningChunks)
		}
		if r.MaxStorageBytes > 0 {
			storageLimit = formatBytes(r.MaxStorageBytes)
		}
		fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", r.Name, r.Weight, limit, r.Jobs, r.Running, r.Waiting,
			formatBytes(r.StorageBytes), storageLimit, month, (time.Duration(r.RenderSeconds * float64(time.Second))).Round(time.Second))
	}
	return tw.Flush()
}
