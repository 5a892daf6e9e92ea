package main

import (
	"context"
	"encoding/json"
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
  renderfarm workspaces set NAME [--weight N] [--max-running-chunks N] [flags]

How the workspaces share the farm. A freed render slot goes to the
workspace whose running chunks divided by its weight are fewest (ties to
the one that waited longest); a workspace never runs more chunks than its
--max-running-chunks (0: no limit). list shows each workspace's weight and
limit, its chunks running and waiting, and Blender's render time on its
frames over the last day.

Flags:
`

// workspaces is `renderfarm workspaces list|set`, run on the farm's
// database like `renderfarm keys`.
func workspaces(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "list" && args[0] != "set") {
		fmt.Fprint(stderr, workspacesUsage)
		return fmt.Errorf("%w: say list or set", errUsage)
	}
	sub, args := args[0], args[1:]
	b := app.DefaultBackends()
	fs := app.NewFlagSet("workspaces "+sub, stderr)
	b.RegisterFlags(fs)
	jsonOut := fs.Bool("json", false, "print the workspaces as JSON")
	weight := fs.Int("weight", farm.DefaultWeight, fmt.Sprintf("set: the workspace's share of the farm against the others', 1 to %d", farm.MaxWeight))
	maxRunning := fs.Int("max-running-chunks", 0, "set: the most chunks the workspace may have running at once (0: no limit)")
	fs.Usage = func() {
		fmt.Fprint(stderr, workspacesUsage)
		fs.PrintDefaults()
	}
	want := 0
	if sub == "set" {
		want = 1
	}
	pos, err := parseArgs(fs, args, want, want, "give the NAME of the workspace to set")
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
		if setWeight == nil && setMax == nil {
			return fmt.Errorf("%w: give --weight, --max-running-chunks or both", errUsage)
		}
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if sub == "set" {
		err := st.SetWorkspaceShare(ctx, pos[0], setWeight, setMax)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: there is no workspace %q (renderfarm workspaces list shows them)", errUsage, pos[0])
		}
		if err != nil {
			return err
		}
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
	}
	rows := []row{}
	for _, u := range usage {
		if sub == "set" && u.Name != pos[0] {
			continue
		}
		rows = append(rows, row{Name: u.Name, Weight: u.Weight, MaxRunningChunks: u.MaxRunning, Running: u.Running, Waiting: u.Waiting, RenderSeconds: u.RenderSeconds})
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "no workspaces yet (renderfarm keys create makes one)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tWEIGHT\tMAX RUNNING\tRUNNING\tWAITING\tRENDER TIME (24 H)")
	for _, r := range rows {
		limit := "-"
		if r.MaxRunningChunks > 0 {
			limit = fmt.Sprint(r.MaxRunningChunks)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", r.Name, r.Weight, limit, r.Running, r.Waiting, (time.Duration(r.RenderSeconds * float64(time.Second))).Round(time.Second))
	}
	return tw.Flush()
}
