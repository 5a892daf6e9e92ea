package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/renderfarm/renderfarm/client"
	"github.com/renderfarm/renderfarm/internal/app"
	"github.com/renderfarm/renderfarm/internal/packer"
)

const submitUsage = `Usage: renderfarm submit FILE [flags]

Uploads FILE (a .blend, a project .zip, or a project folder, which is
zipped on the way), has the farm validate it, prints what validation found,
and starts the render. Settings not given keep the file's own.

A .blend that uses other files (linked libraries, textures, sequences,
caches) is first packed with them into a project zip, as "renderfarm pack"
does, by the local Blender (--blender); it says what it packed. Without a
local Blender the .blend goes alone, and the command says its files were
not packed. --no-pack always sends the .blend alone.

Exit codes: 0 submitted (or, with --wait, completed); 1 the job failed;
2 a usage or input error; 3 the job was canceled; 130 interrupted (the job
goes on; "renderfarm status JOB --wait" follows it again).

Flags:
`

func submit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := app.NewFlagSet("submit", stderr)
	var r remote
	r.register(fs)
	var rf renderFlags
	fs.StringVar(&rf.frames, "frames", "", "frames to render, as comma-separated ranges such as 1-24 or 1-10,20,30-40x2 (default: the scene's range)")
	fs.IntVar(&rf.samples, "samples", 0, "render samples (default: the file's)")
	fs.StringVar(&rf.resolution, "resolution", "", "WIDTHxHEIGHT in pixels, such as 1920x1080 (default: the file's)")
	fs.StringVar(&rf.format, "format", "", "still-image format as Blender names it: PNG, OPEN_EXR, JPEG, … (default: the file's)")
	fs.StringVar(&rf.engine, "engine", "", "render engine: CYCLES, BLENDER_EEVEE or BLENDER_WORKBENCH (default: the file's)")
	fs.IntVar(&rf.chunkSize, "chunk-size", 0, "frames per Blender process, 1 to 1000 (default: the frames spread over the farm's workers)")
	fs.StringVar(&rf.blenderVersion, "blender-version", "", "the farm's Blender to render with, such as 4.3 or 4.3.2 (default: the one that validated the file, which opens it; `renderfarm blender` lists them); --blender is the local Blender that packs")
	fs.BoolVar(&rf.scout, "scout", false, "render scout frames first (the first, middle and last), then wait for approval: renderfarm resume JOB renders the rest")
	fs.StringVar(&rf.scoutFrames, "scout-frames", "", "like --scout, with these frames as the scouts, as comma-separated ranges such as 1,50-52")
	fs.IntVar(&rf.split, "split", 0, "split every frame into this many parts, 2 to 64, that different workers render and the farm merges (by samples: Cycles; by tiles: Cycles, EEVEE of Blender 4.1 and older, Workbench)")
	fs.StringVar(&rf.splitMode, "split-mode", "", `with --split: "samples" (each part renders the whole image with a share of the samples) or "tiles" (each part renders a region) (default: samples)`)
	fs.IntVar(&rf.priority, "priority", 50, "the job's priority among the workspace's jobs, 0 (lowest) to 100 (highest); change it later with `renderfarm priority JOB N`")
	fs.StringVar(&rf.tags, "tags", "", "tags every worker that renders the job must have (their --tags), comma-separated")
	fs.StringVar(&rf.naming, "naming", "", `how frames are named for download: "farm" (frame_0001.png) or "scene" (as the scene's output path names them, //render/shot010_#### giving shot010_0001.png) (default: farm)`)
	wait := fs.Bool("wait", false, "follow the job until it ends; the exit code then says how it ended")
	download := fs.String("download", "", "when the job completes, download its frames, zip and preview video into this folder, and its compositor File Output nodes' images into its compositeNodes/ (implies --wait)")
	jsonOut := fs.Bool("json", false, "print the job as JSON on stdout and nothing else there")
	var pf packFlags
	pf.register(fs)
	noPack := fs.Bool("no-pack", false, "send a .blend alone, without packing the files it uses")
	fs.Usage = func() {
		fmt.Fprint(stderr, submitUsage)
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args, 1, 1, "give one FILE: a .blend, a project .zip or a project folder")
	if err != nil {
		return err
	}
	cfg, err := renderConfig(fs, rf)
	if err != nil {
		return err
	}
	path := pos[0]
	isFolder, err := checkSceneFile(path)
	if err != nil {
		return err
	}
	isBlend := !isFolder && strings.EqualFold(filepath.Ext(path), ".blend")
	if pf.projectRoot != "" && (!isBlend || *noPack) {
		return exitWith(exitUsage, "--project-root is for packing a .blend; a zip or folder is sent as it is")
	}
	if *download != "" {
		*wait = true
		// Made now, so that a folder that cannot be made is reported
		// before the render rather than after it.
		if err := os.MkdirAll(*download, 0o755); err != nil {
			return exitWith(exitUsage, "--download: %v", err)
		}
	}
	c, err := r.client()
	if err != nil {
		return err
	}
	con := newConsole(stdout, stderr, *jsonOut)

	name := filepath.Base(path)
	if isBlend && !*noPack {
		packed, cleanup, err := autoPack(ctx, con, &pf, path)
		defer cleanup()
		if err != nil {
			return err
		}
		path = packed
	}
	slug, err := upload(ctx, c, con, path, isFolder)
	if err != nil {
		if interrupted(ctx) {
			return exitWith(exitInterrupted, "interrupted during the upload; nothing was submitted")
		}
		var folderErr *client.FolderError
		if errors.As(err, &folderErr) {
			return exitWith(exitUsage, "%v", folderErr)
		}
		return r.explain(err)
	}

	job, err := c.CreateJob(ctx, slug)
	if err != nil {
		return r.explain(err)
	}
	con.printf("job %s: validating %s\n", job.ID, name)
	if _, err := c.Validate(ctx, job.ID); err != nil {
		return r.explain(err)
	}
	validated, err := c.Wait(ctx, job.ID, client.UntilStatus(client.StatusValidated), nil)
	var ended *client.JobEndedError
	switch {
	case errors.As(err, &ended):
		_ = con.result(ended.Job)
		return outcome(ended.Job)
	case err != nil && interrupted(ctx):
		return exitWith(exitInterrupted, "interrupted before the render was asked for: job %s will be validated but not rendered; submit the file again to render it", job.ID)
	case err != nil:
		return r.explain(err)
	}
	printAnalysis(con, validated)

	job, _, err = c.Render(ctx, job.ID, cfg)
	if err != nil {
		if interrupted(ctx) {
			return exitWith(exitInterrupted, "interrupted while asking for the render; \"renderfarm status %s\" says whether it started", validated.ID)
		}
		return r.explain(fmt.Errorf("%w\nJob %s stays validated and will not render; fix the setting and submit again", err, validated.ID))
	}
	printRenderPlan(con, job)
	if !*wait {
		con.printf("follow it with: renderfarm status %s --wait\n", job.ID)
		return con.result(job)
	}

	hint := "renderfarm status " + job.ID + " --wait"
	if *download != "" {
		hint += " && renderfarm download " + job.ID + " " + shellQuote(*download)
	}
	job, err = follow(ctx, c, con, &r, job.ID, hint)
	if err != nil {
		return err
	}
	if job.Status == client.StatusCompleted {
		frames := 0
		if job.FinalConfig != nil {
			frames = job.FinalConfig.FrameCount
		}
		con.printf("job %s: completed, %d frames in %s of render time\n", job.ID, frames, formatSeconds(job.NormalizedSeconds))
	}
	if job.Status == client.StatusCompleted && *download != "" {
		if _, err := fetchOutputs(ctx, c, con, job.ID, *download); err != nil {
			if interrupted(ctx) {
				return exitWith(exitInterrupted, "interrupted during the download; the files fetched so far are complete, and this fetches the rest: renderfarm download %s %s", job.ID, shellQuote(*download))
			}
			return r.explain(err)
		}
	}
	if err := con.result(job); err != nil {
		return err
	}
	return outcome(job)
}

// renderFlags are submit's render settings, as typed.
type renderFlags struct {
	frames, resolution, format, engine, blenderVersion, naming, tags string
	scoutFrames, splitMode                                           string
	samples, chunkSize, priority, split                              int
	scout                                                            bool
}

// renderConfig builds the render request from submit's flags. Only flags
// that were given are sent: the server falls back to the file's setting for
// every field left out, and zero is never what someone meant by leaving a
// flag out. The preset "default" keeps the file's color management; the
// API requires a preset in every request.
func renderConfig(fs *flag.FlagSet, f renderFlags) (client.RenderConfig, error) {
	cfg := client.RenderConfig{ColorManagementPreset: client.String("default")}
	if given(fs, "frames") {
		ranges, err := parseFrameList(f.frames)
		if err != nil {
			return cfg, fmt.Errorf("%w: %v", errUsage, err)
		}
		cfg.FrameRanges = ranges
	}
	if given(fs, "samples") {
		if f.samples < 1 {
			return cfg, fmt.Errorf("%w: --samples must be 1 or more", errUsage)
		}
		cfg.SampleCount = client.Int(f.samples)
	}
	if given(fs, "resolution") {
		res, err := parseResolution(f.resolution)
		if err != nil {
			return cfg, fmt.Errorf("%w: %v", errUsage, err)
		}
		cfg.Resolution = res
	}
	// Blender's identifiers are upper case; "png" can only mean PNG.
	if given(fs, "format") {
		cfg.OutputFormat = client.String(strings.ToUpper(strings.TrimSpace(f.format)))
	}
	if given(fs, "engine") {
		cfg.RenderEngine = client.String(strings.ToUpper(strings.TrimSpace(f.engine)))
	}
	if given(fs, "chunk-size") {
		if f.chunkSize < 1 {
			return cfg, fmt.Errorf("%w: --chunk-size must be 1 or more", errUsage)
		}
		cfg.ChunkSize = client.Int(f.chunkSize)
	}
	if given(fs, "blender-version") {
		cfg.BlenderVersion = client.String(strings.TrimSpace(f.blenderVersion))
	}
	if given(fs, "priority") {
		if f.priority < 0 || f.priority > 100 {
			return cfg, fmt.Errorf("%w: --priority must be from 0 (lowest) to 100 (highest), not %d", errUsage, f.priority)
		}
		cfg.Priority = client.Int(f.priority)
	}
	if given(fs, "tags") {
		for _, t := range strings.Split(f.tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				cfg.RequiredTags = append(cfg.RequiredTags, t)
			}
		}
	}
	if given(fs, "naming") {
		naming := strings.ToLower(strings.TrimSpace(f.naming))
		if naming != client.NamingFarm && naming != client.NamingScene {
			return cfg, fmt.Errorf("%w: --naming must be %q or %q", errUsage, client.NamingFarm, client.NamingScene)
		}
		cfg.OutputNaming = client.String(naming)
	}
	switch {
	case given(fs, "split"):
		// The farm checks the parts and the mode, and says what to change.
		cfg.SplitFrame = &client.SplitFrame{Parts: f.split, Mode: strings.ToLower(strings.TrimSpace(f.splitMode))}
	case given(fs, "split-mode"):
		return cfg, fmt.Errorf("%w: --split-mode goes with --split N", errUsage)
	}
	switch {
	case f.scout && given(fs, "scout-frames"):
		return cfg, fmt.Errorf("%w: give --scout or --scout-frames, not both", errUsage)
	case f.scout:
		cfg.ScoutFrames = client.ScoutAuto
	case given(fs, "scout-frames"):
		ranges, err := parseFrameList(f.scoutFrames)
		if err != nil {
			return cfg, fmt.Errorf("%w: --scout-frames: %v", errUsage, err)
		}
		cfg.ScoutFrames = &client.ScoutFrames{Ranges: ranges}
	}
	return cfg, nil
}

// checkSceneFile makes sure FILE is something the farm can take before
// anything is sent, and reports whether it is a project folder.
func checkSceneFile(path string) (isFolder bool, err error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, exitWith(exitUsage, "no such file or folder: %s", path)
	case err != nil:
		return false, exitWith(exitUsage, "%v", err)
	case info.IsDir():
		return true, nil
	case !info.Mode().IsRegular():
		return false, exitWith(exitUsage, "%s is not a regular file", path)
	}
	if _, err := client.FileTypeOf(path); err != nil {
		return false, exitWith(exitUsage, "%s: %v, or a project folder", path, err)
	}
	return false, nil
}

// autoPack packs a .blend with the files it uses, when a local Blender can
// find them, and answers what to upload: the zip, or the .blend itself when
// it uses no other file. Without a Blender it says the files were not
// packed and answers the .blend. cleanup removes the zip.
func autoPack(ctx context.Context, con *console, pf *packFlags, blend string) (upload string, cleanup func(), err error) {
	cleanup = func() {}
	dir, err := os.MkdirTemp("", "renderfarm-submit-")
	if err != nil {
		return "", cleanup, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	base := filepath.Base(blend)
	out := filepath.Join(dir, strings.TrimSuffix(base, filepath.Ext(base))+".zip")
	rep, err := pf.pack(ctx, con, blend, out)
	if errors.Is(err, packer.ErrNoBlender) {
		con.warn("NOT_PACKED", fmt.Sprintf("Blender (%s) cannot be started here, so the files %s uses (libraries, textures, caches) were not packed: submitting the .blend alone; install Blender or pass --blender PATH to pack them, or submit the project folder", pf.blender, base))
		return blend, cleanup, nil
	}
	var exit *exitError
	if err != nil {
		if errors.As(err, &exit) && exit.code == exitFailed {
			exit.err = fmt.Errorf("%w\nnothing was submitted; fix the above, or submit with --no-pack to send the .blend alone", exit.err)
		}
		return "", cleanup, err
	}
	printPackReport(con, rep, "")
	if rep.OnlyTheBlend() {
		con.printf("%s uses no other file: submitting it alone\n", base)
		return blend, cleanup, nil
	}
	return out, cleanup, nil
}

// upload sends a file or a project folder and returns its slug.
func upload(ctx context.Context, c *client.Client, con *console, path string, isFolder bool) (string, error) {
	name := filepath.Base(path)
	if isFolder {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		name = filepath.Base(abs) + ".zip"
		con.printf("zipping %s\n", path)
	}
	report, done := con.uploadMeter(name)
	defer done()
	if isFolder {
		return c.UploadFolder(ctx, path, report)
	}
	return c.UploadFile(ctx, path, report)
}

// follow waits for a job to end while showing its progress. Ctrl-C stops
// the waiting, not the job: the render goes on on the farm, and the
// message says how to pick it up again with resume.
func follow(ctx context.Context, c *client.Client, con *console, r *remote, id, resume string) (*client.Job, error) {
	report, done := con.renderMeter()
	// A suspended job waits for a person (its scout frames to be looked
	// at): following it ends there, saying how it goes on.
	endedOrSuspended := func(j *client.Job) bool { return client.UntilFinal(j) || j.Status == client.StatusSuspended }
	job, err := c.Wait(ctx, id, endedOrSuspended, report)
	done()
	if err != nil {
		if interrupted(ctx) {
			return job, exitWith(exitInterrupted, "stopped waiting; job %s goes on on the farm.\nFollow it again with: %s", id, resume)
		}
		return job, r.explain(err)
	}
	if job.Status == client.StatusSuspended {
		why := "suspended"
		if job.SuspendedReason == client.SuspendedScoutFramesReady {
			why = "its scout frames are rendered; look at them (renderfarm download " + id + " DIR) and approve"
		}
		con.printf("job %s: %s; render the rest with: renderfarm resume %s\n", id, why, id)
	}
	return job, nil
}

// outcome turns the way a job ended into the command's exit code, and
// says why it failed.
func outcome(job *client.Job) error {
	switch job.Status {
	case client.StatusFailed:
		// The reason is the farm's, often Blender's words about the
		// file: escaped here, so that run, which keeps the lines of the
		// command's own messages, prints a newline in it as \n.
		msg := sprintf("job %s failed", job.ID)
		if fr := job.FailedReason; fr != nil {
			if fr.Type != "" {
				msg += sprintf(" during %s", fr.Type)
			}
			if fr.Name != "" {
				msg += sprintf(": %s", fr.Name)
			}
			if fr.Message != "" {
				msg += sprintf(": %s", fr.Message)
			}
		}
		return &exitError{code: exitFailed, err: errors.New(msg)}
	case client.StatusCanceled:
		return exitWith(exitCanceled, "job %s was canceled", job.ID)
	}
	return nil
}

// printAnalysis says what validation found, with its warnings standing
// out: a missing texture is better read before a thousand frames render.
func printAnalysis(con *console, job *client.Job) {
	a := job.Analysis
	if a == nil {
		con.printf("job %s: validated\n", job.ID)
		return
	}
	renders := a.RenderBlenderVersion
	if renders == "" {
		renders = a.BlenderVersion
	}
	farm := ""
	if len(a.FarmBlenderVersions) > 1 {
		farm = " (the farm runs " + strings.Join(a.FarmBlenderVersions, ", ") + ")"
	}
	con.printf("job %s: validated, saved with Blender %s, opened with Blender %s%s\n", job.ID, a.FileVersion, renders, farm)
	for _, s := range a.Scenes {
		active := ""
		if len(a.Scenes) > 1 && s.Name == a.ActiveScene {
			active = " (active)"
		}
		camera := "camera " + s.Camera
		if s.Camera == "" {
			camera = "no camera"
		}
		con.printf("  scene %s%s: frames %d-%d at %g fps, %dx%d at %d%%, %s, %d samples, %s, %s\n",
			s.Name, active, s.FrameStart, s.FrameEnd, s.FPS, s.ResolutionX, s.ResolutionY, s.ResolutionPercentage,
			s.Engine, s.Samples, camera, s.OutputFormat)
	}
	if n := len(a.ExternalFiles); n > 0 {
		missing := 0
		for _, f := range a.ExternalFiles {
			if f.Missing {
				missing++
			}
		}
		if missing == 0 {
			con.printf("  external files: %d, all found\n", n)
		} else {
			con.printf("  external files: %d, %d missing\n", n, missing)
		}
	}
	for _, w := range a.Warnings {
		con.warn(w.Code, w.Message)
	}
}

// printRenderPlan says what the farm is going to render, as it resolved
// the request against the file.
func printRenderPlan(con *console, job *client.Job) {
	fc := job.FinalConfig
	if fc == nil {
		con.printf("job %s: %s\n", job.ID, job.Status)
		return
	}
	res := ""
	if len(fc.Resolution) == 2 {
		res = fmt.Sprintf(", %dx%d", fc.Resolution[0], fc.Resolution[1])
		if fc.ResolutionPercentage != 0 && fc.ResolutionPercentage != 100 {
			res += fmt.Sprintf(" at %d%%", fc.ResolutionPercentage)
		}
	}
	blender := ""
	if fc.BlenderVersion != "" {
		blender = " with Blender " + fc.BlenderVersion
	}
	con.printf("job %s: rendering frames %s (%d) of scene %s%s, %s, %d samples, %s%s\n",
		job.ID, strings.Join(fc.FrameRanges, ","), fc.FrameCount, fc.Scene, res, fc.RenderEngine, fc.SampleCount, fc.OutputFormat, blender)
}

// shellQuote quotes a path for a command line a person may paste, when it
// needs quoting at all.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
