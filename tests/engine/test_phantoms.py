import numpy as np
from scipy import ndimage

from damselfly.engine.core import phantoms


def test_casting_is_seeded_and_has_all_classes(casting_small):
    v, t = casting_small
    v2, t2 = phantoms.casting((40, 48, 48), seed=3)
    assert v.hash() == v2.hash() and t.hash() == t2.hash()
    assert phantoms.casting((40, 48, 48), seed=4)[0].hash() != v.hash()
    assert t.class_names == ["air", "metal", "pore"]
    assert set(np.unique(t.data)) == {1, 2, 3}
    assert v.data.dtype == np.uint16 and v.spacing == (0.05, 0.05, 0.05) and v.unit == "mm"


def test_casting_small_pores_are_fainter_than_large_ones():
    v, t = phantoms.casting((96, 96, 96), seed=0)
    grey = v.data.astype(float)
    metal = np.median(grey[t.data == 2])
    air = np.median(grey[t.data == 1])
    contrast = []
    for pz, py, px, r in t.metadata["pores"]:
        c = grey[int(round(pz)), int(round(py)), int(round(px))]
        contrast.append((r, (metal - c) / (metal - air)))
    contrast.sort()
    small = np.mean([c for r, c in contrast if r < 1.8])
    large = np.mean([c for r, c in contrast if r > 3.5])
    assert large > 0.6 and small < large - 0.2, (small, large)


def test_casting_has_cupping():
    v, t = phantoms.casting((64, 96, 96), seed=0, rings=0, streaks=0)
    grey = v.data.astype(float)
    metal = t.data == 2
    r = np.hypot(*np.meshgrid(np.arange(96) - 47.5, np.arange(96) - 47.5, indexing="ij"))
    centre = metal & (r < 10)[None]
    rim = metal & ((r > 30) & (r < 36))[None]
    assert grey[centre].mean() < 0.85 * grey[rim].mean()


def test_fibres_have_the_requested_diameters():
    v, t = phantoms.fibre_composite((8, 96, 96), seed=1, diameters=(6.0, 12.0))
    lab, n = ndimage.label(t.data[4] == 2)
    areas = ndimage.sum(np.ones_like(lab), lab, index=range(1, n + 1))
    measured = sorted(2 * np.sqrt(areas / np.pi))
    expected = sorted(f[2] for f in t.metadata["fibres"])
    assert n == len(expected)
    np.testing.assert_allclose(measured, expected, rtol=0.15)


def test_layered_phases_are_ordered_and_brighter_downwards():
    v, t = phantoms.layered((48, 40, 40), seed=2, n_phases=4)
    means = [v.data[t.data == k].mean() for k in range(1, 5)]
    assert means == sorted(means)
    assert t.class_names == ["phase1", "phase2", "phase3", "phase4"]
