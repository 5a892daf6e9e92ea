# Every Blender of renderfarm runs this script: it loads the job's .blend
# with the file's scripts off and then does what the worker asks, one
# command after another, until stdin closes. A warm session renders chunk
# after chunk of a job without Blender starting and loading the file again;
# a one-off inspection or render is a session given one command.
#
# Run as: blender -b --factory-startup -noaudio [-t N] --python-exit-code 1
#             --disable-autoexec --python session.py -- SESSION.json
#
# Nothing of the job or the file reaches Blender's command line: it holds
# the farm's own paths and numbers only, so no scene or file name can pass
# for one of Blender's flags. SESSION.json, which the worker writes into the
# run's own directory before Blender starts, names the .blend; everything
# else comes in the commands on stdin, one JSON object a line:
#   {"op": "inspect", "nonce": N, "out": OUT.json}    inspect.py's report
#   {"op": "configure", "nonce": N, "out": OUT.json, "request": {"scene": S, "outputPath": P, "settings": {...}}}
#       chooses the scene and applies render_settings.py; writes the
#       layout of what a frame makes (outputs.py) to OUT.json and prints
#       "renderfarm-session N output FORMAT CODEC", the format Blender writes
#   {"op": "render", "nonce": N, "frames": [1, 2], "outputDir": DIR}
#       sends every file of the frames into DIR (outputs.py), prints
#       "renderfarm-session N frame F" as frame F begins, and
#       "renderfarm-session N saved F SECONDS" once its files are written
#   {"op": "merge", "nonce": N, "frame": F, "mode": M, "parts": [P, ...], "overscan": O, "outputDir": DIR}
#       makes frame F of the split frame's part files P (split.py) and
#       writes it into DIR as render writes a frame, with the same lines;
#       the scene is the merge's after it, so a session merges once
#   {"op": "reload", "nonce": N}
#       loads the job's .blend again, as at the start: whatever the
#       commands before changed (a part's samples or border, a merge's
#       compositor) is gone, and the next configure starts from the file
# Each ends with the line "renderfarm-session N ok" (or "... N failed"),
# written after Blender's own output for it has been flushed, so the worker
# reads every line a command caused before its end. The nonce is new for
# every command and comes from the worker, never from the file: nothing the
# file makes Blender print can pass for one of these lines. A failed command
# leaves its reason in "Error: ..." lines before the end line.

import ctypes
import importlib.util
import json
import os
import sys
import time
import traceback

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))

# Blender's C code writes to stdout through C's stdio, whose buffer is not
# Python's: both are flushed before each line of ours.
_libc = ctypes.CDLL(None)

# The scene the session renders: the file's active one until a configure
# command names another.
SCENE = None
# Whether each frame also gets a JPEG proxy for the preview (outputs.py).
PROXY = False
# The .blend the session loaded, read once from SESSION.json at the start:
# a reload opens this path, never what the run directory holds by then.
BLEND = None


def load(name):
    # By path, under a name of ours: "inspect" would find Python's own module.
    spec = importlib.util.spec_from_file_location("renderfarm_" + name, os.path.join(HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def flush():
    sys.stdout.flush()
    sys.stderr.flush()
    _libc.fflush(None)


def error(message):
    print("Error: " + message, file=sys.stderr, flush=True)


def signal(command, *words):
    flush()
    print("renderfarm-session %s %s" % (command["nonce"], " ".join(str(w) for w in words)), flush=True)


def open_blend():
    """Load the job's .blend, its scripts, drivers and handlers kept off."""
    global BLEND
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        error("session.py expects one argument after --: the session JSON path")
        sys.exit(1)
    with open(argv[0], encoding="utf-8") as f:
        session = json.load(f)
    BLEND = session["blendPath"]
    try:
        bpy.ops.wm.open_mainfile(filepath=BLEND, load_ui=False, use_scripts=False)
    except RuntimeError:
        # Blender has printed why ("Error: ... Failed to read blend file").
        flush()
        sys.exit(1)


def reload(command):
    global SCENE, PROXY
    SCENE, PROXY = None, False
    # A file that loaded at the start loads again; if it does not now, the
    # RuntimeError fails the command, and the worker ends the session.
    bpy.ops.wm.open_mainfile(filepath=BLEND, load_ui=False, use_scripts=False)


def inspect(command):
    load("inspect").write_inspection(command["out"])


def configure(command):
    global SCENE, PROXY
    request = command["request"]
    wanted = request.get("scene") or ""
    scene = bpy.context.scene
    if wanted:
        scene = bpy.data.scenes.get(wanted)
        if scene is None:
            error("scene %r not found; the file has: %s" % (wanted, ", ".join(s.name for s in bpy.data.scenes)))
            return False
        if bpy.context.window is not None:
            bpy.context.window.scene = scene
    # The scene's own output path names the frames for download
    # (outputNaming "scene"): kept before the settings replace it.
    user_output_path = scene.render.filepath
    user_use_extension = bool(scene.render.use_file_extension)
    load("render_settings").apply(scene, request)
    part = (request.get("settings") or {}).get("part")
    if part:
        load("split").apply_part(scene, part)
    outputs = load("outputs")
    # The layout keeps the views' own suffixes, for the download names;
    # then the farm's replace them, for the names on disk.
    layout = outputs.layout(scene, user_output_path, user_use_extension)
    if part:
        # A part is no frame anyone sees: it gets no preview.
        layout["proxy"] = False
    outputs.use_farm_suffixes(scene)
    with open(command["out"], "w", encoding="utf-8") as f:
        json.dump(layout, f)
    SCENE, PROXY = scene, layout["proxy"]
    image = scene.render.image_settings
    signal(command, "output", image.file_format, getattr(image, "jpeg2k_codec", "JP2"))


def render(command):
    scene = SCENE or bpy.context.scene
    outputs = load("outputs")
    out = command["outputDir"]
    outputs.redirect(scene, out)
    if PROXY:
        os.makedirs(os.path.join(out, "preview"), exist_ok=True)
    for frame in command["frames"]:
        signal(command, "frame", frame)
        # frame_set evaluates the frame as the render will see it, switching
        # cameras bound to markers, as Blender's -f does.
        scene.frame_set(frame)
        if not render_frame(command, scene, outputs, out, frame, time.monotonic()):
            return False
    return True


def render_frame(command, scene, outputs, out, frame, start):
    # The farm looks for exactly this name (Blender adds the view's
    # suffix and the extension).
    scene.render.filepath = os.path.join(out, "frame_%04d" % frame)
    result = bpy.ops.render.render(write_still=True, scene=scene.name)
    if "FINISHED" not in result:
        error("Blender did not render frame %d (%s)" % (frame, ", ".join(sorted(result))))
        return False
    if PROXY:
        # The proxy is for the preview only: a frame without one is
        # still a frame.
        try:
            outputs.save_proxy(scene, outputs.render_result(), os.path.join(out, "preview", "frame_%04d.jpg" % frame))
        except Exception as err:
            print("renderfarm: no preview proxy for frame %d: %s" % (frame, err), flush=True)
    signal(command, "saved", frame, "%.3f" % (time.monotonic() - start))
    return True


def merge(command):
    scene = SCENE or bpy.context.scene
    outputs = load("outputs")
    out = command["outputDir"]
    frame = command["frame"]
    if PROXY:
        os.makedirs(os.path.join(out, "preview"), exist_ok=True)
    signal(command, "frame", frame)
    scene.frame_set(frame)
    start = time.monotonic()
    load("split").merge(scene, command)
    return render_frame(command, scene, outputs, out, frame, start)


OPS = {"inspect": inspect, "configure": configure, "render": render, "merge": merge, "reload": reload}


def serve():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        command = json.loads(line)
        ok = False
        try:
            ok = OPS[command["op"]](command) is not False
        except SystemExit:
            # The scripts' fail() printed the reason and asked to exit.
            pass
        except Exception as err:
            traceback.print_exc()
            if not str(err).startswith("Error:"):
                error(str(err))
        signal(command, "ok" if ok else "failed")


open_blend()
serve()
