"""Objects coloured by id or a measurement in snapshots and movies (issue 32): values per object, vertex
colours, the colour bar, objects a table leaves out not drawn."""

from functools import partial
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from damselfly.engine import Labels, ParameterError, Table, make_classes
from damselfly.engine.actions import render as render_actions
from damselfly.engine.actions.objects import filter_objects, label_objects, measure_objects
from damselfly.engine.core.context import RunContext
from damselfly.engine.render._objects import object_surface, object_values

BACKGROUND = (22, 24, 30)


@pytest.fixture(scope="module")
def balls():
    """Two pores in metal, 0.1 mm voxels: a small one (object 1, radius 4) and a big one (object 2,
    radius 8), far apart along x."""
    zz, yy, xx = np.mgrid[:32, :32, :64]
    d = np.ones((32, 32, 64), np.uint8)
    d[(zz - 10) ** 2 + (yy - 16) ** 2 + (xx - 12) ** 2 <= 16] = 2  # starts at z = 6: first in the scan
    d[(zz - 16) ** 2 + (yy - 16) ** 2 + (xx - 44) ** 2 <= 64] = 2
    seg = Labels(d, spacing=(0.1, 0.1, 0.1), unit="mm", classes=make_classes(["metal", "pore"]), name="seg")
    objs = label_objects(seg, class_="pore")
    return seg, objs, measure_objects(objs)


def test_values_per_object_with_units_and_gaps(balls):
    _seg, objs, table = balls
    values, title = object_values(objs, "volume", table)
    assert values[1:].tolist() == table["volume"] and np.isnan(values[0]) and title == "volume (mm³)"
    only_big = Table({"id": [2], "volume": [table["volume"][1]]}, metadata={"unit": "mm"})
    values, _ = object_values(objs, "volume", only_big)
    assert np.isnan(values[1]) and values[2] == table["volume"][1]
    measured, _ = object_values(objs, "sphericity")  # no table: measured here
    assert measured[1:].tolist() == pytest.approx(table["sphericity"])
    with pytest.raises(ParameterError, match="not a column.*equivalent_diameter"):
        object_values(objs, "volumes", table)
    with pytest.raises(ParameterError, match="objects of label_objects"):
        object_values(balls[0], "volume", table)
    with pytest.raises(ParameterError, match="ids up to 7"):
        object_values(objs, "volume", Table({"id": [7], "volume": [1.0]}))


def test_every_vertex_carries_its_objects_value(balls):
    _seg, objs, _table = balls
    values = np.array([np.nan, 10.0, 20.0])
    mesh = object_surface(objs, values)
    x = np.asarray(mesh.points)[:, 0]  # world x (mm): the small ball near 1.2, the big one near 4.4
    v = np.asarray(mesh.point_data["value"])
    assert np.all(v[x < 2.5] == 10.0) and np.all(v[x > 2.5] == 20.0)
    hidden = object_surface(objs, np.array([np.nan, np.nan, 20.0]))
    assert np.asarray(hidden.points)[:, 0].min() > 2.5  # the small ball is not drawn at all


def drawn_columns(img) -> np.ndarray:
    """Image columns where something other than the background is drawn (the colour bar excluded)."""
    other = np.any(np.abs(img[..., :3].astype(int) - BACKGROUND) > 12, axis=2)
    return np.flatnonzero(other[150:600].any(axis=0))


def test_snapshot_by_volume_has_a_colour_bar_and_shows_only_kept_objects(balls, tmp_path):
    _seg, objs, table = balls
    snap = partial(render_actions.snapshot, ctx=RunContext(out_dir=tmp_path), elevation=0.0, azimuth=-90.0,
                   scale_bar=False, size=[640, 640])
    snap(objs, str(tmp_path / "all.png"), color_by="volume", table=table)
    img = imageio.imread(tmp_path / "all.png")
    viridis_end = np.array([253, 231, 37])  # the largest volume: the big ball is yellow
    yellow = np.all(np.abs(img[..., :3].astype(int) - viridis_end) < 60, axis=2)
    assert yellow.sum() > 2000
    big_only = filter_objects(objs, min_volume=float(table["volume"][0]) * 2)
    snap(big_only, str(tmp_path / "big.png"), color_by="id")
    all_cols, big_cols = drawn_columns(img[:, :540]), drawn_columns(imageio.imread(tmp_path / "big.png"))
    assert big_only.metadata["objects"] == 1
    assert len(big_cols) < 0.8 * len(all_cols)  # one ball fewer across the frame


def test_movie_colours_objects_too(balls, tmp_path):
    _seg, objs, table = balls
    render_actions.render_movie(objs, str(tmp_path / "frames"), color_by="volume", table=table, seconds=1.0,
                                fps=2, size=[160, 120], ctx=RunContext(out_dir=tmp_path))
    frames = sorted(Path(tmp_path / "frames").glob("*.png"))
    assert len(frames) == 2
    img = imageio.imread(frames[0])
    assert np.any(np.abs(img[..., :3].astype(int) - BACKGROUND) > 40)
