# Every file a scene writes for a frame, for renderfarm: its views, its
# compositor File Output nodes, its passes. inspect.py describes them for
# the job's analysis; session.py's configure command reports them as the
# chunk's output layout, and its render command sends every file into the
# chunk's output directory, under names the farm chose.
#
# The names Blender writes on the farm (the worker computes the same ones
# from the layout; see internal/blender/outputs.go):
#   OUT/frame_0001[S].EXT              the frame, one per view when the views
#                                      are written apart (S: the view's suffix)
#   OUT/nodes/I/K/f_0001[S].EXT        slot K (of those fed) of File Output node I
#   OUT/nodes/I/f_0001[S].exr          File Output node I when it is multilayer
#   OUT/preview/frame_0001[S0].jpg     the preview proxy of an OpenEXR frame,
#                                      through the scene's view transform
#   OUT/unlisted/N/...                 every other File Output node (muted,
#                                      fed by nothing, in a muted group or in
#                                      another scene's compositor): written in
#                                      the run, never taken
# The suffix S of the K-th view rendered is "_L" for the view named left,
# "_R" for right, "_V<K>" otherwise: the farm's, not the file's, since a
# suffix is part of a file name Blender makes.
#
# The file is untrusted: names, paths and suffixes from it are reported as
# text and never joined into a path here.

import bpy

# Bound the answer for hostile files with huge numbers of nodes or layers.
MAX_NODES = 256
MAX_SLOTS = 256
MAX_VIEWS = 64
MAX_VIEW_LAYERS = 64
MAX_PASSES = 512

# The formats whose frames ffmpeg cannot turn into a preview as the scene
# shows them: linear light, for the view transform to make viewable.
PROXY_FORMATS = {"OPEN_EXR", "OPEN_EXR_MULTILAYER"}


def codec_of(image_settings):
    if image_settings.file_format == "JPEG2000":
        return getattr(image_settings, "jpeg2k_codec", "JP2")
    return ""


def views_format_of(image_settings):
    return getattr(image_settings, "views_format", "INDIVIDUAL")


def active_views(scene):
    """The views Blender renders, in its order; [] for a scene of one view."""
    render = scene.render
    if not render.use_multiview:
        return []
    views = []
    for view in render.views:
        if not view.use:
            continue
        # Stereo 3D renders the left and right views only.
        if render.views_format == "STEREO_3D" and view.name not in ("left", "right"):
            continue
        views.append(view)
        if len(views) >= MAX_VIEWS:
            break
    return views


def disk_suffix(index, view):
    if view.name == "left":
        return "_L"
    if view.name == "right":
        return "_R"
    return "_V%d" % index


def multiview_info(scene):
    views = active_views(scene)
    if not views:
        return None
    return {
        "mode": scene.render.views_format,
        "imageViews": views_format_of(scene.render.image_settings),
        "views": [{"name": v.name, "suffix": v.file_suffix} for v in views],
    }


def compositing_runs(scene):
    return bool(scene.use_nodes and scene.render.use_compositing and scene.node_tree is not None)


# Bound the walk into node groups (a group in a group in a group…).
MAX_GROUP_DEPTH = 16


def listed_nodes(scene):
    """The File Output nodes that write files when the scene renders, with
    the indexes of their inputs that are fed: those of the scene's
    compositor, and those inside the node groups it uses (in groups inside
    groups too), which Blender runs as well (3.4 and 4.3: checked). A group
    used twice writes its nodes' files twice under the same names, the last
    one kept, so each node is listed once. A muted group runs nothing
    inside it. A group linked from a library is read-only, so its nodes
    cannot be sent into the run's directory: they are not listed."""
    if not compositing_runs(scene):
        return []
    listed = []
    walked = set()

    def walk(tree, depth):
        walked.add(tree.as_pointer())
        for node in tree.nodes:
            if len(listed) >= MAX_NODES:
                return
            if node.mute:
                continue
            if node.bl_idname == "CompositorNodeGroup":
                group = node.node_tree
                if group is not None and group.as_pointer() not in walked and depth < MAX_GROUP_DEPTH:
                    walk(group, depth + 1)
                continue
            if node.bl_idname != "CompositorNodeOutputFile":
                continue
            if tree.library is not None:
                # A linked library's group cannot be redirected (its nodes
                # are read-only): it writes in the run, never taken.
                continue
            fed = [i for i, socket in enumerate(node.inputs) if socket.is_linked][:MAX_SLOTS]
            if fed:
                listed.append((node, fed))

    walk(scene.node_tree, 0)
    return listed


def node_name(scene, node):
    """A File Output node's name for the farm: its own in the scene's
    compositor, its group's and its own inside a group ("Group/Node"), which
    no two nodes share."""
    tree = node.id_data
    if tree == scene.node_tree:
        return node.name
    return "%s/%s" % (tree.name, node.name)


def describe_node(scene, node, fed):
    node_format = node.format
    multilayer = node_format.file_format == "OPEN_EXR_MULTILAYER"
    slots = []
    for i in fed:
        if multilayer:
            path, fmt = node.layer_slots[i].name, node_format
        else:
            slot = node.file_slots[i]
            path = slot.path
            fmt = node_format if slot.use_node_format else slot.format
        slots.append({
            "path": path,
            "format": fmt.file_format,
            "codec": codec_of(fmt),
            "imageViews": views_format_of(fmt),
        })
    return {
        "name": node_name(scene, node),
        "format": node_format.file_format,
        "codec": codec_of(node_format),
        "imageViews": views_format_of(node_format),
        "basePath": node.base_path,
        "slots": slots,
    }


def file_output_nodes(scene):
    return [describe_node(scene, node, fed) for node, fed in listed_nodes(scene)]


def render_passes(scene):
    """The passes of each view layer the scene renders, as Blender names
    them in a multilayer OpenEXR (Combined, Depth, AO, an AOV's name…).

    Blender's compositor knows them: a Render Layers node shows an output
    for each. A scene of the farm's own holds one for the time of the
    question and is removed; the file's scenes are not touched.
    """
    layers = [layer for layer in scene.view_layers if layer.use][:MAX_VIEW_LAYERS]
    if not layers:
        return []
    probe = bpy.data.scenes.new(".renderfarm-passes")
    try:
        probe.use_nodes = True
        node = probe.node_tree.nodes.new("CompositorNodeRLayers")
        node.scene = scene
        answer = []
        for layer in layers:
            node.layer = layer.name
            passes = []
            for output in node.outputs:
                # Image and Alpha are the Combined pass's colour and alpha.
                if not output.enabled or output.name == "Alpha":
                    continue
                passes.append("Combined" if output.name == "Image" else output.name)
            answer.append({"viewLayer": layer.name, "passes": passes[:MAX_PASSES]})
        return answer
    finally:
        bpy.data.scenes.remove(probe)


def layout(scene, user_output_path, user_use_extension):
    """What the session writes for each frame of scene, for the worker."""
    image = scene.render.image_settings
    return {
        "format": image.file_format,
        "codec": codec_of(image),
        "outputPath": user_output_path,
        "useFileExtension": user_use_extension,
        "multiview": multiview_info(scene),
        "fileOutputNodes": file_output_nodes(scene),
        "proxy": image.file_format in PROXY_FORMATS,
    }


def use_farm_suffixes(scene):
    for index, view in enumerate(active_views(scene)):
        view.file_suffix = disk_suffix(index, view)


def compositor_trees():
    """Every compositor node tree of the file: the scenes' and the groups'."""
    for scene in bpy.data.scenes:
        if scene.node_tree is not None:
            yield scene.node_tree
    for group in bpy.data.node_groups:
        if group.bl_idname == "CompositorNodeTree":
            yield group


def redirect(scene, output_dir):
    """Send every File Output node's files into output_dir."""
    listed = {}
    for index, (node, fed) in enumerate(listed_nodes(scene)):
        listed[node.as_pointer()] = (index, fed)
    unlisted = 0
    for tree in compositor_trees():
        for node in tree.nodes:
            if node.bl_idname != "CompositorNodeOutputFile":
                continue
            entry = listed.get(node.as_pointer())
            if entry is None:
                try:
                    node.base_path = "%s/unlisted/%d/" % (output_dir, unlisted)
                    for i, slot in enumerate(node.file_slots):
                        slot.path = "%d/f_" % i
                except (AttributeError, TypeError, RuntimeError):
                    # A node of a linked library is read-only; the sandbox
                    # keeps it from writing anywhere but the run.
                    pass
                unlisted += 1
                continue
            index, fed = entry
            if node.format.file_format == "OPEN_EXR_MULTILAYER":
                node.base_path = "%s/nodes/%d/f_" % (output_dir, index)
                continue
            node.base_path = "%s/nodes/%d" % (output_dir, index)
            position = {slot_index: k for k, slot_index in enumerate(fed)}
            for i, slot in enumerate(node.file_slots):
                if i in position:
                    slot.path = "%d/f_" % position[i]
                else:
                    slot.path = "unfed/%d/f_" % i


def render_result():
    """The image holding the last render (by its type: a file may name an
    image of its own "Render Result")."""
    for image in bpy.data.images:
        if image.type == "RENDER_RESULT":
            return image
    return None


def save_proxy(scene, image, path):
    """Save the render result as a JPEG through the scene's view transform,
    for the preview video only (and the job's preview image). Blender
    writes one per view (path with the view's suffix) for a multiview
    scene. A JPEG of quality 90 costs about 0.15 s and 90 kB at 1920x1080
    on the reference machine, where a PNG took 0.2 s and 6 MB uncompressed,
    0.4 s and 1 MB compressed; the preview is H.264 anyway."""
    if image is None:
        raise RuntimeError("no render result")
    settings = scene.render.image_settings
    kept = {name: getattr(settings, name) for name in ("file_format", "color_mode", "color_depth", "quality")}
    kept_views = views_format_of(settings)
    try:
        settings.file_format = "JPEG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        settings.quality = 90
        if hasattr(settings, "views_format"):
            settings.views_format = "INDIVIDUAL"
        try:
            image.save_render(path, scene=scene)
        except RuntimeError:
            # A multiview render result is saved view by view, and Blender
            # 3.4 and 4.3 then report a failure for the name without a
            # suffix; the worker takes the view's file if it is there.
            if not scene.render.use_multiview:
                raise
    finally:
        for name, value in kept.items():
            try:
                setattr(settings, name, value)
            except (TypeError, ValueError):
                pass
        if hasattr(settings, "views_format"):
            settings.views_format = kept_views
