package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/addon"
	"github.com/renderfarm/renderfarm/internal/app"
)

const addonUsage = `Usage: renderfarm addon OUT.zip

Writes the Blender add-on to OUT.zip. Install it in Blender 3.4 or later
with Edit > Preferences > Add-ons > Install…, enable "renderfarm", and set
the farm's URL and your API key in its preferences (or RENDERFARM_SERVER
and RENDERFARM_API_KEY). Its panel is in the Render properties. The
dashboard offers the same zip at /ui/renderfarm-addon.zip.
`

func addonCommand(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("addon", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, addonUsage) }
	pos, err := parseArgs(fs, args, 1, 1, "give the zip to write: renderfarm addon OUT.zip")
	if err != nil {
		return err
	}
	out := pos[0]
	if !strings.EqualFold(filepath.Ext(out), ".zip") {
		return exitWith(exitUsage, "%s: Blender installs add-ons from a .zip; name the output OUT.zip", out)
	}
	// Written beside the output and renamed, so an interrupted write never
	// leaves half an add-on under its name.
	f, err := os.CreateTemp(filepath.Dir(out), ".renderfarm-addon-*.zip")
	if err != nil {
		return exitWith(exitUsage, "%v", err)
	}
	defer os.Remove(f.Name())
	if err := errors.Join(addon.WriteZip(f), f.Close()); err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote the Blender add-on to %s: install it with Edit > Preferences > Add-ons > Install…\n", out)
	return nil
}
