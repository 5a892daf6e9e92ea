"""renderfarm: submit the open .blend to a renderfarm from Blender.

The add-on's Blender parts live in ui.py and are imported only by register(),
so the rest of the package (the HTTP client, renderfarm_client.py, and the
packer, packer.py) imports without Blender: pipeline scripts use the client
with plain Python, and the tests run outside Blender.
"""

bl_info = {
    "name": "renderfarm",
    "author": "renderfarm",
    "version": (1, 0, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Render > renderfarm",
    "description": "Pack the scene with every file it uses, render it on a renderfarm, and bring the frames back",
    "category": "Render",
}


def register():
    from . import ui
    ui.register()


def unregister():
    from . import ui
    ui.unregister()
