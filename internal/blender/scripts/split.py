# One still frame in parts, for renderfarm: a part renders a share of the
# frame, and the merge makes the frame of all the parts. See
# docs/split-frame.md and internal/blender/split.go.
#
# session.py's configure command calls apply_part(scene, part) after
# render_settings.apply for a part; its merge command calls merge(scene,
# command), which checks the scene as a part does. The part files the merge reads
# are the paths in the command, which the worker computed from the names
# it gave the parts (part_000.exr, ...) in a directory it made; nothing a
# part's Blender printed or wrote beside them is read. Scene, view layer
# and pass names are the file's, so they are data: never a path, never
# printed as anything but a quoted name.

import array
import math
import os
import sys
import tempfile

import bpy

SAMPLES = "samples"
TILES = "tiles"

# The name of the images the merge makes. Blender gives a new data-block
# a name no other has (adding ".001" if the file has one so named), so
# ours never replaces one of the file's.
SCRATCH = ".renderfarm-merge"


def fail(message):
    print("Error: " + message, file=sys.stderr, flush=True)
    sys.stdout.flush()
    sys.exit(1)


def note(message):
    print("renderfarm: " + message, flush=True)


def frame_size(scene):
    """The frame's size in pixels, as Blender computes it (integer
    division of the resolution by its percentage)."""
    render = scene.render
    return (render.resolution_x * render.resolution_percentage // 100,
            render.resolution_y * render.resolution_percentage // 100)


def tile_grid(count, width, height):
    """The regions of the count tiles of a width x height frame, as
    (x0, y0, x1, y1) in pixels from the bottom left, x1 and y1 excluded.

    The layout: rows = round(sqrt(count * height / width)), at least 1 and
    at most count, so that tiles are near square (2 to 3 parts of a 16:9
    frame are columns, 4 a 2x2 grid, 6 a 2x3, 16 three rows of 6, 5 and
    5). The count spreads over the rows, the lower rows taking one more
    tile each when it does not divide. Row and column edges are at
    k * size // n, so tiles differ by a pixel at most within a row, and
    every pixel of the frame is in exactly one tile.
    """
    rows = max(1, min(count, int(round(math.sqrt(count * height / width)))))
    cols_of_row = [count // rows + (1 if r < count % rows else 0) for r in range(rows)]
    if height < rows or width < max(cols_of_row):
        fail("the frame is %dx%d pixels, too small for %d tiles: use fewer parts or samples mode"
             % (width, height, count))
    tiles = []
    for r, cols in enumerate(cols_of_row):
        y0, y1 = r * height // rows, (r + 1) * height // rows
        for c in range(cols):
            tiles.append((c * width // cols, y0, (c + 1) * width // cols, y1))
    return tiles


def with_overscan(tile, overscan, width, height):
    """tile grown by overscan pixels on every side where the frame goes on."""
    x0, y0, x1, y1 = tile
    return (max(0, x0 - overscan), max(0, y0 - overscan), min(width, x1 + overscan), min(height, y1 + overscan))


def sample_share(total, index, count):
    """Part index's (sample offset, samples) of total samples in count parts:
    total // count each, the first total % count parts one more, so the
    parts' samples add up to total exactly, each range following the
    previous part's."""
    base, extra = divmod(total, count)
    samples = base + (1 if index < extra else 0)
    offset = index * base + min(index, extra)
    return offset, samples


# Cycles tests a pixel's convergence every ADAPTIVE_STEP samples, after its
# minimum (Cycles' AdaptiveSampling: adaptive_step, 16 in 3.4 and 4.3).
ADAPTIVE_STEP = 16


def adaptive_share(total, index, count, threshold, min_samples):
    """Part index's (adaptive threshold, minimum samples) of a frame of total
    samples split into count parts, for a scene whose adaptive sampling has
    threshold and min_samples (0 for either: Cycles' automatic value).

    The aim: each part stops a pixel at about 1/count of the samples the
    whole render stops it at, so that the parts together take about the
    samples the whole would. A pixel's noise estimate falls as
    1/sqrt(samples), and a part's is the same as the whole render's at the
    same number of samples, so the part's threshold is the whole's times
    sqrt(count). The minimum: the parts share the scene's minimum samples
    (automatic: 64 at the default threshold), rounded up to Cycles' steps,
    the first parts one more step when it does not divide, so that no
    pixel of the merge has fewer samples than the minimum asks (64 = 32 +
    32 for 2 parts, 16 each for 4). They share the minimum rather than the
    whole render's first test, which Cycles makes a step later when the
    minimum is a whole number of steps (80 for 64): most pixels of a plain
    scene stop at the first test, so 80 in 2 parts (48 + 32) left the
    first part half as much again to render as the second, and a split
    frame is done when its slowest part is. A part tests no earlier than
    after one step: beyond minimum / 16 parts, each takes at least 16
    samples of a pixel. When the whole render tests no pixel before its
    last sample, no part stops any.
    """
    # A file's threshold is data: NaN or infinity is taken as automatic.
    if not 0 < threshold < math.inf:
        threshold = max(0.001, 1.0 / total)
    if min_samples <= 0:
        min_samples = int(math.ceil(16.0 / threshold ** 0.3))
    min_samples = max(4, min_samples)
    first_test = ((min_samples + 1) | (ADAPTIVE_STEP - 1)) + 1
    _, samples = sample_share(total, index, count)
    if first_test >= total:
        return threshold, samples
    steps = -(-min_samples // ADAPTIVE_STEP)
    mine = max(1, steps // count + (1 if index < steps % count else 0))
    # Cycles tests after sample (min + 1) | (step - 1), counted from 0 in
    # the part: min = mine * step - 2 makes that sample mine * step - 1.
    return threshold * math.sqrt(count), mine * ADAPTIVE_STEP - 2


def rendered_layers(scene):
    return [layer for layer in scene.view_layers if layer.use]


def eevee_next(engine):
    """Whether engine is EEVEE Next: BLENDER_EEVEE_NEXT in Blender 4.2 to
    4.4, BLENDER_EEVEE again from 4.5."""
    return engine == "BLENDER_EEVEE_NEXT" or (engine == "BLENDER_EEVEE" and bpy.app.version >= (4, 2, 0))


def check_engine(scene, mode):
    """Refuse an engine whose parts would not make the whole render (see
    tileEngines in split.go): samples mode merges Cycles' samples; a tile
    is the whole render's pixels in Cycles, in EEVEE before 4.2 and in
    Workbench, not in EEVEE Next, which renders the region alone, with its
    own noise and screen-space effects."""
    engine = scene.render.engine
    if mode == SAMPLES and engine != "CYCLES":
        fail("samples mode merges what Cycles writes of its samples, and the scene renders with %s: "
             "set engine to CYCLES, or use tiles mode" % engine)
    if mode == TILES and (eevee_next(engine) or engine not in ("CYCLES", "BLENDER_EEVEE", "BLENDER_WORKBENCH")):
        fail("tiles are rendered with Cycles, EEVEE (Blender 4.1 and older) or Workbench, and the scene renders "
             "with %s%s: set engine to CYCLES, or render it without splitFrame"
             % (engine, " (EEVEE Next, whose tiles differ from the whole frame)" if eevee_next(engine) else ""))


def check_scene(scene, mode):
    """Refuse a scene whose split frame would differ from its whole render."""
    render = scene.render
    check_engine(scene, mode)
    if scene.use_nodes and render.use_compositing and scene.node_tree is not None:
        fail("scene %r composites its render, and the merge writes the render as it comes from Cycles: "
             "render it without splitFrame, or turn compositing off" % scene.name)
    if render.use_multiview:
        fail("scene %r renders several views; split frames have one: render it without splitFrame" % scene.name)
    if len(rendered_layers(scene)) != 1:
        fail("scene %r renders %d view layers; a split frame has one: render it without splitFrame, "
             "or leave one view layer on" % (scene.name, len(rendered_layers(scene))))
    if render.use_border:
        fail("scene %r renders a border region only: turn render border off, or render it without splitFrame"
             % scene.name)
    if scene.sequence_editor is not None and render.use_sequencer and len(scene.sequence_editor.sequences_all):
        fail("scene %r's frames come from the video sequencer: render it without splitFrame" % scene.name)


def denoises(scene):
    """Whether the scene's render denoises: Cycles' setting, which other
    engines do not read."""
    return scene.render.engine == "CYCLES" and bool(scene.cycles.use_denoising)


def apply_part(scene, part):
    """Make scene render part (see split.go's Part) into a float OpenEXR:
    render_settings.apply has set the format, the output path and the rest."""
    check_scene(scene, part["mode"])
    cycles = scene.cycles
    layer = rendered_layers(scene)[0]
    wants_denoising = denoises(scene)
    # Each part is noisy on purpose: the merge denoises the merged frame,
    # from the albedo and normal passes the parts keep for it.
    cycles.use_denoising = False
    for each in scene.view_layers:
        if getattr(each, "cycles", None) is not None:
            each.cycles.use_denoising = False
    render = scene.render
    # The part is the render as Cycles made it; the merge writes the frame.
    render.use_compositing = False
    render.use_sequencer = False
    mode, index, count = part["mode"], part["index"], part["count"]
    if mode == SAMPLES:
        total = cycles.samples
        if total < count:
            fail("%d samples cannot be shared by %d parts: use at most %d parts, or more samples"
                 % (total, count, total))
        offset, samples = sample_share(total, index, count)
        cycles.samples = samples
        cycles.sample_offset = offset
        # Adaptive sampling stops each pixel on its own: the part stops it
        # at its share of the samples the whole render would (see
        # adaptive_share), and the merge weighs each part's pixel by the
        # samples it took there.
        if cycles.use_adaptive_sampling:
            threshold, min_samples = adaptive_share(total, index, count, cycles.adaptive_threshold,
                                                    cycles.adaptive_min_samples)
            cycles.adaptive_threshold = threshold
            cycles.adaptive_min_samples = min_samples
            layer.cycles.pass_debug_sample_count = True
            note("part %d of %d: adaptive threshold %.4g, first test after %d samples"
                 % (index + 1, count, threshold, ((min_samples + 1) | (ADAPTIVE_STEP - 1)) + 1))
        if wants_denoising:
            layer.cycles.denoising_store_passes = True
        note("part %d of %d: samples %d to %d of %d" % (index + 1, count, offset, offset + samples - 1, total))
    elif mode == TILES:
        if wants_denoising:
            fail("tiles mode cannot denoise: a denoiser sees past a tile's edge and would leave seams; "
                 "use samples mode or turn denoising off")
        width, height = frame_size(scene)
        tile = tile_grid(count, width, height)[index]
        x0, y0, x1, y1 = with_overscan(tile, part.get("overscan", 0), width, height)
        # Blender truncates border * size to a pixel: half a pixel in, the
        # border lands on the pixel meant however the float rounds.
        render.use_border = True
        render.use_crop_to_border = True
        render.border_min_x = min(1.0, (x0 + 0.5) / width)
        render.border_max_x = min(1.0, (x1 + 0.5) / width)
        render.border_min_y = min(1.0, (y0 + 0.5) / height)
        render.border_max_y = min(1.0, (y1 + 0.5) / height)
        note("part %d of %d: pixels %d-%d x %d-%d of %dx%d" % (index + 1, count, x0, x1 - 1, y0, y1 - 1, width, height))
    else:
        fail("split mode %r is not samples or tiles" % mode)


def merged_samples(scene, parts):
    """Merge the parts' multilayer OpenEXRs, each pixel weighted by the
    samples each part took there, and denoise the result once when the
    scene denoises. Answers the path of the merged multilayer OpenEXR."""
    import _cycles

    work = tempfile.mkdtemp(prefix="merge-")
    merged = os.path.join(work, "merged.exr")
    # cycles.merge_images is this call with two inputs; with all of them
    # at once each part is read once and nothing is written in between.
    try:
        _cycles.merge(input=list(parts), output=merged)
    except Exception as err:
        fail("the parts could not be merged: %s" % err)
    if not denoises(scene):
        return merged
    if not getattr(_cycles, "with_openimagedenoise", False):
        fail("denoising is on, and this Blender was built without OpenImageDenoise: turn denoising off")
    denoised = os.path.join(work, "denoised.exr")
    try:
        _cycles.denoise(bpy.context.preferences.as_pointer(), scene.as_pointer(),
                        rendered_layers(scene)[0].as_pointer(), input=[merged], output=[denoised])
    except Exception as err:
        fail("the merged frame could not be denoised: %s" % err)
    return denoised


def assembled_tiles(scene, parts, overscan):
    """The frame made of the tiles, their overscan dropped, as a float image
    of the farm's own."""
    width, height = frame_size(scene)
    tiles = tile_grid(len(parts), width, height)
    pixels = array.array("f", bytes(4 * 4 * width * height))
    for index, (path, tile) in enumerate(zip(parts, tiles)):
        x0, y0, x1, y1 = tile
        ox0, oy0, ox1, oy1 = with_overscan(tile, overscan, width, height)
        image = bpy.data.images.load(path, check_existing=False)
        try:
            image.name = SCRATCH
            got = tuple(image.size)
            want = (ox1 - ox0, oy1 - oy0)
            if got != want or image.channels != 4:
                fail("part %d of %d is %dx%d pixels in %d channels, where its tile is %dx%d in 4"
                     % (index + 1, len(parts), got[0], got[1], image.channels, want[0], want[1]))
            src = array.array("f", bytes(4 * 4 * want[0] * want[1]))
            image.pixels.foreach_get(src)
        finally:
            bpy.data.images.remove(image)
        row = 4 * (x1 - x0)
        for y in range(y0, y1):
            s = 4 * ((y - oy0) * want[0] + (x0 - ox0))
            d = 4 * (y * width + x0)
            pixels[d:d + row] = src[s:s + row]
    image = bpy.data.images.new(SCRATCH, width, height, alpha=True, float_buffer=True)
    image.alpha_mode = "PREMUL"
    image.pixels.foreach_set(pixels)
    return image


def composite_from(scene, image):
    """Make the scene's render the image alone: a compositor of an Image node
    into the Composite node, which Blender runs without rendering anything,
    since no node asks for a render layer. The frame then goes through
    what a rendered frame does: the scene's view transform, look, dither,
    format and codec."""
    render = scene.render
    render.use_compositing = True
    render.use_sequencer = False
    scene.use_nodes = True
    tree = scene.node_tree
    for node in list(tree.nodes):
        tree.nodes.remove(node)
    source = tree.nodes.new("CompositorNodeImage")
    source.image = image
    # The Combined pass is an image's first output, its alpha the one
    # named so; other passes (the samples per pixel) are left.
    outputs = [o for o in source.outputs if o.enabled]
    if not outputs:
        fail("the merged frame has no image to write")
    composite = tree.nodes.new("CompositorNodeComposite")
    tree.links.new(outputs[0], composite.inputs[0])
    alpha = source.outputs.get("Alpha")
    if alpha is not None and len(composite.inputs) > 1:
        tree.links.new(alpha, composite.inputs[1])


def merge(scene, command):
    """The merge command: the frame of the parts, rendered into
    outputDir/frame_NNNN with the scene's format. The caller signals the
    frame and its proxy as for a render."""
    check_scene(scene, command["mode"])
    parts = command["parts"]
    for index, path in enumerate(parts):
        if not os.path.isfile(path):
            fail("part %d of %d is missing" % (index + 1, len(parts)))
    if command["mode"] == SAMPLES:
        merged = merged_samples(scene, parts)
        image = bpy.data.images.load(merged, check_existing=False)
        image.name = SCRATCH
    elif command["mode"] == TILES:
        image = assembled_tiles(scene, parts, command.get("overscan", 0))
    else:
        fail("split mode %r is not samples or tiles" % command["mode"])
    composite_from(scene, image)
