# Count the GPU devices Cycles sees on this machine, by type, for a render
# node started with --gpu auto. Runs in a Blender of its own with no .blend
# loaded; its one argument is a JSON file: {"types": [...], "output": PATH}.
# It writes {"CUDA": 2, ...} to PATH, the types it finds none of left out.

import json
import sys

import bpy

request_path = sys.argv[sys.argv.index("--") + 1]
with open(request_path) as f:
    request = json.load(f)

found = {}
addon = bpy.context.preferences.addons.get("cycles")
if addon is not None:
    prefs = addon.preferences
    for device_type in request["types"]:
        try:
            prefs.compute_device_type = device_type
        except TypeError:
            continue  # this Blender was built without it
        prefs.get_devices()
        count = sum(1 for device in prefs.devices if device.type == device_type)
        if count:
            found[device_type] = count

with open(request["output"], "w") as f:
    json.dump(found, f)
