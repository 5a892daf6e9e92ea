"""Pack a .blend and every file it uses into a project zip renderfarm renders.

A shot links characters and props from other .blend files, reads textures by
absolute path or from folders beside the project, image sequences, UDIM
tiles, sounds, fonts, volumes and caches. Blender knows every one of those
paths, so this module runs inside Blender: it opens the .blend, lists what
each datablock reads, opens every linked library the same way (a library's
paths are relative to the library), and writes one zip:

- the .blend to render at the top of the zip, alone there, as the farm
  requires;
- the files inside the project folder (the .blend's folder unless told
  otherwise) where they are relative to it;
- the files outside it under ``_outside/<root>/<their whole path>``, where
  <root> is ``root`` for a POSIX path, the drive letter on Windows, or
  ``unc/<server>/<share>``, so two files can never land on one name;
- another .blend that would sit at the top of the zip beside the one to
  render goes under ``_libraries/``.

Every path that no longer points at its file from the zip's layout is
rewritten to a relative one (``//…``) in a COPY of the .blend that holds it,
saved by Blender into a temporary folder; the artist's files are only ever
read. A .blend whose paths all still hold is zipped as it is, byte for byte,
so that a newer Blender packing an older file does not re-save it.

Files that are not there are listed in the report and left out; the rest is
packed. The .blend and its libraries are untrusted like any file from
elsewhere: they are opened with their scripts off (``use_scripts=False``,
and Blender runs with --disable-autoexec), nothing they hold reaches a
command line, and files they name outside the project are refused when they
are hidden (``~/.ssh/…``; on Windows also by an attribute, and a user's
AppData) or belong to the system (/proc, /sys, /dev, /run), so a file
cannot smuggle secrets into an upload. A file is judged where it really
is, every link resolved, as well as by the path that names it: /etc/mtab
is /proc/self/mounts, and a link in the project folder to
~/.ssh/id_ed25519 leads out of the project.

It is run the same way by ``renderfarm pack``/``renderfarm submit`` (Go) and
by the Blender add-on, which starts Blender's own binary so that the
artist's open session is never replaced by the files this opens:

    blender -b --factory-startup -noaudio --python-exit-code 1
            --disable-autoexec --python packer.py -- JOB.json

JOB.json: {"blend": ABS, "projectRoot": ABS or "", "zip": ABS, "report": ABS}.
The report (JSON, see write_report) says what was packed, rewritten, missing
and refused, or why packing failed.

The layout decisions (class Layout and the functions around it) import
nothing of Blender, so they are tested with plain Python.
"""

import json
import os
import posixpath
import re
import shutil
import stat
import sys
import tempfile
import zipfile

# Where files from outside the project folder go, and other .blend files
# that would otherwise sit at the top of the zip.
OUTSIDE_DIR = "_outside"
LIBRARIES_DIR = "_libraries"

# The farm's own limits on a project zip (internal/blendfile DefaultZipLimits):
# a zip over them would be refused after a long upload, so it is refused here.
MAX_FILES = 10000
MAX_TOTAL_BYTES = 20 << 30

# Limits of the farm's zip check on entry names (internal/blendfile).
MAX_NAME_BYTES = 255
MAX_ENTRY_BYTES = 1024

# Formats that are compressed already: deflating them again costs time and
# gains nothing (the same list as the Go client's).
STORED_EXTS = {
    ".png", ".jpg", ".jpeg", ".webp", ".exr",
    ".mp4", ".mov", ".mkv", ".webm", ".avi",
    ".mp3", ".ogg", ".flac",
    ".zip", ".gz", ".zst", ".7z", ".vdb",
}

# System folders whose files are never project data: /proc/self/environ is
# a regular file to stat() and holds the environment. /var/run is /run's
# older name: a link to it on current systems, a folder of its own (with
# Kubernetes' secrets mounted below it) on others.
SYSTEM_DIRS = ("/proc", "/sys", "/dev", "/run", "/var/run")

# A Windows user's AppData holds every program's settings: browsers' saved
# passwords and cookies, tokens, keys. Windows hides it with an attribute,
# not a dot, so it is known by its name too, which also covers it seen from
# WSL (/mnt/c/Users/…/AppData).
APPDATA = "appdata"

PROGRESS = "renderfarm-pack: "


class PackError(Exception):
    """Packing cannot go on; the message says what to change."""


# ---------------------------------------------------------------------------
# Layout: where each file goes in the zip, and what a .blend must store to
# find it there. Pure string work on paths, testable without Blender.


def _components(path):
    """The non-empty components of a path, split on either separator."""
    return [c for c in re.split(r"[\\/]+", path) if c and c != "."]


class Layout:
    """Decides the zip path of every file of one pack.

    main_blend and project_root are absolute; pathmod is os.path (ntpath on
    Windows), given explicitly by tests of Windows paths.
    """

    def __init__(self, main_blend, project_root, pathmod=os.path, real_root=None):
        self.pm = pathmod
        self.main = pathmod.normpath(main_blend)
        self.root = pathmod.normpath(project_root)
        self.main_zip = pathmod.basename(self.main)
        # Where the project folder really is, every link resolved
        # (os.path.realpath): where a file really is is judged against it.
        self.real_root = pathmod.normpath(real_root or project_root)

    def _same(self, a, b):
        return self.pm.normcase(a) == self.pm.normcase(b)

    def _below(self, path, root):
        path = self.pm.normpath(path)
        try:
            common = self.pm.commonpath([path, root])
        except ValueError:  # another drive, or relative against absolute
            return None
        if not self._same(common, root):
            return None
        return _components(self.pm.relpath(path, root))

    def inside(self, path):
        """The components of path below the project root, or None."""
        return self._below(path, self.root)

    def outside(self, path):
        """The zip path of a file outside the project: _outside/<root>/<path>."""
        drive, rest = self.pm.splitdrive(self.pm.normpath(path))
        if not drive:
            head = ["root"]
        elif drive[:2] in ("\\\\", "//"):
            head = ["unc"] + _components(drive)
        else:
            head = [drive.rstrip(":")]
        return "/".join([OUTSIDE_DIR] + head + _components(rest))

    def zip_path(self, path):
        """Where the file at the absolute path goes in the zip."""
        if self._same(self.pm.normpath(path), self.main):
            return self.main_zip
        parts = self.inside(path)
        if parts is None:
            return self.outside(path)
        if len(parts) == 1 and parts[0].lower().endswith(".blend"):
            # The farm takes exactly one .blend at the top of a project.
            parts = [LIBRARIES_DIR] + parts
        return "/".join(parts)

    def refusal(self, path, real=None, marks=None):
        """Why a file may not be packed, or None.

        path is the file as the .blend names it; real is where it leads
        with every link on the way resolved (os.path.realpath), None to
        judge the name alone; marks(p) answers what the file system marks p
        as (file_marks), None where it marks nothing.

        A file in the project folder is the artist's own choice, hidden or
        not; outside it, a system file or a hidden one is refused. Where the
        file really is gets the same judgement against where the project
        folder really is, so a link does not carry a secret in, whether it
        sits in the project (tex.png -> ~/.ssh/id_ed25519) or beside it
        (/var/run -> /run). A project folder reached through a link from a
        hidden place keeps its files; other files there stay refused."""
        if self.inside(path) is None:
            found = self._not_project_data(path, marks)
            if found is not None:
                what, where = found
                return "it is " + what % where
        if real is not None and self._below(real, self.real_root) is None:
            found = self._not_project_data(real, marks)
            if found is not None:
                what, _ = found
                return "it is a link to " + what % self.pm.normpath(real)
        return None

    def _not_project_data(self, path, marks):
        """Why a file outside the project is no project data, or None: what
        it is, with a %s for where, and the part of path that shows it."""
        path = self.pm.normpath(path)
        norm = path.replace("\\", "/")
        for system in SYSTEM_DIRS:
            if norm == system or norm.startswith(system + "/"):
                return "a system file (%s), not project data", system
        drive, rest = self.pm.splitdrive(path)
        parts = _components(rest)
        for part in parts:
            if part.startswith("."):
                return "a hidden file or one in a hidden folder (%s), which the packer never sends from outside the project", part
            if part.lower() == APPDATA:
                return "a file of a user's AppData folder (%s), where programs keep their settings and passwords, which the packer never sends from outside the project", part
        if marks is None:
            return None
        # The drive's own root is left out: Windows marks C:\ hidden and
        # system.
        for i in range(len(parts)):
            prefix = self.pm.join(drive + self.pm.sep, *parts[:i + 1])
            found = marks(prefix)
            if "hidden" in found:
                return "a file Windows hides or one in a folder it hides (%s), which the packer never sends from outside the project", prefix
            # A folder's system attribute only tells Explorer to read its
            # desktop.ini (C:\Windows\Fonts has it): the file's own counts.
            if "system" in found and i == len(parts) - 1:
                return "a system file (%s), not project data", prefix
        return None


def file_marks(path, stat_fn=os.stat):
    """What the file system marks path as beyond its name: "hidden" or
    "system", from Windows' file attributes. Nothing where path cannot be
    read or the system has no such attributes."""
    try:
        attributes = getattr(stat_fn(path), "st_file_attributes", 0)
    except (OSError, ValueError):
        return frozenset()
    found = set()
    if attributes & stat.FILE_ATTRIBUTE_HIDDEN:
        found.add("hidden")
    if attributes & stat.FILE_ATTRIBUTE_SYSTEM:
        found.add("system")
    return frozenset(found)


def stored_path(blend_zip, target_zip, trailing_slash=False):
    """The path a .blend at blend_zip stores to reach target_zip: "//…"."""
    start = posixpath.dirname(blend_zip) or "."
    rel = posixpath.relpath(target_zip, start)
    if trailing_slash:
        rel += "/"
    return "//" + rel


def same_stored(a, b):
    """Whether two stored paths name the same file: Blender reads a
    backslash as a separator, and a trailing separator changes nothing."""
    def norm(p):
        return p.replace("\\", "/").rstrip("/")
    return norm(a) == norm(b)


def entry_name_problem(name):
    """Why the farm's zip check would refuse an entry name, or None."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "its path has a control character"
    if "\\" in name:
        return "its path has a backslash, which the farm reads as a folder separator"
    if len(name.encode("utf-8", "surrogateescape")) > MAX_ENTRY_BYTES:
        return "its path in the zip would be longer than %d bytes" % MAX_ENTRY_BYTES
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in name.split("/")):
        return "a name in its path is longer than %d bytes" % MAX_NAME_BYTES
    return None


NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def numbered_siblings(path, listdir=os.listdir):
    """The files of a numbered sequence path belongs to (frame_0001.png →
    frame_0001.png, frame_0002.png, …), path itself included when it exists.
    Any number of digits counts, as Blender reads them."""
    folder, name = os.path.split(path)
    match = NUMBERED.match(name)
    if not match:
        return [path] if os.path.isfile(path) else []
    prefix, suffix = match.group(1), match.group(3)
    pattern = re.compile(re.escape(prefix) + r"\d+" + re.escape(suffix) + "$")
    try:
        names = listdir(folder)
    except OSError:
        return []
    return sorted(os.path.join(folder, n) for n in names if pattern.match(n))


def udim_tile_path(path, tile):
    """The file of one UDIM tile for a path with a <UDIM> or <UVTILE> token."""
    u = (tile - 1001) % 10 + 1
    v = (tile - 1001) // 10 + 1
    return path.replace("<UDIM>", str(tile)).replace("<UVTILE>", "u%d_v%d" % (u, v))


def has_udim_token(path):
    return "<UDIM>" in path or "<UVTILE>" in path


def files_below(folder, limit):
    """Regular files below folder, hidden ones left out, at most limit+1
    (so that going over the limit shows)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            found.append(os.path.join(dirpath, name))
            if len(found) > limit:
                return found
    return found


def size_text(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else ("%.1f %s" % (n, unit))
        n /= 1024.0


class Entries:
    """The files of the zip, by zip path, within the farm's limits."""

    def __init__(self, max_files=MAX_FILES, max_total_bytes=MAX_TOTAL_BYTES):
        self.by_zip = {}
        self.order = []
        self.total = 0
        self.max_files = max_files
        self.max_total_bytes = max_total_bytes

    def add(self, zip_path, source, size, kind, rewritten=False):
        """Adds a file; the same file again is fine, another file on the
        same zip path is an error that says which two."""
        known = self.by_zip.get(zip_path)
        if known is not None:
            if os.path.normcase(known["source"]) == os.path.normcase(source):
                return
            raise PackError(
                "two files would be packed as %s: %s and %s; rename the project's own %s or %s folder, or move one of the files"
                % (zip_path, known["source"], source, OUTSIDE_DIR, LIBRARIES_DIR))
        if len(self.order) >= self.max_files:
            raise PackError(
                "the project uses more than %d files, the most the farm takes in one zip; pack image sequences into videos or render the shot in parts"
                % self.max_files)
        if self.total + size > self.max_total_bytes:
            raise PackError(
                "the project's files add up to more than %s, the most the farm unpacks from one zip"
                % size_text(self.max_total_bytes))
        entry = {"zipPath": zip_path, "source": source, "bytes": size, "type": kind, "rewritten": rewritten}
        self.by_zip[zip_path] = entry
        self.order.append(zip_path)
        self.total += size

    def replace_source(self, zip_path, staged, size):
        """Has a .blend's entry zipped from its rewritten copy."""
        entry = self.by_zip[zip_path]
        entry["staged"] = staged
        self.total += size - entry["bytes"]
        entry["bytes"] = size
        entry["rewritten"] = True


def write_zip(out_path, entries, main_zip):
    """Writes the zip: the .blend to render first, then the rest by path."""
    names = [main_zip] + sorted(n for n in entries.order if n != main_zip)
    with zipfile.ZipFile(out_path, "w", allowZip64=True, strict_timestamps=False) as zf:
        for name in names:
            entry = entries.by_zip[name]
            source = entry.get("staged") or entry["source"]
            method = zipfile.ZIP_STORED
            if os.path.splitext(name)[1].lower() not in STORED_EXTS:
                method = zipfile.ZIP_DEFLATED
            zf.write(source, name, compress_type=method)


# ---------------------------------------------------------------------------
# Inside Blender: what each datablock of the open .blend reads, and how to
# rewrite it.


class Ref:
    """One path a datablock of the open .blend stores.

    shape is "file", "sequence" (numbered frames beside the file), "udim"
    (tiles), "dir" (a folder of cache files), "strip" (a sequencer image
    strip: a folder and file names) or "library". setter writes a new
    stored path into the datablock; None when the path cannot be changed.
    """

    def __init__(self, kind, name, stored, setter, shape="file", tiles=None, names=None, trailing_slash=False):
        self.kind = kind
        self.name = name
        self.stored = stored or ""
        self.setter = setter
        self.shape = shape
        self.tiles = tiles or []
        self.names = names or []
        self.trailing_slash = trailing_slash


def _setattr(obj, attr):
    def setter(value):
        setattr(obj, attr, value)
    return setter


def _image_refs(bpy):
    for image in bpy.data.images:
        if image.library is not None or image.source not in {"FILE", "SEQUENCE", "MOVIE", "TILED"}:
            continue
        if image.packed_file is not None or len(image.packed_files) > 0:
            continue
        shape = "file"
        tiles = None
        if image.source == "SEQUENCE":
            shape = "sequence"
        elif image.source == "TILED":
            if has_udim_token(image.filepath_raw):
                shape = "udim"
                tiles = [tile.number for tile in image.tiles]
            else:
                shape = "sequence"
        # filepath_raw changes the string only: setting filepath reloads.
        yield Ref("image", image.name, image.filepath_raw, _setattr(image, "filepath_raw"), shape, tiles)


def _simple_refs(bpy):
    for sound in bpy.data.sounds:
        if sound.library is None and sound.packed_file is None:
            yield Ref("sound", sound.name, sound.filepath, _setattr(sound, "filepath"))
    for clip in bpy.data.movieclips:
        if clip.library is None:
            shape = "sequence" if clip.source == "SEQUENCE" else "file"
            yield Ref("movieclip", clip.name, clip.filepath, _setattr(clip, "filepath"), shape)
    for font in bpy.data.fonts:
        if font.library is None and font.packed_file is None and font.filepath != "<builtin>":
            yield Ref("font", font.name, font.filepath, _setattr(font, "filepath"))
    for volume in getattr(bpy.data, "volumes", []):
        if volume.library is None and volume.packed_file is None:
            shape = "sequence" if volume.is_sequence else "file"
            yield Ref("volume", volume.name, volume.filepath, _setattr(volume, "filepath"), shape)
    for cache in bpy.data.cache_files:
        if cache.library is None:
            shape = "sequence" if cache.is_sequence else "file"
            yield Ref("cache", cache.name, cache.filepath, _setattr(cache, "filepath"), shape)


def _library_refs(bpy):
    # Blender keeps every library's path relative to the open file, also
    # for libraries linked through another library.
    for library in bpy.data.libraries:
        if library.packed_file is None:
            yield Ref("library", library.name, library.filepath, _setattr(library, "filepath"), "library")


def _node_refs(bpy):
    """IES lights and OSL scripts read files named on their nodes."""
    trees = []
    for collection in (bpy.data.materials, bpy.data.worlds, bpy.data.lights):
        for owner in collection:
            if owner.library is None and getattr(owner, "node_tree", None) is not None:
                trees.append((owner.name, owner.node_tree))
    for group in bpy.data.node_groups:
        if group.library is None:
            trees.append((group.name, group))
    for owner, tree in trees:
        for node in tree.nodes:
            if node.bl_idname in {"ShaderNodeTexIES", "ShaderNodeScript"} and getattr(node, "mode", "") == "EXTERNAL":
                kind = "ies" if node.bl_idname == "ShaderNodeTexIES" else "script"
                yield Ref(kind, "%s/%s" % (owner, node.name), node.filepath, _setattr(node, "filepath"))


def _cache_refs(bpy, blend_path):
    """Baked simulations read folders: point caches, fluid, ocean, node bakes."""
    implicit = []

    def point_cache(label, cache):
        if cache is None:
            return
        if cache.use_external:
            yield Ref("cache", label, cache.filepath, _setattr(cache, "filepath"), "dir", trailing_slash=True)
        elif cache.use_disk_cache and cache.is_baked:
            implicit.append(label)

    for obj in bpy.data.objects:
        if obj.library is not None:
            continue
        for mod in obj.modifiers:
            label = "%s/%s" % (obj.name, mod.name)
            if mod.type == "FLUID" and mod.fluid_type == "DOMAIN":
                domain = mod.domain_settings
                baked = any(getattr(domain, flag, False) for flag in (
                    "has_cache_baked_data", "has_cache_baked_noise", "has_cache_baked_mesh",
                    "has_cache_baked_particles", "has_cache_baked_guides"))
                if domain.cache_type != "REPLAY" and baked:
                    yield Ref("cache", label, domain.cache_directory, _setattr(domain, "cache_directory"), "dir")
            elif mod.type == "OCEAN" and mod.is_cached:
                yield Ref("cache", label, mod.filepath, _setattr(mod, "filepath"), "dir")
            elif mod.type == "NODES" and getattr(mod, "bake_directory", ""):
                yield Ref("cache", label, mod.bake_directory, _setattr(mod, "bake_directory"), "dir")
            elif hasattr(mod, "point_cache"):
                yield from point_cache(label, mod.point_cache)
        for psys in getattr(obj, "particle_systems", []):
            yield from point_cache("%s/%s" % (obj.name, psys.name), psys.point_cache)
    for scene in bpy.data.scenes:
        if scene.library is None and scene.rigidbody_world is not None:
            yield from point_cache("%s/rigidbody" % scene.name, scene.rigidbody_world.point_cache)

    if implicit:
        # Disk caches without a path of their own live in a folder named
        # after the .blend, beside it: it moves with the .blend.
        stem = os.path.splitext(os.path.basename(blend_path))[0]
        yield Ref("cache", ", ".join(implicit[:3]), "//blendcache_" + stem, None, "dir")


def _strip_refs(bpy):
    for scene in bpy.data.scenes:
        if scene.library is not None or scene.sequence_editor is None:
            continue
        editor = scene.sequence_editor
        strips = getattr(editor, "sequences_all", None) or getattr(editor, "strips_all", [])
        for strip in strips:
            label = "%s/%s" % (scene.name, strip.name)
            if strip.type == "MOVIE":
                yield Ref("movie", label, strip.filepath, _setattr(strip, "filepath"))
            elif strip.type == "IMAGE" and len(strip.elements) > 0:
                names = [element.filename for element in strip.elements]
                yield Ref("image", label, strip.directory, _setattr(strip, "directory"), "strip",
                          names=names, trailing_slash=True)


def blend_refs(bpy, blend_path):
    refs = []
    refs.extend(_image_refs(bpy))
    refs.extend(_simple_refs(bpy))
    refs.extend(_library_refs(bpy))
    refs.extend(_node_refs(bpy))
    refs.extend(_cache_refs(bpy, blend_path))
    refs.extend(_strip_refs(bpy))
    return refs


def resolve(bpy, stored):
    """The absolute path Blender reads for a stored path of the open file,
    or None when the path cannot name a file here (a Windows path on Linux,
    a path relative to wherever Blender was started)."""
    path = stored.replace("\\", "/") if os.sep == "/" else stored
    path = bpy.path.abspath(path)
    if not os.path.isabs(path):
        return None
    return os.path.normpath(path)


class Packer:
    """One pack: the .blend files still to open, and what was found."""

    def __init__(self, bpy, job):
        self.bpy = bpy
        self.main = os.path.normpath(os.path.abspath(job["blend"]))
        root = job.get("projectRoot") or os.path.dirname(self.main)
        self.root = os.path.normpath(os.path.abspath(root))
        self.layout = Layout(self.main, self.root, real_root=os.path.realpath(self.root))
        self.real_folders = {}  # folder: its real path (real_path)
        # Windows hides files with an attribute as well as with a dot; other
        # systems' stat() has nothing to add. The answers are kept: the
        # frames of a sequence share every folder.
        self.marks = None
        if os.name == "nt":
            known = {}

            def marks(path):
                if path not in known:
                    known[path] = file_marks(path)
                return known[path]
            self.marks = marks
        self.entries = Entries()
        self.missing = []
        self.refused = []
        self.stage = tempfile.mkdtemp(prefix="renderfarm-pack-")
        # .blend files still to open, each with the zip path of the one
        # that links it.
        self.queue = [(self.main, "")]
        self.seen = set()
        self.blends = []

    def run(self):
        if not os.path.isfile(self.main):
            raise PackError("%s is not a file" % self.main)
        if self.layout.inside(self.main) is None:
            raise PackError("the project folder %s does not hold %s; choose a project folder the .blend is in" % (self.root, self.main))
        while self.queue:
            self.pack_blend(*self.queue.pop(0))

    def pack_blend(self, path, linked_from):
        real = os.path.realpath(path)
        if real in self.seen:
            return
        self.seen.add(real)
        bpy = self.bpy
        blend_zip = self.layout.zip_path(path)
        print(PROGRESS + "reading " + blend_zip, flush=True)
        try:
            bpy.ops.wm.open_mainfile(filepath=path, load_ui=False, use_scripts=False)
        except RuntimeError as err:
            if path == self.main:
                raise PackError("Blender cannot open %s: %s" % (path, err))
            self.missing.append({"blend": linked_from, "type": "library",
                                 "name": os.path.basename(path), "path": path,
                                 "reason": "Blender cannot open it: %s" % err})
            return
        self.entries.add(blend_zip, path, os.stat(path).st_size, "blend")
        version = "%d.%d" % (bpy.data.version[0], bpy.data.version[1])
        changes = 0
        for ref in blend_refs(bpy, path):
            changes += self.pack_ref(ref, blend_zip)
        if changes:
            staged = os.path.join(self.stage, "%d-%s" % (len(self.blends), os.path.basename(path)))
            # copy=True leaves the open file's name alone; relative_remap
            # would re-aim every relative path at the staging folder.
            bpy.ops.wm.save_as_mainfile(filepath=staged, copy=True, relative_remap=False)
            self.entries.replace_source(blend_zip, staged, os.stat(staged).st_size)
        self.blends.append({"zipPath": blend_zip, "source": path, "fileVersion": version, "rewrittenPaths": changes})

    def note_missing(self, ref, blend_zip, resolved, reason):
        self.missing.append({"blend": blend_zip, "type": ref.kind, "name": ref.name, "path": ref.stored,
                             "resolved": resolved or "", "reason": reason})

    def real_path(self, path):
        """Where path leads with every link on the way resolved, as
        os.path.realpath answers. The files of a sequence or a cache share
        their folder, which is resolved once: on a network drive each step
        of a path costs a round trip."""
        if os.path.islink(path):
            return os.path.realpath(path)
        folder, name = os.path.split(path)
        if folder not in self.real_folders:
            self.real_folders[folder] = os.path.realpath(folder)
        return os.path.join(self.real_folders[folder], name)

    def usable(self, ref, blend_zip, path):
        """Whether a file found for ref may go in the zip; notes why not."""
        reason = self.layout.refusal(path, self.real_path(path), self.marks)
        if reason is None:
            try:
                info = os.stat(path)
            except OSError as err:
                reason = "it cannot be read: %s" % err.strerror
            else:
                if not stat.S_ISREG(info.st_mode):
                    reason = "it is not a regular file"
        if reason is None:
            reason = entry_name_problem(self.layout.zip_path(path))
        if reason is not None:
            self.refused.append({"blend": blend_zip, "type": ref.kind, "name": ref.name, "path": path, "reason": reason})
            return False
        return True

    def add_files(self, ref, blend_zip, paths, zip_of=None):
        added = 0
        for path in paths:
            if not self.usable(ref, blend_zip, path):
                continue
            zip_path = zip_of(path) if zip_of else self.layout.zip_path(path)
            self.entries.add(zip_path, path, os.stat(path).st_size, ref.kind)
            added += 1
        return added

    def pack_ref(self, ref, blend_zip):
        """Packs what ref reads and rewrites its path if the zip's layout
        needs it; answers the number of paths rewritten (0 or 1)."""
        if not ref.stored:
            self.note_missing(ref, blend_zip, "", "it has no file path")
            return 0
        resolved = resolve(self.bpy, ref.stored)
        if resolved is None:
            self.note_missing(ref, blend_zip, "", "its path is neither absolute nor relative to the .blend (//…) on this system")
            return 0

        if ref.shape == "library":
            if not os.path.isfile(resolved):
                self.note_missing(ref, blend_zip, resolved, "no such file")
                return 0
            if not self.usable(ref, blend_zip, resolved):
                return 0
            self.queue.append((resolved, blend_zip))
            return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

        if ref.shape == "dir":
            if not os.path.isdir(resolved):
                self.note_missing(ref, blend_zip, resolved, "no such folder")
                return 0
            files = files_below(resolved, MAX_FILES)
            if len(files) > MAX_FILES:
                raise PackError("the cache folder %s holds more than %d files, the most the farm takes in one zip" % (resolved, MAX_FILES))
            if ref.setter is None:
                # A folder named after the .blend, beside it: it goes beside
                # the .blend's place in the zip, wherever that is.
                base = posixpath.join(posixpath.dirname(blend_zip), os.path.basename(resolved))

                def zip_of(path):
                    rel = os.path.relpath(path, resolved)
                    return posixpath.join(base, *_components(rel))
                self.add_files(ref, blend_zip, files, zip_of)
                return 0
            self.add_files(ref, blend_zip, files)
            return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

        if ref.shape == "strip":
            files = []
            for name in ref.names:
                path = os.path.join(resolved, name)
                if os.path.isfile(path):
                    files.append(path)
                else:
                    self.note_missing(ref, blend_zip, path, "no such file")
            if self.add_files(ref, blend_zip, files) == 0:
                return 0
            return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

        if ref.shape == "udim":
            files = []
            for tile in ref.tiles:
                path = udim_tile_path(resolved, tile)
                if os.path.isfile(path):
                    files.append(path)
                else:
                    self.note_missing(ref, blend_zip, path, "tile %d: no such file" % tile)
            if self.add_files(ref, blend_zip, files) == 0:
                return 0
            return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

        if ref.shape == "sequence":
            files = numbered_siblings(resolved)
            if not files:
                self.note_missing(ref, blend_zip, resolved, "no file of the sequence")
                return 0
            if self.add_files(ref, blend_zip, files) == 0:
                return 0
            return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

        if not os.path.isfile(resolved):
            self.note_missing(ref, blend_zip, resolved, "no such file")
            return 0
        if self.add_files(ref, blend_zip, [resolved]) == 0:
            return 0
        return self.rewrite(ref, blend_zip, self.layout.zip_path(resolved))

    def rewrite(self, ref, blend_zip, target_zip):
        new = stored_path(blend_zip, target_zip, ref.trailing_slash)
        if same_stored(ref.stored, new) or ref.setter is None:
            return 0
        ref.setter(new)
        return 1

    def report(self):
        files = []
        for name in self.entries.order:
            entry = self.entries.by_zip[name]
            files.append({"zipPath": name, "source": entry["source"],
                          "bytes": entry["bytes"], "type": entry["type"], "rewritten": entry["rewritten"]})
        return {
            "blenderVersion": self.bpy.app.version_string,
            "blend": self.layout.main_zip,
            "projectRoot": self.root,
            "files": files,
            "blends": self.blends,
            "missing": self.missing,
            "refused": self.refused,
            "totalBytes": self.entries.total,
        }


def write_report(path, report):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(report, f)


def pack(job, bpy):
    """Packs job["blend"] into job["zip"] and answers the report."""
    packer = Packer(bpy, job)
    try:
        packer.run()
        print(PROGRESS + "zipping %d files, %s" % (len(packer.entries.order), size_text(packer.entries.total)), flush=True)
        write_zip(job["zip"], packer.entries, packer.layout.main_zip)
    finally:
        shutil.rmtree(packer.stage, ignore_errors=True)
    return packer.report()


def main(argv):
    args = argv[argv.index("--") + 1:] if "--" in argv else []
    if len(args) != 1:
        print("Error: packer.py expects one argument after --: the job JSON path", file=sys.stderr, flush=True)
        sys.exit(2)
    with open(args[0], encoding="utf-8") as f:
        job = json.load(f)
    import bpy
    try:
        report = pack(job, bpy)
    except PackError as err:
        write_report(job["report"], {"error": str(err)})
        print("Error: " + PROGRESS + str(err), file=sys.stderr, flush=True)
        sys.exit(1)
    write_report(job["report"], report)
    print(PROGRESS + "done", flush=True)


if __name__ == "__main__":
    main(sys.argv)
