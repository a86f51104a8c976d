"""The histogram action (issue 32): bins, fractions, the volume-weighted distribution and a real PNG."""

from functools import partial

import imageio.v2 as imageio
import numpy as np
import pytest

from damselfly.engine import ParameterError, Table
from damselfly.engine.actions.plots import histogram
from damselfly.engine.core.context import RunContext


@pytest.fixture()
def pores():
    d = [0.1, 0.1, 0.2, 0.3, 0.9]
    return Table({"id": [1, 2, 3, 4, 5], "equivalent_diameter": d, "volume": [np.pi / 6 * x ** 3 for x in d],
                  "touches_border": [False] * 5}, name="pores", metadata={"unit": "mm"})


def test_bins_fractions_and_volume_share(pores, tmp_path):
    h = partial(histogram, ctx=RunContext(out_dir=tmp_path))
    t = h(pores, bins=4)
    assert t["count"] == [4, 0, 0, 1] and t["from"][0] == 0.1 and t["to"][-1] == pytest.approx(0.9)
    assert t["fraction"] == [0.8, 0, 0, 0.2] and t["cumulative"][-1] == 1.0
    big = (0.9 ** 3) / sum(x ** 3 for x in (0.1, 0.1, 0.2, 0.3, 0.9))  # the big pore holds most of the volume
    assert t["volume_fraction"][-1] == pytest.approx(big) and t.metadata["unit"] == "mm"
    log = h(pores, bins=2, log=True)
    assert log["from"][1] == pytest.approx(0.3) and log["count"] == [3, 2]  # geometric middle of 0.1 and 0.9


def test_the_picture_is_a_png_with_bars(pores, tmp_path):
    out = tmp_path / "sizes.png"
    t = histogram(pores, path=str(out), bins=4, ctx=RunContext(out_dir=tmp_path))
    img = imageio.imread(out)
    assert img.shape[0] > 300 and t.metadata["plot"] == str(out)
    bars = np.all(np.abs(img[..., :3].astype(int) - [0x4C, 0x72, 0xB0]) < 10, axis=2)
    assert bars.sum() > 1000  # the bars are drawn in their colour


def test_clear_errors(pores, tmp_path):
    h = partial(histogram, ctx=RunContext(out_dir=tmp_path))
    with pytest.raises(ParameterError, match="no column 'size'.*equivalent_diameter"):
        h(pores, column="size")
    with pytest.raises(ParameterError, match=".png"):
        h(pores, path=str(tmp_path / "x.jpg"))
    with pytest.raises(ParameterError, match="positive"):
        h(Table({"v": [0.0, 1.0]}), column="v", log=True)
    with pytest.raises(ParameterError, match="bins"):
        h(pores, bins=0)
