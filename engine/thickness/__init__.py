"""Local thickness, exact and anisotropic, in memory and block by block.

- ``_exact``: the distance transform, the distance ridge and the ball filling (numba kernels).
- ``_rows``: the row primitives they share; ``_pyramid``: counts and boxes of unfilled voxels, through
  which big balls fill (bulk parts).
- ``_blocks``: scans larger than memory, block by block, equal voxel for voxel; ``_centres``: the same at
  radii as wide as the blocks, passing the ball centres between blocks instead of a halo.
- ``_phase_rows``: the scratch format of the out-of-core distance transform.
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["local_thickness", "distance_ridge", "distance_offsets", "blockwise_thickness"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "local_thickness": "._exact",
    "distance_ridge": "._exact",
    "distance_offsets": "._exact",
    "blockwise_thickness": "._blocks",
})

if TYPE_CHECKING:
    from ._blocks import blockwise_thickness
    from ._exact import distance_offsets, distance_ridge, local_thickness
