"""The add-on's Blender side: preferences, the render settings of the scene,
the renderfarm panel in the Render properties, and the operators.

Network calls and packing run in threads (see submission.py); a timer
started with bpy.app.timers redraws the panel while any runs, so Blender's
interface never waits on the farm. In background mode, where Blender has
no interface, bpy.ops.renderfarm.submit(wait=True) blocks until the job
ends, for scripts and pipelines:

    bpy.ops.renderfarm.submit(frames="1-3", wait=True, download=True)
"""

import os
import threading

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, PointerProperty, StringProperty

from . import renderfarm_client as rfc
from . import submission

# Still formats the farm renders (internal/farm/config.go); movies are
# made from the frames on the farm.
STILL_FORMATS = ["PNG", "JPEG", "JPEG2000", "BMP", "TARGA", "TARGA_RAW", "TIFF", "OPEN_EXR",
                 "OPEN_EXR_MULTILAYER", "HDR", "CINEON", "DPX", "IRIS", "WEBP"]

# The most frames one render request holds (the farm's limit); download
# names are worked out for at most that many.
MAX_FRAMES = 100000

# How often the panel is redrawn while work runs, in seconds.
REDRAW_INTERVAL = 0.5


class _State:
    """What the add-on knows in this Blender session. Kept in memory only:
    nothing here is saved into the .blend."""

    def __init__(self):
        self.submissions = []  # newest first
        self.farm_jobs = []  # from the last refresh: (job, progress)
        self.render_fields = None  # fields of requestedRenderConfig the farm takes; None until asked
        self.message = ""
        self.tasks = []  # threads of refreshes, cancels and downloads
        self.missing_cache = (None, [])

    def busy(self):
        self.tasks = [t for t in self.tasks if t.is_alive()]
        return bool(self.tasks) or any(not s.done for s in self.submissions)


STATE = _State()


def addon_prefs(context):
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def server_and_key(context):
    """The farm's URL and API key: the add-on's preferences, or else
    RENDERFARM_SERVER and RENDERFARM_API_KEY."""
    prefs = addon_prefs(context)
    server = (prefs.server_url if prefs else "") or os.environ.get("RENDERFARM_SERVER", "")
    key = (prefs.api_key if prefs else "") or os.environ.get("RENDERFARM_API_KEY", "")
    return server.strip(), key.strip()


def make_client(context):
    server, key = server_and_key(context)
    return rfc.Client(server, key)


def redraw():
    wm = bpy.context.window_manager
    if wm is None:
        return
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()


def _tick():
    """The timer: redraws the panel while work runs, then stops."""
    redraw()
    if STATE.busy():
        return REDRAW_INTERVAL
    return None


def watch():
    if not bpy.app.timers.is_registered(_tick):
        bpy.app.timers.register(_tick, first_interval=REDRAW_INTERVAL)


def run_in_thread(target):
    """Runs target (no arguments) in a thread; its error, if any, becomes
    the panel's message."""
    def body():
        try:
            target()
        except (rfc.APIError, OSError, ValueError) as err:
            STATE.message = str(err)
    thread = threading.Thread(target=body, name="renderfarm", daemon=True)
    STATE.tasks.append(thread)
    thread.start()
    watch()


# -- settings ------------------------------------------------------------------


def scene_frames(scene):
    return rfc.frame_ranges(scene.frame_start, scene.frame_end, scene.frame_step)


def _fill(name):
    """Fills a setting from the scene when its override is switched on, so
    that the field starts from what the scene says."""
    def update(self, context):
        scene = context.scene
        if not getattr(self, "override_" + name):
            return
        if name == "frames":
            self.frames = scene_frames(scene)
        elif name == "samples":
            self.samples = scene_samples(scene) or 1
        elif name == "resolution":
            self.resolution_percentage = scene.render.resolution_percentage
        elif name == "format":
            fmt = scene.render.image_settings.file_format
            self.output_format = fmt if fmt in STILL_FORMATS else "PNG"
    return update


def scene_samples(scene):
    engine = scene.render.engine
    if engine == "CYCLES":
        return scene.cycles.samples
    if engine in ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"):
        return scene.eevee.taa_render_samples
    return 0


class RenderfarmPreferences(bpy.types.AddonPreferences):
    """Where the farm is and the key to it. Add-on preferences are saved with
    Blender's user preferences, never into a .blend."""

    bl_idname = __package__

    server_url: StringProperty(
        name="Server", description="The farm's URL, such as http://farm:8080; empty uses RENDERFARM_SERVER")
    api_key: StringProperty(
        name="API key", subtype="PASSWORD",
        description="Your workspace's API key; empty uses RENDERFARM_API_KEY. Kept in Blender's preferences, never in a .blend")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "server_url")
        layout.prop(self, "api_key")
        server, key = server_and_key(context)
        col = layout.column(align=True)
        col.label(text="Server in use: %s" % (server or "none: set it here or in RENDERFARM_SERVER"))
        col.label(text="API key: %s" % ("set" if key else "none: set it here or in RENDERFARM_API_KEY"))


class RenderfarmSettings(bpy.types.PropertyGroup):
    """A scene's farm settings. They are saved in the .blend, so they hold no
    secret: the server and key are in the add-on's preferences."""

    override_frames: BoolProperty(name="Frames", description="Render other frames than the scene's range", update=_fill("frames"))
    frames: StringProperty(name="Frames", description="Frame ranges such as 1-24, 1-10,20 or 1-250x5")
    override_samples: BoolProperty(name="Samples", description="Render with other samples than the scene's", update=_fill("samples"))
    samples: IntProperty(name="Samples", min=1, default=1)
    override_resolution: BoolProperty(name="Resolution %", description="Render at another resolution percentage", update=_fill("resolution"))
    resolution_percentage: IntProperty(name="Resolution %", min=1, max=100, default=100, subtype="PERCENTAGE")
    override_format: BoolProperty(name="Format", description="Write another still format than the scene's", update=_fill("format"))
    output_format: EnumProperty(name="Format", items=[(f, f.replace("_", " ").title(), "") for f in STILL_FORMATS], default="PNG")
    chunk_size: IntProperty(name="Chunk size", min=0, max=1000, default=0,
                            description="Frames per Blender process on the farm; 0 lets the farm spread them over its workers")
    priority: IntProperty(name="Priority", min=0, max=100, default=50,
                          description="Among your workspace's jobs, higher renders first: 0 (lowest) to 100 (highest)")
    scout_frames: StringProperty(name="Scout frames", description="Frames rendered first to check the shot, where the farm takes them")
    project_root: StringProperty(
        name="Project folder", subtype="DIR_PATH",
        description="Files in this folder keep their layout on the farm; empty is the .blend's folder. Files outside it are packed too")
    download: BoolProperty(name="Download frames", default=True,
                           description="When the job completes, download the frames where the scene's output path puts them")


def render_config(scene, settings, frames_override="", samples_override=0, chunk_override=0, fields=None):
    """The render request for the scene: what the settings override, and
    else the scene's own values."""
    config = {"colorManagementPreset": "default"}
    if frames_override:
        config["frameRanges"] = [r.strip() for r in frames_override.split(",") if r.strip()]
    elif settings.override_frames and settings.frames.strip():
        config["frameRanges"] = [r.strip() for r in settings.frames.split(",") if r.strip()]
    else:
        config["frameRanges"] = [scene_frames(scene)]
    if samples_override:
        config["sampleCount"] = samples_override
    elif settings.override_samples:
        config["sampleCount"] = settings.samples
    config["resolutionPercentage"] = settings.resolution_percentage if settings.override_resolution else scene.render.resolution_percentage
    fmt = settings.output_format if settings.override_format else scene.render.image_settings.file_format
    if fmt in STILL_FORMATS:
        config["outputFormat"] = fmt
    chunk = chunk_override or settings.chunk_size
    if chunk:
        config["chunkSize"] = chunk
    fields = fields or set()
    if "priority" in fields:
        config["priority"] = settings.priority
    if "scoutFrames" in fields and settings.scout_frames.strip():
        config["scoutFrames"] = [r.strip() for r in settings.scout_frames.split(",") if r.strip()]
    return config


def expand_frames(ranges, limit=MAX_FRAMES):
    """The frames named by ranges such as "1-10x2" or "7", at most limit."""
    frames = []
    for text in ranges:
        body, _, step = text.partition("x")
        first, _, last = body.partition("-")
        try:
            a = int(first)
            b = int(last) if last else a
            s = int(step) if step else 1
        except ValueError:
            continue
        frames.extend(range(a, b + 1, max(s, 1)))
        if len(frames) > limit:
            return frames[:limit]
    return frames


def frame_paths(scene, frames):
    """Where Blender would write each frame: the names downloads get, by
    frame (submission.frame_destination). A scene that renders views writes
    an image per view, with the view's suffix (render.views[name].file_suffix,
    "_L"), so each view's path is there too, by (frame, view name), as
    frame_path names it: it takes the view's name, and takes any other
    text for a suffix."""
    render = scene.render
    views = [v.name for v in render.views] if render.use_multiview else []
    paths = {}
    for f in frames:
        paths[f] = bpy.path.abspath(render.frame_path(frame=f))
        for name in views:
            paths[(f, name)] = bpy.path.abspath(render.frame_path(frame=f, view=name))
    return paths


# -- pre-flight ----------------------------------------------------------------


def missing_files():
    """Files the open file uses that are not there, for the pre-flight. Worked
    out again only when the file is saved again."""
    path = bpy.data.filepath
    key = (path, os.path.getmtime(path) if path and os.path.exists(path) else 0)
    cached_key, cached = STATE.missing_cache
    if cached_key == key:
        return cached
    missing = []
    for p in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
        check = p.replace("<UDIM>", "1001").replace("<UVTILE>", "u1_v1")
        if not os.path.exists(check) and p not in missing:
            missing.append(p)
    STATE.missing_cache = (key, missing)
    return missing


def preflight(context):
    """(problems, notes): problems stop a submission, notes are worth reading."""
    scene = context.scene
    problems, notes = [], []
    if not bpy.data.filepath:
        problems.append("Save the file first: the farm renders the saved .blend")
    elif bpy.data.is_dirty:
        problems.append("Save the file: the farm renders the saved .blend, not the changes since")
    server, key = server_and_key(context)
    if not server or not key:
        problems.append("Set the server and API key in the add-on's preferences")
    if scene.camera is None:
        problems.append("The scene has no camera")
    if bpy.data.filepath:
        missing = missing_files()
        if missing:
            notes.append("%d missing file%s: %s" % (len(missing), "" if len(missing) == 1 else "s",
                                                    ", ".join(os.path.basename(m) for m in missing[:3])))
    engine = scene.render.engine
    line = "Engine %s" % engine.replace("BLENDER_", "").title()
    if engine == "CYCLES":
        line += ", device %s" % scene.cycles.device
        if scene.cycles.device == "GPU":
            notes.append("The farm renders Cycles on its CPUs unless it has GPUs")
    notes.insert(0, line)
    return problems, notes


# -- operators -----------------------------------------------------------------


class RENDERFARM_OT_submit(bpy.types.Operator):
    """Pack the saved file with every file it uses and render it on the farm"""

    bl_idname = "renderfarm.submit"
    bl_label = "Submit to renderfarm"

    frames: StringProperty(name="Frames", description="Frame ranges; empty uses the panel's setting, or else the scene's range")
    wait: BoolProperty(name="Wait", description="Follow the job until it ends (in background mode, block until then)")
    download: BoolProperty(name="Download", description="Download the frames when the job completes (implies wait)")
    samples: IntProperty(name="Samples", min=0, default=0, description="0 uses the panel's setting, or else the file's")
    chunk_size: IntProperty(name="Chunk size", min=0, max=1000, default=0)

    def execute(self, context):
        problems, _ = preflight(context)
        if problems:
            self.report({"ERROR"}, "; ".join(problems))
            return {"CANCELLED"}
        scene = context.scene
        settings = scene.renderfarm
        try:
            client = make_client(context)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        config = render_config(scene, settings, self.frames, self.samples, self.chunk_size, STATE.render_fields)
        blend = bpy.data.filepath
        download = self.download or (not bpy.app.background and settings.download and self.wait)
        paths = frame_paths(scene, expand_frames(config["frameRanges"])) if download else {}
        out_dir = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=scene.frame_start)))
        sub = submission.Submission(
            client, blend, bpy.app.binary_path, config,
            project_root=bpy.path.abspath(settings.project_root) if settings.project_root else "",
            wait=self.wait, download=download, frame_paths=paths, download_dir=out_dir)
        STATE.submissions.insert(0, sub)
        if not bpy.app.background:
            sub.start()
            watch()
            self.report({"INFO"}, rfc.printable("Submitting %s to %s" % (os.path.basename(blend), client.server)))
            return {"FINISHED"}
        # No interface to keep alive: a script waits here. Blender prints
        # the reports below to the terminal it runs in, so the farm's text
        # in them (a failure's reason, the analysis' warnings, which quote
        # the file's names) is escaped (rfc.printable).
        sub.run()
        state = sub.snapshot()
        if state["stage"] == "failed":
            self.report({"ERROR"}, "renderfarm: " + rfc.printable(state["error"]))
            return {"CANCELLED"}
        for warning in state["warnings"]:
            self.report({"WARNING"}, rfc.printable(warning))
        job = state["job"]
        summary = submission.pack_summary(state["pack"]) if state["pack"] else ""
        text = "renderfarm: job %s %s (packed %s)" % (job["id"], job["status"], summary)
        if state["downloaded"]:
            text += "; %d frames downloaded to %s" % (len(state["downloaded"]), os.path.dirname(state["downloaded"][0]))
        self.report({"INFO"}, rfc.printable(text))
        return {"FINISHED"}


class RENDERFARM_OT_refresh(bpy.types.Operator):
    """Fetch the workspace's jobs and what the farm takes"""

    bl_idname = "renderfarm.refresh"
    bl_label = "Refresh"

    def execute(self, context):
        try:
            client = make_client(context)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}

        def fetch():
            STATE.render_fields = client.render_fields()
            jobs = client.jobs(page_size=10)["jobs"]
            STATE.farm_jobs = [(job, client.progress(job["id"], frames=False) if job["status"] not in rfc.FINAL else None) for job in jobs]
            STATE.message = ""
        run_in_thread(fetch)
        return {"FINISHED"}


class RENDERFARM_OT_cancel(bpy.types.Operator):
    """Cancel this job on the farm"""

    bl_idname = "renderfarm.cancel"
    bl_label = "Cancel job"

    job_id: StringProperty()

    def execute(self, context):
        for sub in STATE.submissions:
            job = sub.snapshot()["job"]
            if job is not None and job["id"] == self.job_id:
                run_in_thread(sub.cancel)
                return {"FINISHED"}
        try:
            client = make_client(context)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        job_id = self.job_id
        run_in_thread(lambda: client.cancel(job_id))
        return {"FINISHED"}


class RENDERFARM_OT_download(bpy.types.Operator):
    """Download this job's frames where the scene's output path puts them"""

    bl_idname = "renderfarm.download"
    bl_label = "Download frames"

    job_id: StringProperty()

    def execute(self, context):
        scene = context.scene
        try:
            client = make_client(context)
        except ValueError as err:
            self.report({"ERROR"}, str(err))
            return {"CANCELLED"}
        job_id = self.job_id
        out_dir = os.path.dirname(bpy.path.abspath(scene.render.frame_path(frame=scene.frame_start)))
        # Names are worked out here, in Blender's thread, for the frames the
        # job rendered.
        known = [sub.snapshot()["job"] for sub in STATE.submissions] + [job for job, _ in STATE.farm_jobs]
        ranges = next(((j.get("finalConfig") or {}).get("frameRanges") or [] for j in known if j and j["id"] == job_id), [])
        paths = frame_paths(scene, expand_frames(ranges))

        def fetch():
            written = client.download_frames(job_id, lambda o: submission.frame_destination(o, paths, out_dir))
            STATE.message = "%d frames of job %s downloaded to %s" % (len(written), job_id, out_dir)
        run_in_thread(fetch)
        return {"FINISHED"}


# -- the panel -----------------------------------------------------------------


def _setting(layout, settings, override, prop, scene_text):
    row = layout.row(align=True)
    row.prop(settings, override, text="")
    if getattr(settings, override):
        row.prop(settings, prop)
    else:
        row.label(text="%s: %s (scene)" % (settings.bl_rna.properties[override].name, scene_text))


def _progress(layout, fraction, text):
    if hasattr(layout, "progress"):  # Blender 4.0 and later
        layout.progress(factor=fraction, type="BAR", text=text)
    else:
        layout.label(text="%s (%d%%)" % (text, round(fraction * 100)))


class RENDER_PT_renderfarm(bpy.types.Panel):
    bl_label = "renderfarm"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "render"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        scene = context.scene
        settings = scene.renderfarm
        server, _ = server_and_key(context)
        layout.label(text="Farm: %s" % (server or "not set (add-on preferences)"), icon="WORLD")

        problems, notes = preflight(context)
        box = layout.box()
        box.label(text="Pre-flight", icon="CHECKMARK" if not problems else "ERROR")
        for p in problems:
            box.label(text=p, icon="ERROR")
        for n in notes:
            box.label(text=n, icon="INFO")

        col = layout.column()
        _setting(col, settings, "override_frames", "frames", scene_frames(scene))
        _setting(col, settings, "override_samples", "samples", str(scene_samples(scene)))
        _setting(col, settings, "override_resolution", "resolution_percentage", "%d%%" % scene.render.resolution_percentage)
        fmt = scene.render.image_settings.file_format
        _setting(col, settings, "override_format", "output_format", fmt if fmt in STILL_FORMATS else "%s: PNG frames on the farm" % fmt)
        col.prop(settings, "chunk_size")
        # Only what this farm's API document lists: an older farm would
        # refuse a request naming a field it does not know.
        fields = STATE.render_fields or set()
        if "priority" in fields:
            col.prop(settings, "priority")
        if "scoutFrames" in fields:
            col.prop(settings, "scout_frames")
        col.prop(settings, "project_root")
        col.prop(settings, "download")

        row = layout.row()
        row.scale_y = 1.4
        row.enabled = not problems
        op = row.operator(RENDERFARM_OT_submit.bl_idname, icon="RENDER_ANIMATION")
        op.wait = True
        op.download = settings.download

        if STATE.message:
            layout.label(text=STATE.message, icon="INFO")
        for sub in STATE.submissions[:5]:
            self.draw_submission(layout, sub.snapshot())

        row = layout.row()
        row.label(text="Jobs on the farm")
        row.operator(RENDERFARM_OT_refresh.bl_idname, text="", icon="FILE_REFRESH")
        for job, progress in STATE.farm_jobs:
            row = layout.row()
            row.label(text="%s… %s" % (job["id"][:8], rfc.progress_line(job, progress)))
            self.job_buttons(row, job)

    def draw_submission(self, layout, state):
        box = layout.box()
        job = state["job"]
        title = os.path.basename(bpy.data.filepath) if job is None else "Job %s…" % job["id"][:8]
        row = box.row()
        row.label(text="%s: %s" % (title, state["stage"]), icon="ERROR" if state["stage"] == "failed" else "RENDER_RESULT")
        if job is not None:
            self.job_buttons(row, job)
        if state["stage"] in ("uploading", "rendering", "downloading"):
            _progress(box, state["fraction"], state["message"])
        # The frames by status, while they are listed (a job of at most
        # Client.MANY_FRAMES frames); else the line of counters.
        by_status = rfc.frames_by_status(state["progress"]) if state["stage"] == "rendering" else ""
        if by_status:
            box.label(text=by_status)
        elif state["message"]:
            box.label(text=state["message"])
        if state["pack"]:
            box.label(text="Packed " + submission.pack_summary(state["pack"]), icon="PACKAGE")
            for m in (state["pack"].get("missing") or [])[:5]:
                box.label(text="Missing: %s (%s)" % (m["path"], m["reason"]), icon="ERROR")
        for w in state["warnings"][:5]:
            box.label(text=w, icon="ERROR")
        if state["downloaded"]:
            box.label(text="%d frames in %s" % (len(state["downloaded"]), os.path.dirname(state["downloaded"][0])), icon="FILE_FOLDER")

    @staticmethod
    def job_buttons(row, job):
        if job["status"] not in rfc.FINAL:
            row.operator(RENDERFARM_OT_cancel.bl_idname, text="", icon="CANCEL").job_id = job["id"]
        elif job["status"] == "completed":
            row.operator(RENDERFARM_OT_download.bl_idname, text="", icon="IMPORT").job_id = job["id"]


CLASSES = (
    RenderfarmPreferences,
    RenderfarmSettings,
    RENDERFARM_OT_submit,
    RENDERFARM_OT_refresh,
    RENDERFARM_OT_cancel,
    RENDERFARM_OT_download,
    RENDER_PT_renderfarm,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.renderfarm = PointerProperty(type=RenderfarmSettings)


def unregister():
    if bpy.app.timers.is_registered(_tick):
        bpy.app.timers.unregister(_tick)
    del bpy.types.Scene.renderfarm
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
