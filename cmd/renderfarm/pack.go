package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/packer"
)

const packUsage = `Usage: renderfarm pack FILE.blend OUT.zip [flags]

Packs FILE.blend and every file it uses into OUT.zip, a project the farm
renders: linked libraries (and theirs), textures, image sequences, UDIM
tiles, sounds, fonts, volumes and caches. The .blend goes at the top of the
zip; files in the project folder (the .blend's folder, or --project-root)
keep their layout; files from elsewhere go under _outside/. Paths that no
longer hold are rewritten in copies: your files are only read. Missing
files are listed and left out, and the rest is packed.

Blender finds the files: the one named by --blender, run in the background
with the file's scripts off.

Exit codes: 0 packed (also with files missing); 1 packing failed; 2 a usage
or input error.

Flags:
`

func packCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("pack", stderr)
	var pf packFlags
	pf.register(fs)
	jsonOut := fs.Bool("json", false, "print the report as JSON on stdout and nothing else there")
	fs.Usage = func() {
		fmt.Fprint(stderr, packUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 2, 2, "give the .blend to pack and the zip to write: renderfarm pack FILE.blend OUT.zip")
	if err != nil {
		return err
	}
	if !strings.EqualFold(filepath.Ext(pos[1]), ".zip") {
		return exitWith(exitUsage, "%s: the output is a project zip; name it OUT.zip", pos[1])
	}
	con := newConsole(stdout, stderr, *jsonOut)
	rep, err := pf.pack(ctx, con, pos[0], pos[1])
	if err != nil {
		return err
	}
	printPackReport(con, rep, pos[1])
	return con.result(rep)
}

// packFlags are the flags of pack that submit shares.
type packFlags struct {
	blender     string
	projectRoot string
}

func (p *packFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&p.blender, "blender", "blender", "the Blender that finds the files the .blend uses (the artist's own; a newer one re-saves the files whose paths it rewrites in its own version)")
	fs.StringVar(&p.projectRoot, "project-root", "", "the project folder: files in it keep their layout in the zip (default: the .blend's folder)")
}

// pack runs the packer, saying what it does as it goes, and turns its
// errors into the command's.
func (p *packFlags) pack(ctx context.Context, con *console, blend, out string) (*packer.Report, error) {
	con.printf("packing %s with %s\n", filepath.Base(blend), p.blender)
	rep, err := packer.Pack(ctx, blend, out, packer.Options{
		Blender:     p.blender,
		ProjectRoot: p.projectRoot,
		OnProgress: func(line string) {
			if con.live {
				con.printf("  %s\n", line)
			}
		},
	})
	var perr *packer.Error
	switch {
	case err == nil:
		return rep, nil
	case interrupted(ctx):
		return nil, exitWith(exitInterrupted, "interrupted while packing; nothing was written")
	case errors.Is(err, packer.ErrNoBlender):
		return nil, &exitError{code: exitFailed, err: fmt.Errorf("%w: install Blender or pass --blender PATH", err)}
	case errors.As(err, &perr):
		return nil, exitWith(exitFailed, "%v", err)
	default:
		return nil, exitWith(exitUsage, "%v", err)
	}
}

// printPackReport says what was packed: N files, their size, M missing,
// and which files those are; the files from outside the project are
// listed, since they are what a person may not expect to leave the machine.
func printPackReport(con *console, rep *packer.Report, out string) {
	into := ""
	if out != "" {
		into = " into " + out
	}
	con.printf("packed %d files, %s (zip %s)%s, %d missing\n", len(rep.Files), formatBytes(rep.TotalBytes), formatBytes(rep.ZipBytes), into, len(rep.Missing))
	if outside := rep.OutsideFiles(); len(outside) > 0 {
		con.printf("  from outside the project folder %s:\n", rep.ProjectRoot)
		const shown = 10
		for i, f := range outside {
			if i == shown {
				con.printf("    and %d more\n", len(outside)-shown)
				break
			}
			con.printf("    %s\n", f.Source)
		}
	}
	for _, m := range rep.Missing {
		where := m.Path
		if m.Resolved != "" && m.Resolved != m.Path {
			where += " (" + m.Resolved + ")"
		}
		con.printf("  missing: %s %q in %s: %s: %s\n", m.Type, m.Name, m.Blend, where, m.Reason)
	}
	for _, r := range rep.Refused {
		con.printf("  not packed: %s: %s\n", r.Path, r.Reason)
	}
	for _, w := range rep.Warnings() {
		con.warn("REWRITTEN_BY_NEWER_BLENDER", w)
	}
}
