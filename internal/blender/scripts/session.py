# A warm Blender session for renderfarm: Blender stays running with one
# .blend loaded and does what the worker asks, one command after another,
# so that chunk after chunk of a job renders without Blender starting and
# loading the file again each time.
#
# Run as: blender -b --factory-startup --disable-autoexec FILE [-S SCENE] [-t N]
#             --python session.py
#
# Commands come on stdin, one JSON object a line:
#   {"op": "inspect", "nonce": N, "out": OUT.json}      inspect.py's report
#   {"op": "configure", "nonce": N, "request": REQ.json} render_settings.py
#   {"op": "render", "nonce": N, "frames": [1, 2], "outputDir": DIR}
# Each ends with the line "renderfarm-session N ok" (or "... N failed") on
# stdout, written after Blender's own output for it has been flushed, so the
# worker reads every line a command caused before its end. The nonce is new
# for every command and comes from the worker, never from the file: nothing
# the file makes Blender print can pass for the end of a command. A failed
# command leaves its reason in "Error: ..." lines before the end line, as a
# failed render process would. The session ends when stdin closes.

import ctypes
import importlib.util
import json
import os
import sys
import traceback

import bpy

HERE = os.path.dirname(os.path.abspath(__file__))

# Blender's C code writes to stdout through C's stdio, whose buffer is not
# Python's: both are flushed before a command's end line.
_libc = ctypes.CDLL(None)


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


def inspect(command):
    load("inspect").write_inspection(command["out"])


def configure(command):
    with open(command["request"], encoding="utf-8") as f:
        request = json.load(f)
    load("render_settings").apply(request)


def render(command):
    scene = bpy.context.scene
    for frame in command["frames"]:
        # frame_set evaluates the frame as the render will see it, switching
        # cameras bound to markers, as Blender's -f does.
        scene.frame_set(frame)
        # Blender's "####" would be four digits or more, as here: the same
        # names as a render process gives.
        scene.render.filepath = os.path.join(command["outputDir"], "frame_%04d" % frame)
        result = bpy.ops.render.render(write_still=True)
        if "FINISHED" not in result:
            error("Blender did not render frame %d (%s)" % (frame, ", ".join(sorted(result))))
            return False
    return True


OPS = {"inspect": inspect, "configure": configure, "render": render}


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
        flush()
        print("renderfarm-session %s %s" % (command["nonce"], "ok" if ok else "failed"), flush=True)


serve()
