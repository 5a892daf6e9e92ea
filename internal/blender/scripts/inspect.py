# Describe the .blend file Blender has loaded, as JSON, for renderfarm.
#
# session.py calls write_inspection(OUT.json) for its inspect command.
#
# The file is untrusted: this script only reads bpy.data and stats files on
# disk. It never loads images or runs anything the file carries.

import importlib.util
import json
import os
import re
import sys

import bpy

# outputs.py, beside this script, describes what a scene writes; loaded by
# path under a name of ours, as session.py loads this script.
_spec = importlib.util.spec_from_file_location(
    "renderfarm_outputs", os.path.join(os.path.dirname(os.path.abspath(__file__)), "outputs.py"))
outputs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(outputs)

MOVIE_FORMATS = {"FFMPEG", "AVI_JPEG", "AVI_RAW", "FRAMESERVER", "H264", "XVID", "THEORA", "QUICKTIME"}
EEVEE_ENGINES = {"BLENDER_EEVEE", "BLENDER_EEVEE_NEXT"}

# Cycles stores the denoiser as an int. A build without a denoiser hides its
# enum item, so reading the property answers "" (and warns): use the raw value.
DENOISER_IDS = {1: "NLM", 2: "OPTIX", 3: "OPENIMAGEDENOISE_OLD", 4: "OPENIMAGEDENOISE"}

# Bound the answer for hostile files with huge numbers of datablocks.
MAX_EXTERNAL_FILES = 5000


def fail(message):
    print("Error: " + message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.exit(1)


def denoiser_available():
    try:
        import _cycles
        return bool(getattr(_cycles, "with_openimagedenoise", False))
    except ImportError:
        return bool(getattr(bpy.app.build_options, "openimagedenoise", False))


def view_transforms():
    """The view transforms this Blender's OCIO config offers.

    The enum is dynamic, so bl_rna does not list it; Blender names the valid
    values when given an invalid one.
    """
    settings = bpy.context.scene.view_settings
    current = settings.view_transform
    try:
        settings.view_transform = "\u0000renderfarm-probe"
    except TypeError as err:
        return enum_choices(err)
    finally:
        try:
            settings.view_transform = current
        except TypeError:
            pass
    return []


def enum_choices(err):
    match = re.search(r"not found in \((.*)\)", str(err))
    if not match:
        return []
    return re.findall(r"'([^']*)'", match.group(1))


def denoiser_name(cycles, available):
    raw = cycles.get("denoiser")
    if raw is not None:
        return DENOISER_IDS.get(raw, str(raw))
    if available:
        return cycles.denoiser
    # Reading the property would only warn and answer "": the default of
    # every Cycles since 3.0 is OpenImageDenoise.
    return "OPENIMAGEDENOISE"


def scene_camera(scene):
    if scene.camera is not None:
        return scene.camera.name
    # Markers bound to cameras switch the camera during rendering.
    for marker in scene.timeline_markers:
        if marker.camera is not None:
            return marker.camera.name
    return ""


def scene_info(scene, available):
    render = scene.render
    engine = render.engine
    samples = 0
    if engine == "CYCLES":
        samples = scene.cycles.samples
    elif engine in EEVEE_ENGINES:
        samples = scene.eevee.taa_render_samples

    denoising = False
    denoiser = ""
    cycles = getattr(scene, "cycles", None)
    if engine == "CYCLES" and cycles is not None:
        # Measured on 3.4: Cycles denoises a layer only when both the scene
        # flag and that view layer's flag are on.
        denoising = bool(cycles.use_denoising) and any(
            layer.use and getattr(layer, "cycles", None) is not None and layer.cycles.use_denoising
            for layer in scene.view_layers
        )
        denoiser = denoiser_name(cycles, available)

    image = render.image_settings
    return {
        "name": scene.name,
        "frameStart": scene.frame_start,
        "frameEnd": scene.frame_end,
        "frameStep": scene.frame_step,
        "fps": render.fps / render.fps_base if render.fps_base else float(render.fps),
        "resolutionX": render.resolution_x,
        "resolutionY": render.resolution_y,
        "resolutionPercentage": render.resolution_percentage,
        "engine": engine,
        "samples": samples,
        "camera": scene_camera(scene),
        "outputFormat": image.file_format,
        "colorMode": image.color_mode,
        "colorDepth": image.color_depth,
        "denoisingEnabled": denoising,
        "denoiser": denoiser,
        # The compositor only runs when the scene also has a node tree in use.
        "useCompositing": bool(render.use_compositing and scene.use_nodes),
        "viewLayers": [layer.name for layer in scene.view_layers],
        "viewTransform": scene.view_settings.view_transform,
        "isMovieOutput": image.file_format in MOVIE_FORMATS,
        "outputPath": render.filepath,
        "useFileExtension": bool(render.use_file_extension),
        "multiview": outputs.multiview_info(scene),
        "fileOutputNodes": outputs.file_output_nodes(scene),
        "renderPasses": outputs.render_passes(scene),
    }


def resolve(path, library=None):
    """The absolute path Blender would read for a stored path."""
    # Files saved on Windows keep backslashes; Blender reads them as separators.
    path = bpy.path.abspath(path.replace("\\", "/"), library=library).replace("\\", "/")
    return os.path.normpath(path)


def exists_or_numbered_sibling(path):
    """True when path exists, or, for a numbered sequence, any frame of it does."""
    if os.path.exists(path):
        return True
    folder, name = os.path.split(path)
    match = re.match(r"^(.*?)(\d+)(\D*)$", name)
    if not match or not os.path.isdir(folder):
        return False
    prefix, suffix = match.group(1), match.group(3)
    pattern = re.compile(re.escape(prefix) + r"\d+" + re.escape(suffix) + "$")
    try:
        with os.scandir(folder) as entries:
            return any(pattern.match(entry.name) for entry in entries)
    except OSError:
        return False


def udim_path(path, tile):
    u = (tile - 1001) % 10 + 1
    v = (tile - 1001) // 10 + 1
    return path.replace("<UDIM>", str(tile)).replace("<UVTILE>", "u%d_v%d" % (u, v))


class Files:
    def __init__(self):
        self.items = []
        self.truncated = False
        # The linked libraries, also among the items: the subset of the
        # items a person checks first, since a missing one drops whole
        # objects rather than a texture.
        self.libraries = []

    def add(self, kind, name, stored, library=None, packed=False, sequence=False, udim_tiles=None):
        if len(self.items) >= MAX_EXTERNAL_FILES:
            self.truncated = True
            return None
        missing = False
        if not packed:
            if not stored:
                missing = True
            else:
                path = resolve(stored, library)
                if udim_tiles and ("<UDIM>" in path or "<UVTILE>" in path):
                    missing = not os.path.exists(udim_path(path, udim_tiles[0]))
                elif sequence or udim_tiles:
                    missing = not exists_or_numbered_sibling(path)
                else:
                    missing = not os.path.exists(path)
        item = {
            "type": kind,
            "name": name,
            "path": stored,
            "missing": missing,
            "packed": bool(packed),
        }
        self.items.append(item)
        return item


def collect_files():
    files = Files()

    for image in bpy.data.images:
        if image.source not in {"FILE", "SEQUENCE", "MOVIE", "TILED"}:
            continue
        packed = image.packed_file is not None or len(image.packed_files) > 0
        tiles = [tile.number for tile in image.tiles] if image.source == "TILED" else None
        files.add("image", image.name, image.filepath, image.library, packed,
                  sequence=image.source == "SEQUENCE", udim_tiles=tiles)

    for sound in bpy.data.sounds:
        files.add("sound", sound.name, sound.filepath, sound.library, sound.packed_file is not None)

    for clip in bpy.data.movieclips:
        files.add("movieclip", clip.name, clip.filepath, clip.library, False,
                  sequence=clip.source == "SEQUENCE")

    for library in bpy.data.libraries:
        # Blender holds every library's path relative to the open file, also
        # for a library linked through another one (library.parent), whose
        # own file stores it relative to itself.
        item = files.add("library", library.name, library.filepath, None, library.packed_file is not None)
        if item is not None:
            files.libraries.append({
                "name": library.name,
                "path": library.filepath,
                "parent": library.parent.name if library.parent is not None else "",
                "missing": item["missing"],
            })

    for font in bpy.data.fonts:
        if font.filepath == "<builtin>":
            continue
        files.add("font", font.name, font.filepath, font.library, font.packed_file is not None)

    for volume in getattr(bpy.data, "volumes", []):
        files.add("volume", volume.name, volume.filepath, volume.library, volume.packed_file is not None,
                  sequence=volume.is_sequence)

    for cache in bpy.data.cache_files:
        files.add("cache", cache.name, cache.filepath, cache.library, False, sequence=cache.is_sequence)

    collect_simulation_caches(files)
    collect_sequencer_strips(files)
    return files


def collect_simulation_caches(files):
    blend_name = bpy.path.basename(bpy.data.filepath)
    disk_cache_dir = "//blendcache_" + os.path.splitext(blend_name)[0]

    def point_cache(owner, cache, library):
        if cache is None:
            return
        if cache.use_external:
            files.add("cache", owner, cache.filepath, library)
        elif cache.use_disk_cache and cache.is_baked:
            # Only a baked cache must be there; an unbaked one is simulated.
            files.add("cache", owner, disk_cache_dir, library)

    for obj in bpy.data.objects:
        for mod in obj.modifiers:
            label = "%s/%s" % (obj.name, mod.name)
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                domain = mod.domain_settings
                # A replay cache is simulated on the fly; only baked caches must exist.
                baked = any(getattr(domain, flag, False) for flag in (
                    "has_cache_baked_data", "has_cache_baked_noise", "has_cache_baked_mesh",
                    "has_cache_baked_particles", "has_cache_baked_guides"))
                if domain.cache_type != "REPLAY" and baked:
                    files.add("cache", label, domain.cache_directory, obj.library)
            elif mod.type == "OCEAN" and mod.is_cached:
                files.add("cache", label, mod.filepath, obj.library)
            elif hasattr(mod, "point_cache"):
                point_cache(label, mod.point_cache, obj.library)
        for psys in getattr(obj, "particle_systems", []):
            point_cache("%s/%s" % (obj.name, psys.name), psys.point_cache, obj.library)

    for scene in bpy.data.scenes:
        world = scene.rigidbody_world
        if world is not None:
            point_cache("%s/rigidbody" % scene.name, world.point_cache, scene.library)


def collect_sequencer_strips(files):
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        if editor is None:
            continue
        strips = getattr(editor, "sequences_all", None) or getattr(editor, "strips_all", [])
        for strip in strips:
            if strip.type == "MOVIE":
                files.add("movie", "%s/%s" % (scene.name, strip.name), strip.filepath, scene.library)
            elif strip.type == "IMAGE" and len(strip.elements) > 0:
                folder = strip.directory
                if folder and not folder.endswith(("/", "\\")):
                    folder += "/"
                stored = folder + strip.elements[0].filename
                files.add("image", "%s/%s" % (scene.name, strip.name), stored, scene.library)


def active_scene():
    window = bpy.context.window
    if window is not None and window.scene is not None:
        return window.scene.name
    return bpy.context.scene.name


def write_inspection(out_path):
    if not bpy.data.filepath:
        fail("no .blend file was loaded")

    files = collect_files()
    available = denoiser_available()
    major, minor = bpy.data.version[0], bpy.data.version[1]
    report = {
        # The patch release is not stored in a .blend: the third number of
        # bpy.data.version is the file subversion, not Blender's.
        "fileVersion": "%d.%d" % (major, minor),
        "blenderVersion": bpy.app.version_string,
        "denoiserAvailable": available,
        "viewTransforms": view_transforms(),
        "activeScene": active_scene(),
        "scenes": [scene_info(scene, available) for scene in bpy.data.scenes],
        "externalFiles": files.items,
        "externalFilesTruncated": files.truncated,
        "libraries": files.libraries,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(report, f)
    print("renderfarm: inspection written", flush=True)
