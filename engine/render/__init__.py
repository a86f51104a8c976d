"""3-D pictures: scenes, snapshots, movies, and surfaces of classes and objects.

- ``_scene``: :class:`Scene` and the off-screen renderer (VTK); ``_surfaces``: marching cubes in world
  units; ``_timeline``: how a scene moves in a movie; ``_movie``: MP4 movies; ``_objects``: objects
  coloured by a measurement.

VTK loads when one of these names is first read.
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["Scene", "SceneRenderer", "Timeline", "render_movie", "class_surface", "mask_surface"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "Scene": "._scene",
    "SceneRenderer": "._scene",
    "Timeline": "._timeline",
    "render_movie": "._movie",
    "class_surface": "._surfaces",
    "mask_surface": "._surfaces",
})

if TYPE_CHECKING:
    from ._movie import render_movie
    from ._scene import Scene, SceneRenderer
    from ._surfaces import class_surface, mask_surface
    from ._timeline import Timeline
