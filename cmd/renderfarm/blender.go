package main

import (
	"context"
	"fmt"
	"io"

	"github.com/renderfarm/renderfarm/internal/app"
)

// listBlender shows the Blender versions the farm's live render nodes run,
// which `submit --blender-version` may pin.
func listBlender(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("blender", stderr)
	var r remote
	r.register(fs)
	jsonOut := fs.Bool("json", false, "print the versions as JSON on stdout")
	fs.Usage = func() {
		fmt.Fprint(stderr, "Usage: renderfarm blender [flags]\n\nLists the Blender versions the farm's live render nodes run, and how many\nrun each. A job renders with the one that opens its file unless\n`renderfarm submit --blender-version` pins another.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if _, err := parseArgs(fs, args, 0, 0, "give no argument"); err != nil {
		return err
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	offers, err := c.BlenderVersions(ctx)
	if err != nil {
		return r.explain(err)
	}
	con := newConsole(stdout, stderr, *jsonOut)
	if con.json {
		return con.result(offers)
	}
	if len(offers.Versions) == 0 {
		con.printf("no render node is running\n")
		return nil
	}
	for _, o := range offers.Versions {
		nodes := "render nodes"
		if o.Workers == 1 {
			nodes = "render node"
		}
		con.printf("Blender %s on %d %s\n", o.Version, o.Workers, nodes)
	}
	return nil
}
