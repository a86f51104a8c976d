"""export_mesh (issue 32): meshes round-trip through pyvista in physical units and position."""

import numpy as np
import pytest

from damselfly.engine import make_classes
from damselfly.engine.actions.mesh import export_mesh
from damselfly.engine.core.context import RunContext
from damselfly.engine.core.data import Labels
from damselfly.engine.core.errors import InputError, ParameterError


@pytest.fixture()
def ball():
    zz, yy, xx = np.mgrid[:24, :26, :30]
    data = np.ones(zz.shape, np.uint8)
    data[(zz - 10) ** 2 + (yy - 12) ** 2 + (xx - 14) ** 2 <= 25] = 2
    return Labels(data, spacing=(0.5, 0.25, 0.2), origin=(1.0, 2.0, 3.0), unit="mm",
                  classes=make_classes(["matrix", "pore"]), name="b")


@pytest.mark.parametrize("suffix", [".stl", ".ply", ".obj", ".vtp"])
def test_a_mesh_round_trips_with_its_physical_size_and_position(ball, tmp_path, suffix):
    import pyvista as pv

    path = tmp_path / f"pore{suffix}"
    export_mesh(ball, str(path), class_="pore", ctx=RunContext(out_dir=tmp_path))
    mesh = pv.read(str(path))
    x0, x1, y0, y1, z0, z1 = mesh.bounds
    (sz, sy, sx), (oz, oy, ox) = ball.spacing, ball.origin
    for lo, hi, centre, s, o in ((x0, x1, 14, sx, ox), (y0, y1, 12, sy, oy), (z0, z1, 10, sz, oz)):
        assert (lo + hi) / 2 == pytest.approx(o + centre * s, abs=0.5 * s)  # centred where the ball is
        assert hi - lo == pytest.approx(11 * s, abs=1.0 * s)  # about (2 r + 1) voxels across
    assert mesh.n_cells > 100


def test_decimate_and_clear_errors(ball, tmp_path):
    import pyvista as pv

    ctx = RunContext(out_dir=tmp_path)
    export_mesh(ball, str(tmp_path / "full.stl"), class_="pore", ctx=ctx)
    export_mesh(ball, str(tmp_path / "light.stl"), class_="pore", decimate=0.8, ctx=ctx)
    assert pv.read(str(tmp_path / "light.stl")).n_cells < 0.4 * pv.read(str(tmp_path / "full.stl")).n_cells
    with pytest.raises(ParameterError, match="written as"):
        export_mesh(ball, str(tmp_path / "x.png"), class_="pore", ctx=ctx)
    empty = ball.with_data(np.ones(ball.shape, np.uint8))
    with pytest.raises(InputError, match="no surface"):
        export_mesh(empty, str(tmp_path / "e.stl"), class_="pore", ctx=ctx)
    assert not (tmp_path / "e.stl").exists()
