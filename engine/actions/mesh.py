"""Meshes of a class (or of objects) for reports, CAD and 3-D printing."""

from __future__ import annotations

from ..core.context import RunContext
from ..core.data import Labels
from ..core.errors import InputError, ParameterError
from ..registry import OutputPath, action

#: the formats a mesh is written in (pyvista / VTK writers), by suffix
MESH_SUFFIXES = (".stl", ".ply", ".obj", ".vtp")


@action("export_mesh", category="Render")
def export_mesh(labels: Labels, path: OutputPath, class_: str, decimate: float = 0.0, smooth: int = 0, *,
                ctx: RunContext) -> None:
    """Write the surface of a class (or of all objects of ``label_objects``: class "object") as a mesh in
    the scan's physical units and position: STL, PLY, OBJ or VTP by the file's suffix.

    The surface is marching cubes of the class mask (closed at the scan's border); a mask whose surface
    would exceed the renderer's triangle budget is first averaged over blocks, as for the 3-D view.

    Parameters
    ----------
    labels : Labels
        A segmentation or objects.
    path : path
        The mesh file (.stl, .ply, .obj or .vtp).
    class : str
        The class whose surface to write.
    decimate : float
        Fraction of the triangles to remove (0 = none, 0.9 = keep a tenth), with VTK's quadric decimation.
    smooth : int
        Taubin smoothing iterations (0 = the marching-cubes surface as it is; it does not shrink).

    Examples
    --------
    >>> export_mesh(seg, "{scan.stem}_pores.stl", class_="pore", ctx=ctx)   # doctest: +SKIP
    """
    from pathlib import Path

    from ..io._files import atomic_path
    from ..render import _surfaces as surfaces

    if Path(path).suffix.lower() not in MESH_SUFFIXES:
        raise ParameterError(f"a mesh is written as {', '.join(MESH_SUFFIXES)}; got {Path(path).name}")
    if not 0 <= decimate < 1:
        raise ParameterError(f"decimate is the fraction of triangles removed, from 0 to below 1; got {decimate}")
    mesh = surfaces.class_surface(labels, class_, smooth=smooth)
    if mesh is None:
        raise InputError(f"class '{class_}' has no voxel: no surface to write", labels.source)
    if decimate > 0:
        mesh = mesh.triangulate().decimate(decimate)
    with atomic_path(path, overwrite=ctx.may_replace(path)) as tmp:
        mesh.save(str(tmp))
