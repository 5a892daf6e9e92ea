# Apply renderfarm's render settings to the scene a session is about to
# render. session.py calls apply(scene, request) for its configure command,
# then renders the frames itself. Any setting this Blender cannot honour
# stops with an "Error: ..." line before a frame is rendered: a silently
# different render is worse than a failed one.

import re
import sys

import bpy

MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW", "FRAMESERVER", "H264", "XVID", "THEORA", "QUICKTIME"}
EEVEE_ENGINES = ("BLENDER_EEVEE", "BLENDER_EEVEE_NEXT")


def fail(message):
    print("Error: " + message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.exit(1)


def note(message):
    print("renderfarm: " + message, flush=True)


def enum_choices(err):
    match = re.search(r"not found in \((.*)\)", str(err))
    if not match:
        return []
    return re.findall(r"'([^']*)'", match.group(1))


def assign(owner, attr, value, field, where=""):
    """Set owner.attr, turning Blender's refusal into a message naming field."""
    try:
        setattr(owner, attr, value)
    except TypeError as err:
        choices = enum_choices(err)
        if choices:
            fail("%s %r is not available%s in Blender %s (choose one of: %s)"
                 % (field, value, where, bpy.app.version_string, ", ".join(choices)))
        fail("%s %r was refused%s by Blender %s: %s" % (field, value, where, bpy.app.version_string, err))
    except (ValueError, AttributeError) as err:
        fail("%s %r was refused%s by Blender %s: %s" % (field, value, where, bpy.app.version_string, err))


def apply_engine(scene, engine):
    try:
        scene.render.engine = engine
        return
    except TypeError as err:
        choices = enum_choices(err)
    # EEVEE's identifier was BLENDER_EEVEE_NEXT in 4.2-4.4 and is
    # BLENDER_EEVEE before and after; accept either everywhere.
    if engine in EEVEE_ENGINES:
        for alias in EEVEE_ENGINES:
            if alias in choices:
                scene.render.engine = alias
                return
    fail("engine %r is not available in Blender %s (choose one of: %s)"
         % (engine, bpy.app.version_string, ", ".join(choices)))


def apply_samples(scene, samples):
    engine = scene.render.engine
    if engine == "CYCLES":
        assign(scene.cycles, "samples", samples, "samples")
    elif engine in EEVEE_ENGINES:
        assign(scene.eevee, "taa_render_samples", samples, "samples")
    else:
        note("samples ignored: %s has no sample count" % engine)


def apply_denoising(scene, enabled):
    cycles = getattr(scene, "cycles", None)
    if cycles is None:
        if enabled:
            fail("denoising was requested but this Blender has no Cycles")
        return
    # Cycles denoises a view layer only when the scene flag and the layer's
    # own flag are both on, so both are set the same way.
    cycles.use_denoising = enabled
    for layer in scene.view_layers:
        layer_cycles = getattr(layer, "cycles", None)
        if layer_cycles is not None:
            layer_cycles.use_denoising = enabled


def apply_tiling(scene, use_tiling, tile_size):
    cycles = getattr(scene, "cycles", None)
    if cycles is None or not hasattr(cycles, "use_auto_tile"):
        note("tiling settings ignored: this Blender has no Cycles tiling")
        return
    if use_tiling is not None:
        cycles.use_auto_tile = use_tiling
    if tile_size:
        assign(cycles, "tile_size", tile_size, "tileSize")


def apply_device(scene, device_type, count):
    """Render Cycles on count GPUs of device_type, through Cycles' preferences.

    The node was started with --gpu saying it has them; a Blender that
    sees fewer stops here, naming what it sees, rather than rendering on
    the CPU behind the job's back.
    """
    if scene.render.engine != "CYCLES":
        fail("computeDeviceType %s renders with Cycles only, and the scene's engine is %s" % (device_type, scene.render.engine))
    addon = bpy.context.preferences.addons.get("cycles")
    if addon is None:
        fail("computeDeviceType %s: this Blender has no Cycles add-on" % device_type)
    prefs = addon.preferences
    assign(prefs, "compute_device_type", device_type, "computeDeviceType")
    prefs.get_devices()
    seen = [d for d in prefs.devices if d.type == device_type]
    if len(seen) < count:
        fail("computeDeviceType %s: Blender %s sees %d %s device(s) on this render node, and the job needs %d"
             % (device_type, bpy.app.version_string, len(seen), device_type, count))
    for device in prefs.devices:
        device.use = False
    for device in seen[:count]:
        device.use = True
    scene.cycles.device = "GPU"
    note("device GPU: %d %s device(s)" % (count, device_type))


def view_transform_for(settings, wanted):
    """The view transform asked for (None if there is none), and all there are.

    Matching ignores case; a preset such as "aces" also matches the newest
    transform whose name starts with it ("ACES 2.0" over "ACES 1.3").
    """
    try:
        settings.view_transform = "\u0000renderfarm-probe"
        available = []
    except TypeError as err:
        available = enum_choices(err)
    lowered = wanted.lower()
    for name in available:
        if name.lower() == lowered:
            return name, available
    prefixed = sorted(name for name in available if name.lower().startswith(lowered))
    if prefixed:
        return prefixed[-1], available
    return None, available


def apply_color_management(scene, preset):
    if preset in ("", "default"):
        return
    settings = scene.view_settings
    current = settings.view_transform
    name, available = view_transform_for(settings, preset)
    if name is None:
        settings.view_transform = current
        fail("color management %r is not available in Blender %s: its view transforms are %s"
             % (preset, bpy.app.version_string, ", ".join(available) or "unknown"))
    settings.view_transform = name
    note("view transform %s" % name)


def apply_output(scene, s, output_path):
    image = scene.render.image_settings
    fmt = s.get("outputFormat")
    if fmt:
        if fmt in MOVIE_FORMATS:
            fail("outputFormat %r is a movie format; the farm renders still frames" % fmt)
        assign(image, "file_format", fmt, "outputFormat")
    elif image.file_format in MOVIE_FORMATS:
        note("the scene's output format %s is a movie format; rendering PNG frames instead" % image.file_format)
        image.file_format = "PNG"

    # The order matters: valid modes, depths and codecs depend on the format.
    where = " for " + image.file_format
    for key, attr in (("colorMode", "color_mode"), ("colorDepth", "color_depth"),
                      ("exrCodec", "exr_codec"), ("tiffCodec", "tiff_codec"),
                      ("compression", "compression"), ("quality", "quality")):
        if s.get(key):
            assign(image, attr, s[key], key, where)

    render = scene.render
    render.filepath = output_path
    render.use_file_extension = True
    # A file saved with overwrite off would make Blender skip frames whose
    # files exist, and placeholders would look like finished frames.
    render.use_overwrite = True
    render.use_placeholder = False
    # A multiview scene keeps its views: outputs.py gives each a suffix of
    # the farm's, and the worker takes a file per view (frame_0001_L.png).
    # Stamped metadata (and a burnt-in stamp) must not tell the client where
    # the farm keeps files or what its machines are called.
    render.use_stamp_filename = False
    if hasattr(render, "use_stamp_hostname"):
        render.use_stamp_hostname = False


def apply(scene, request):
    if not bpy.data.filepath:
        fail("no .blend file was loaded")
    s = request.get("settings") or {}
    render = scene.render
    if s.get("engine"):
        apply_engine(scene, s["engine"])
    if s.get("samples"):
        apply_samples(scene, s["samples"])
    if s.get("resolutionX"):
        assign(render, "resolution_x", s["resolutionX"], "resolutionX")
    if s.get("resolutionY"):
        assign(render, "resolution_y", s["resolutionY"], "resolutionY")
    if s.get("resolutionPercentage"):
        assign(render, "resolution_percentage", s["resolutionPercentage"], "resolutionPercentage")
    if s.get("fps"):
        assign(render, "fps", s["fps"], "fps")
        render.fps_base = 1.0
    if s.get("denoising") is not None:
        apply_denoising(scene, bool(s["denoising"]))
    if s.get("useTiling") is not None or s.get("tileSize"):
        apply_tiling(scene, s.get("useTiling"), s.get("tileSize"))
    if s.get("computeDeviceType"):
        apply_device(scene, s["computeDeviceType"], s.get("gpuDevices") or 1)
    apply_color_management(scene, s.get("colorManagement") or "")
    apply_output(scene, s, request["outputPath"])

    if render.engine == "CYCLES" and scene.cycles.use_denoising:
        denoise = "on"
    else:
        denoise = "off"
    note("scene %s: engine %s, %dx%d at %d%%, %s, denoising %s"
         % (scene.name, render.engine, render.resolution_x, render.resolution_y,
            render.resolution_percentage, render.image_settings.file_format, denoise))
