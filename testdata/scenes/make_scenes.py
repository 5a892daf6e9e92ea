"""Generate the tiny test scenes used by renderfarm's tests.

Run with the Blender the tests run against:

    blender -b --factory-startup --python testdata/scenes/make_scenes.py -- OUTDIR

Every scene is 64x36 with a handful of samples so that end-to-end tests render
in seconds on a CPU.
"""

import math
import os
import shutil
import sys
import zipfile

import bpy


def out_dir():
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    if len(argv) != 1:
        raise SystemExit("usage: blender -b --factory-startup --python make_scenes.py -- OUTDIR")
    return os.path.abspath(argv[0])


def fresh_scene():
    """Start from Blender's factory scene: a cube, a camera and a light."""
    bpy.ops.wm.read_factory_settings(use_empty=False)
    scene = bpy.context.scene
    scene.render.resolution_x = 64
    scene.render.resolution_y = 36
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    return scene


def use_cycles(scene, frames=24):
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 4
    scene.cycles.preview_samples = 4
    # The default for new scenes; kept explicit because the farm's handling of
    # a Blender built without OpenImageDenoise depends on it.
    scene.cycles.use_denoising = True
    scene.frame_start = 1
    scene.frame_end = frames
    spin_cube(scene)


def spin_cube(scene):
    """Rotate the cube over the frame range so frames differ."""
    cube = bpy.data.objects["Cube"]
    cube.rotation_euler = (0.0, 0.0, 0.0)
    cube.keyframe_insert(data_path="rotation_euler", frame=scene.frame_start)
    cube.rotation_euler = (0.0, 0.0, math.radians(90.0))
    cube.keyframe_insert(data_path="rotation_euler", frame=max(scene.frame_end, scene.frame_start + 1))


def texture_cube(image):
    """Give the cube a material that samples image through an Image Texture node."""
    mat = bpy.data.materials.new("Textured")
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = image
    bsdf = nodes["Principled BSDF"]
    mat.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    cube = bpy.data.objects["Cube"]
    cube.data.materials.clear()
    cube.data.materials.append(mat)


def file_image(name, stored_path):
    """An image datablock that points at stored_path without reading it."""
    image = bpy.data.images.new(name, 8, 8)
    image.source = "FILE"
    image.filepath = stored_path
    return image


def save(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=path, compress=True, relative_remap=False)


def make_cube(out):
    scene = fresh_scene()
    use_cycles(scene)
    save(os.path.join(out, "cube.blend"))


def make_missing_texture(out):
    scene = fresh_scene()
    use_cycles(scene)
    texture_cube(file_image("missing.png", "//textures/missing.png"))
    save(os.path.join(out, "missing_texture.blend"))


def make_project(out):
    project = os.path.join(out, "project")
    if os.path.isdir(project):
        shutil.rmtree(project)
    textures = os.path.join(project, "textures")
    os.makedirs(textures)

    checker = bpy.data.images.new("checker-src", 16, 16)
    pixels = []
    for y in range(16):
        for x in range(16):
            v = 1.0 if (x // 4 + y // 4) % 2 else 0.1
            pixels += [v, v, v, 1.0]
    checker.pixels = pixels
    checker.filepath_raw = os.path.join(textures, "checker.png")
    checker.file_format = "PNG"
    checker.save()

    scene = fresh_scene()
    use_cycles(scene)
    texture_cube(file_image("checker.png", "//textures/checker.png"))
    save(os.path.join(project, "scene.blend"))

    archive = os.path.join(out, "project.zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("scene.blend", "textures/checker.png"):
            # A fixed timestamp keeps regenerated archives byte-stable.
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with open(os.path.join(project, name), "rb") as f:
                zf.writestr(info, f.read())


def make_nocamera(out):
    scene = fresh_scene()
    use_cycles(scene, frames=2)
    camera = bpy.data.objects["Camera"]
    bpy.data.objects.remove(camera, do_unlink=True)
    scene.camera = None
    save(os.path.join(out, "nocamera.blend"))


def make_eevee(out):
    scene = fresh_scene()
    scene.render.engine = "BLENDER_EEVEE"
    scene.eevee.taa_render_samples = 4
    scene.frame_start = 1
    scene.frame_end = 2
    spin_cube(scene)
    save(os.path.join(out, "eevee.blend"))


def main():
    out = out_dir()
    os.makedirs(out, exist_ok=True)
    make_cube(out)
    make_missing_texture(out)
    make_project(out)
    make_nocamera(out)
    make_eevee(out)
    print("renderfarm: scenes written to", out)


main()
