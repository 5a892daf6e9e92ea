# Makes the project the packer's tests pack, the way an artist's looks:
#
#   ROOT/project/assets/prop.blend    a collection "Prop": a plane whose
#                                     material reads //tex/red.png (or, with
#                                     "nested", a material linked from
#                                     materials/red.blend reading //../tex/red.png);
#                                     the test may put it elsewhere
#   ROOT/project/shots/shot.blend     links "Prop" from ../assets/prop.blend,
#                                     reads ROOT/outside/green.png by its
#                                     absolute path and the image sequence
#                                     //seq/blue_0001.png, … by a relative one
#
# The shot renders 96x32 with Cycles, frames 1-2, an orthographic camera
# looking down at three emissive planes: the library's at x=16 px, the
# outside image's at x=48 px, the sequence's at x=80 px, so a test can tell
# from three pixels that every file was found. The PNG files are written by
# the Go test beforehand.
#
# Run as: blender -b --factory-startup --python-exit-code 1 --python make_shot.py -- SPEC.json

import json
import os
import sys

import bpy

spec_path = sys.argv[sys.argv.index("--") + 1]
with open(spec_path, encoding="utf-8") as f:
    spec = json.load(f)


def emission_material(name, image, sequence_frames=0):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    tree = mat.node_tree
    tree.nodes.clear()
    tex = tree.nodes.new("ShaderNodeTexImage")
    tex.image = image
    tex.interpolation = "Closest"
    if sequence_frames:
        tex.image_user.frame_duration = sequence_frames
        tex.image_user.frame_start = 1
        tex.image_user.use_auto_refresh = True
    emission = tree.nodes.new("ShaderNodeEmission")
    out = tree.nodes.new("ShaderNodeOutputMaterial")
    tree.links.new(tex.outputs["Color"], emission.inputs["Color"])
    tree.links.new(emission.outputs["Emission"], out.inputs["Surface"])
    return mat


def plane(name, x, mat, collection):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-1, -1, 0), (1, -1, 0), (1, 1, 0), (-1, 1, 0)], [], [(0, 1, 2, 3)])
    mesh.uv_layers.new()
    mesh.materials.append(mat)
    obj = bpy.data.objects.new(name, mesh)
    obj.location.x = x
    collection.objects.link(obj)
    return obj


def image(path, stored, source="FILE"):
    """An image datablock reading path, storing the path as stored."""
    img = bpy.data.images.load(path, check_existing=False)
    img.source = source
    img.filepath = stored
    return img


def new_file(path):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # Saved once first, so that paths can be made relative to it.
    bpy.ops.wm.save_as_mainfile(filepath=path)


def save(path):
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=True)


# The library, and with "nested" the library it takes its material from.
red_material = None
if spec.get("nested"):
    materials = spec["materialLibrary"]
    new_file(materials)
    mat = emission_material("Red", image(spec["libraryTexture"], bpy.path.relpath(spec["libraryTexture"])))
    mat.use_fake_user = True
    save(materials)

new_file(spec["library"])
if spec.get("nested"):
    with bpy.data.libraries.load(spec["materialLibrary"], link=True, relative=True) as (src, dst):
        dst.materials = ["Red"]
    red_material = dst.materials[0]
else:
    red_material = emission_material("Red", image(spec["libraryTexture"], bpy.path.relpath(spec["libraryTexture"])))
prop = bpy.data.collections.new("Prop")
bpy.context.scene.collection.children.link(prop)
plane("PropPlane", 0, red_material, prop)
save(spec["library"])

# The shot.
new_file(spec["shot"])
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.device = "CPU"
scene.cycles.samples = 1
scene.cycles.use_denoising = False
scene.render.resolution_x = 96
scene.render.resolution_y = 32
scene.render.resolution_percentage = 100
scene.view_settings.view_transform = "Standard"
scene.frame_start, scene.frame_end = 1, len(spec["sequence"])
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_mode = "RGB"
scene.render.filepath = "//render/shot_"
scene.world = bpy.data.worlds.new("World")
camera_data = bpy.data.cameras.new("Camera")
camera_data.type = "ORTHO"
camera_data.ortho_scale = 6
camera = bpy.data.objects.new("Camera", camera_data)
camera.location = (0, 0, 5)
scene.collection.objects.link(camera)
scene.camera = camera

with bpy.data.libraries.load(spec["library"], link=True, relative=True) as (src, dst):
    dst.collections = ["Prop"]
instance = bpy.data.objects.new("PropInstance", None)
instance.instance_type = "COLLECTION"
instance.instance_collection = dst.collections[0]
instance.location.x = -2
scene.collection.objects.link(instance)

plane("Outside", 0, emission_material("Green", image(spec["outside"], spec["outside"])), scene.collection)
sequence = image(spec["sequence"][0], "//seq/" + os.path.basename(spec["sequence"][0]), "SEQUENCE")
plane("Sequence", 2, emission_material("Sequence", sequence, len(spec["sequence"])), scene.collection)

# Out of the camera's view: files the shot names that must be handled but
# do not change the picture.
for i, extra in enumerate(spec.get("offCamera") or []):
    img = bpy.data.images.new("extra%d" % i, 4, 4)
    img.source = "FILE"
    img.filepath = extra
    plane("OffCamera%d" % i, 20 + 3 * i, emission_material("Extra%d" % i, img), scene.collection)

save(spec["shot"])
print("make_shot: done", flush=True)
