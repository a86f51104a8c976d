"""Local thickness: equal to a brute-force oracle of the definition, analytic shapes, actions, errors."""

import math

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine import InputError, Labels, ParameterError, Volume, local_thickness, make_classes
from damselfly.engine.actions.measure import local_thickness as lt_action
from damselfly.engine.actions.measure import thickness_stats
from damselfly.engine.core.volume_ops import on_disk


def oracle(mask, spacing=(1.0, 1.0, 1.0), border=False):
    """The definition, literally: r(x) = distance to the nearest voxel outside the phase; thickness(y) =
    2 max r(x) over phase voxels x with |y - x| <= r(x). Every phase voxel is a ball centre. Distances are
    in multiples of the smallest spacing (so that equal distances compare equal), scaled at the end."""
    unit = min(spacing)
    s = np.asarray(spacing, float) / unit
    phase = np.argwhere(mask)
    outside = np.argwhere(~mask)
    if border:  # a one-voxel frame of background around the image
        frame = np.argwhere(np.pad(np.zeros(mask.shape, bool), 1, constant_values=True)) - 1
        outside = np.concatenate([outside, frame])

    def d2(offsets):
        p = offsets * s
        return p[..., 0] ** 2 + (p[..., 1] ** 2 + p[..., 2] ** 2)

    r2 = np.array([d2(outside - x).min() for x in phase])
    out = np.zeros(mask.shape, np.float32)
    for y in phase:
        covering = d2(phase - y) <= r2
        out[tuple(y)] = np.float32(2.0 * np.sqrt(r2[covering].max()) * unit)
    return out


SPACINGS = [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.7, 0.45), (0.3, 1.1, 0.9)]


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("border", [False, True])
def test_equals_the_brute_force_definition_on_random_volumes(spacing, border):
    rng = np.random.default_rng(hash((spacing, border)) % 2 ** 32)
    checked = 0
    for _ in range(6):
        shape = tuple(int(v) for v in rng.integers(5, 13, 3))
        mask = ndimage.gaussian_filter(rng.random(shape), 1.0) > rng.uniform(0.4, 0.6)
        if not mask.any() or (mask.all() and not border):
            continue
        got = local_thickness(mask, spacing, border=border)
        assert got.dtype == np.float32 and got.shape == mask.shape
        np.testing.assert_array_equal(got, oracle(mask, spacing, border))
        checked += 1
    assert checked >= 4


def test_plates_have_their_thickness():
    # a plate n voxels thick: the centre voxel is (n + 1) / 2 voxels from the background on either side,
    # so the definition gives n for even n and n + 1 for odd n (centre-to-centre distances)
    for n in range(1, 9):
        for sz in (1.0, 0.5):
            m = np.zeros((n + 6, 12, 12), bool)
            m[3:3 + n] = True
            t = local_thickness(m, (sz, 1.0, 1.0))
            assert np.all(t[m] == np.float32((n + n % 2) * sz)), (n, sz)
            assert np.all(t[~m] == 0)


@pytest.mark.parametrize("d", [8, 13, 20])
def test_cylinders_and_spheres_measure_their_diameter(d):
    n = d + 8
    zz, yy, xx = np.mgrid[:n, :n, :n] - (n - 1) / 2
    cyl = np.hypot(yy, xx) <= d / 2
    sphere = np.sqrt(zz ** 2 + yy ** 2 + xx ** 2) <= d / 2
    for shape in (cyl, sphere):
        t = local_thickness(shape)
        centre = t[n // 2, n // 2, n // 2]
        # measured between voxel centres, and for even d the shape's centre falls between voxels, so a
        # ball centred on a voxel is up to about a voxel narrower (d = 8: 7.2 cylinder, 6.6 sphere)
        assert d - 1.5 <= centre <= d + 1, (d, centre)
        assert np.median(t[shape]) == centre  # the largest ball reaches (nearly) every voxel


def test_anisotropic_spacing_scales_like_physical_units():
    m = np.zeros((20, 30, 30), bool)
    m[5:15, 5:25, 5:25] = True
    iso = local_thickness(m, (1, 1, 1), border=True)
    scaled = local_thickness(m, (0.5, 0.5, 0.5), border=True)
    np.testing.assert_allclose(scaled, iso * 0.5, rtol=1e-6)


def test_outside_value_border_and_2d():
    m = np.zeros((1, 9, 9), bool)
    m[0, 2:7, 2:7] = True
    t = local_thickness(m, outside=np.nan)
    assert np.isnan(t[~m]).all() and np.isfinite(t[m]).all()
    full = np.ones((4, 5, 6), bool)
    with pytest.raises(InputError, match="fills the whole image"):
        local_thickness(full)
    assert np.all(local_thickness(full, border=True) > 0)
    np.testing.assert_array_equal(local_thickness(m[0]), local_thickness(m)[0])
    with pytest.raises(InputError, match="empty"):
        local_thickness(np.zeros((3, 3, 3), bool))
    with pytest.raises(ParameterError, match="boolean"):
        local_thickness(np.zeros((3, 3, 3), np.uint8))


def test_action_measures_a_class_of_labels_and_a_mask(casting_small):
    vol, truth = casting_small
    thick = lt_action(truth, class_="metal")
    metal = truth.mask("metal")
    assert thick.unit == truth.unit and thick.spacing == truth.spacing
    np.testing.assert_array_equal(thick.data, local_thickness(metal, truth.spacing))
    from_mask = lt_action(Volume(metal.astype(np.uint8), spacing=truth.spacing))
    np.testing.assert_array_equal(from_mask.data, thick.data)
    with pytest.raises(ParameterError, match="class=..."):
        lt_action(truth)
    with pytest.raises(InputError, match="unknown class 'metl'; did you mean 'metal'"):
        lt_action(truth, class_="metl")
    empty = Labels(np.ones(truth.shape, np.uint8), classes=make_classes(["a", "b"]), name="l")
    with pytest.raises(InputError, match="class 'b' is empty"):
        lt_action(empty, class_="b")


def test_thickness_stats_table():
    m = np.zeros((10, 12, 12), bool)
    m[2:6] = True  # a plate 4 voxels thick: every voxel 4.0
    m[8, 5, 5] = True  # one voxel: thickness 2.0
    t = Volume(local_thickness(m), name="t")
    tab = thickness_stats(t, bins=4)
    first = tab.rows()[0]
    assert first["range"] == "all" and first["voxels"] == int(m.sum())
    assert first["max"] == 4.0 and first["median"] == 4.0
    assert {r["unit"] for r in tab.rows()} == {"voxel"}  # the CSV says what its lengths are in
    mm = thickness_stats(Volume(local_thickness(m), name="t", spacing=(0.5, 0.5, 0.5), unit="mm"), bins=4)
    assert {r["unit"] for r in mm.rows()} == {"mm"}
    assert first["mean"] == pytest.approx((4.0 * (m.sum() - 1) + 2.0) / m.sum())
    bins = [r for r in tab.rows() if r["range"] == "bin"]
    assert len(bins) == 4 and sum(r["voxels"] for r in bins) == m.sum()
    assert [r["voxels"] for r in bins] == [0, 0, 1, int(m.sum()) - 1]  # edges 0, 1, 2, 3, 4
    with pytest.raises(InputError, match="no voxel with a thickness"):
        thickness_stats(Volume(np.zeros((2, 2, 2), np.float32)))


def test_fallbacks_for_huge_radii_give_the_same_result(monkeypatch):
    # very thick structures take other paths: a sorted (not dense) offset table, triangle-inequality
    # containment instead of scanning the balls, and no row-cover tables; all must still be exact
    from damselfly.engine.thickness import _exact as T

    rng = np.random.default_rng(5)
    mask = ndimage.gaussian_filter(rng.random((11, 12, 10)), 1.0) > 0.5
    spacing = (1.0, 0.7, 0.45)
    expected = oracle(mask, spacing)
    np.testing.assert_array_equal(local_thickness(mask, spacing), expected)
    monkeypatch.setattr(T, "DENSE_LIMIT", 1)
    monkeypatch.setattr(T, "EXACT_BUDGET", 0)
    monkeypatch.setattr(T, "MASK_ROWS", 10)
    monkeypatch.setattr(T, "MASK_BUDGET", 40)
    np.testing.assert_array_equal(local_thickness(mask, spacing), expected)
    pz_all = T.distance_ridge(mask, spacing)[0]
    monkeypatch.undo()
    assert len(pz_all) >= len(T.distance_ridge(mask, spacing)[0])  # the weaker test drops fewer balls
    for keys, rows in ((0, 10 ** 9), (T.KEYS, 10 ** 9), (10 ** 9, 50)):  # no shared row lists, for one level
        monkeypatch.setattr(T, "KEY_BUDGET", keys)  # only, or past a row budget: rows tested one by one
        monkeypatch.setattr(T, "LIST_ROWS", rows)
        monkeypatch.setattr(T, "LIST_SHARE", 0.0)
        np.testing.assert_array_equal(local_thickness(mask, spacing), expected)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 1.0, 0.3), (0.7, 2.0, 1.0)])
def test_row_lists_fill_as_testing_every_row_does_on_larger_volumes(spacing, monkeypatch):
    # volumes too large for the oracle, with long rows and many radii: the shared lists against the
    # row-by-row cover test that the oracle tests check on small volumes
    from damselfly.engine.thickness import _exact as T

    rng = np.random.default_rng(len(spacing) + int(10 * spacing[0]))
    mask = ndimage.gaussian_filter(rng.random((40, 52, 47)), 3.0) > 0.5
    with_lists = local_thickness(mask, spacing)
    monkeypatch.setattr(T, "KEY_BUDGET", 0)
    np.testing.assert_array_equal(local_thickness(mask, spacing), with_lists)


def test_shared_row_lists_hold_exactly_the_rows_no_earlier_neighbour_covers():
    # balls share a row list when their earlier neighbours cover the same rows; the cover key must lose
    # nothing: the listed rows are those that the ball's own neighbour bits leave uncovered
    from damselfly.engine.thickness import _exact as T

    rng = np.random.default_rng(11)
    mask = ndimage.gaussian_filter(rng.random((24, 26, 22)), 1.5) > 0.45
    sp = (1.0, 0.7, 0.45)
    pz, py, px, pl, pa, r2s = T.distance_ridge(mask, sp)
    ez, ey = (np.sqrt(r2s) / sp[0]).astype(int), (np.sqrt(r2s) / sp[1]).astype(int)
    wy = 2 * ey + 1
    moff = np.concatenate([[0], np.cumsum((2 * ez + 1) * wy)[:-1]])
    masks = np.empty(int(((2 * ez + 1) * wy).sum()), np.int64)
    T._cover_masks(r2s, *sp, moff, masks)
    pid, start, rows = T._row_lists(pl, pa, r2s, moff, masks, sp, 10 ** 9)
    assert (pid >= 0).all() and len(start) - 1 < len(pl)  # every ball has a list; some share one
    for i in rng.choice(len(pl), 300, replace=False):
        L = pl[i]
        n = (2 * ez[L] + 1) * wy[L]
        own = masks[moff[L]:moff[L] + n]
        expected = [j for j in range(n) if own[j] != -1 and (pa[i] == 0 or own[j] & pa[i] == 0)]
        got = rows[start[pid[i]]:start[pid[i] + 1]]
        assert [(r >> 16) * wy[L] + (r & 0xFFFF) for r in got] == expected


def test_thickness_stats_stream_exactly(tmp_path):
    """Statistics read slab by slab from a map on disk equal numpy's over the whole array."""
    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    vol, truth = phantoms.casting((40, 48, 48), seed=4)
    t = Volume(local_thickness(np.asarray(truth.data) == truth.class_index("metal"), spacing=truth.spacing))
    io.write_volume(t, tmp_path / "t.zarr")
    lazy = io.read_volume(tmp_path / "t.zarr")
    tab = thickness_stats(lazy, bins=5)
    v = np.asarray(t.data, np.float64)
    v = v[v > 0]
    first = tab.rows()[0]
    assert first["voxels"] == v.size and first["max"] == v.max() and first["median"] == np.median(v)
    assert first["mean"] == pytest.approx(v.mean(), rel=1e-12) and first["std"] == pytest.approx(v.std(), rel=1e-12)
    edges = np.linspace(0, v.max(), 6)
    idx = np.clip(np.searchsorted(edges, v, side="right") - 1, 0, 4)
    for i, row in enumerate(r for r in tab.rows() if r["range"] == "bin"):
        part = v[idx == i]
        assert row["voxels"] == part.size
        if part.size:
            assert row["median"] == np.median(part) and row["mean"] == pytest.approx(part.mean(), rel=1e-12)


@pytest.mark.parametrize("spacing, border, smooth", [((1, 1, 1), False, 1.5), ((2.0, 1.0, 1.5), False, 2.5),
                                                     ((1, 1, 1), True, 2.5), ((1.0, 0.7, 0.7), True, 1.5),
                                                     ((0.05, 0.05, 0.05), False, 3.0)])
@pytest.mark.parametrize("sparse_share", [0.0, 1.0])
def test_block_by_block_equals_the_whole_volume(spacing, border, smooth, sparse_share, monkeypatch):
    """Many small blocks (and distance-transform slabs of a few planes): the same values, voxel for
    voxel, as the in-memory computation; with the final offsets stored for every voxel (share 0) or for
    the phase voxels only (share 1)."""
    from scipy import ndimage as ndi

    import damselfly.engine.thickness._blocks as tb
    from damselfly.engine.thickness._blocks import blockwise_thickness

    a = ndi.gaussian_filter(np.random.default_rng(3).random((36, 41, 45)), smooth)
    mask = a > np.median(a)
    ref = local_thickness(mask, spacing, border=border, outside=np.nan)
    out = np.full(mask.shape, -1, np.float32)
    monkeypatch.setattr(tb, "SLAB_VOXELS", 3 * 41 * 45)
    monkeypatch.setattr(tb, "SPARSE_SHARE", sparse_share)
    largest = blockwise_thickness(lambda sl: mask[sl], mask.shape, spacing, out, border=border, block=8,
                                  outside=np.nan)
    assert largest == pytest.approx(np.nanmax(ref) / 2, rel=1e-6)
    np.testing.assert_array_equal(out, ref)


def test_a_scan_that_fits_one_block_is_computed_in_memory_with_the_same_values():
    from damselfly.engine.thickness._blocks import blockwise_thickness

    mask = ndimage.gaussian_filter(np.random.default_rng(4).random((20, 22, 24)), 2) > 0.5
    out = np.zeros(mask.shape, np.float32)
    largest = blockwise_thickness(lambda sl: mask[sl], mask.shape, (0.5, 0.5, 0.5), out, outside=np.nan)
    ref = local_thickness(mask, (0.5, 0.5, 0.5), outside=np.nan)
    np.testing.assert_array_equal(out, ref)
    assert largest == pytest.approx(np.nanmax(ref) / 2)
    with pytest.raises(InputError, match="fills the whole image"):
        blockwise_thickness(lambda sl: np.ones((4, 4, 4), bool)[sl], (4, 4, 4), (1, 1, 1), out[:4, :4, :4])


def test_blocks_far_from_the_background_and_a_phase_that_fills_the_scan():
    from damselfly.engine.thickness._blocks import blockwise_thickness

    mask = np.ones((30, 30, 30), bool)
    mask[0] = False  # one face of background: blocks deep inside see none within their first halo
    out = np.zeros(mask.shape, np.float32)
    blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), out, block=6)
    np.testing.assert_array_equal(out, local_thickness(mask))
    with pytest.raises(InputError, match="fills the whole image"):
        blockwise_thickness(lambda sl: np.ones(mask[sl].shape, bool), mask.shape, (1, 1, 1), out, block=6)
    blockwise_thickness(lambda sl: np.ones(mask[sl].shape, bool), mask.shape, (1, 1, 1), out, block=6,
                        border=True)
    np.testing.assert_array_equal(out, local_thickness(np.ones(mask.shape, bool), border=True))


def test_action_measures_a_scan_on_disk_block_by_block(tmp_path, monkeypatch):
    """A memory-mapped mask goes block by block into a disk-backed result, equal to the in-memory one."""
    from scipy import ndimage as ndi

    import damselfly.engine.thickness._blocks as tb
    from damselfly.engine.actions.measure import local_thickness as action

    a = ndi.gaussian_filter(np.random.default_rng(5).random((30, 34, 38)), 2.0)
    np.save(tmp_path / "m.npy", (a > np.median(a)).astype(np.uint8))
    monkeypatch.setattr(tb, "BLOCK", 10)
    monkeypatch.setattr(tb, "CENTRES_WHEN", float("inf"))  # grown by the halo (not passing the centres)
    calls = []
    monkeypatch.setattr(tb, "fill_thickness", lambda *a, f=tb.fill_thickness, **k: calls.append(1) or f(*a, **k))
    vol = Volume(np.load(tmp_path / "m.npy", mmap_mode="r"), spacing=(1.0, 0.5, 0.5))
    res = action(vol)
    assert on_disk(res.data)
    assert len(calls) == 3 * 4 * 4
    np.testing.assert_array_equal(np.asarray(res.data), local_thickness(np.asarray(vol.data) != 0, (1, .5, .5)))


# ------------------------------------------------------------------------------------------------
# bulk material: big balls fill through the counts of unfilled voxels (thickness/_pyramid.py, issue 36)
# ------------------------------------------------------------------------------------------------
def cylinder(n, r, pores=0, seed=0, spacing=(1.0, 1.0, 1.0)):
    """A solid cylinder along z (radius ``r`` in physical units, in-plane), with spherical pores."""
    z, y, x = np.ogrid[:n, :n, :n]
    c = (n - 1) / 2
    s0, s1, s2 = spacing
    mask = np.broadcast_to(((y - c) * s1) ** 2 + ((x - c) * s2) ** 2 <= r * r, (n, n, n)).copy()
    rng = np.random.default_rng(seed)
    for _ in range(pores):
        pz, py, px = rng.integers(0, n, 3)
        pr = rng.uniform(1.5, max(2.0, n / 12))
        mask[((z - pz) * s0) ** 2 + ((y - py) * s1) ** 2 + ((x - px) * s2) ** 2 <= pr * pr] = False
    return mask


@pytest.mark.parametrize("spacing", SPACINGS)
def test_every_ball_through_the_counts_equals_the_brute_force_definition(spacing, monkeypatch):
    """The counts path alone (every ball, however small, descends the pyramid) against the oracle."""
    from damselfly.engine.thickness import _exact as T

    monkeypatch.setattr(T, "MASK_ROWS", 0)
    monkeypatch.setattr(T, "BIG_ROWS", 0)
    rng = np.random.default_rng(int(sum(spacing) * 100))
    for _ in range(4):
        shape = tuple(int(v) for v in rng.integers(9, 15, 3))
        mask = ndimage.gaussian_filter(rng.random(shape), 1.5) > rng.uniform(0.45, 0.55)
        if mask.any() and not mask.all():
            np.testing.assert_array_equal(local_thickness(mask, spacing), oracle(mask, spacing))


@pytest.mark.parametrize("r", [1, 2, 3, 5, 8, 13, 21, 34, 45, 60])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.7)])
def test_solid_cylinders_of_any_radius_are_one_ball_thick(r, spacing):
    """Every voxel of a solid cylinder lies in the ball of the axis voxel of its plane, the largest ball
    there is: the thickness is that ball's diameter everywhere (radii 1 to 60 voxels along the finest
    axis; isotropic, and anisotropic with an elliptic cross-section in voxels)."""
    n = 2 * math.ceil(r / min(spacing[1:])) + 5
    mask = cylinder(n, r * min(spacing[1:]), spacing=spacing)
    out = local_thickness(mask, spacing)
    axis = 2 * ndimage.distance_transform_edt(mask, sampling=spacing).max()
    assert len(np.unique(out[mask])) == 1 and np.all(out[~mask] == 0)
    assert out[mask][0] == pytest.approx(axis, rel=1e-6)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 1.0), (1.0, 0.7, 0.45)])
@pytest.mark.parametrize("pores", [0, 12])
def test_bulk_parts_through_the_counts_equal_the_row_by_row_fill(spacing, pores, monkeypatch):
    """Big balls (radius up to ~30 voxels) with and without pores: the counts path against the row-by-row
    fill, which the oracle tests check on small volumes."""
    from damselfly.engine.thickness import _exact as T

    mask = cylinder(64, 30 * min(spacing), pores=pores, seed=pores, spacing=spacing)
    fast = local_thickness(mask, spacing)
    monkeypatch.setattr(T, "BIG_ROWS", 10 ** 12)  # no ball through the counts
    np.testing.assert_array_equal(fast, local_thickness(mask, spacing))
    assert fast.max() >= 50 * min(spacing)


def test_balls_larger_than_a_block_and_its_halo_block_by_block(monkeypatch):
    """Balls of radius 30 over blocks of 8: each core grows by the largest radius, so no ball is clipped."""
    import damselfly.engine.thickness._blocks as tb
    from damselfly.engine.thickness._blocks import blockwise_thickness

    mask = cylinder(48, 20, pores=4, seed=2)
    ref = local_thickness(mask)
    out = np.zeros(mask.shape, np.float32)
    monkeypatch.setattr(tb, "SLAB_VOXELS", 5 * 48 * 48)
    largest = blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), out, block=8)
    assert largest > 8
    np.testing.assert_array_equal(out, ref)


def test_filling_reports_progress_and_stops_between_chunks_of_balls(monkeypatch):
    from damselfly.engine import Cancelled, progress
    from damselfly.engine.thickness import _exact as T

    monkeypatch.setattr(T, "CHUNK_ROWS", 2000)  # many chunks of balls
    mask = cylinder(40, 15, pores=6, seed=1)
    seen = []
    rep = progress.Reporter(lambda e: seen.append((e.message, e.done, e.total)), interval=0.0)
    with progress.reporting(rep):
        ref = local_thickness(mask)
    fills = [s for s in seen if s[0] == "Filling the balls"]
    assert len(fills) > 3 and fills[-1][1] == fills[-1][2] and fills[1][1] < fills[-1][2]
    assert np.array_equal(ref, local_thickness(mask))  # chunks fill as one call does (and outside a reporter)

    def stop_at_second(e):
        if e.message == "Filling the balls" and e.done:
            rep.cancel()

    rep = progress.Reporter(stop_at_second, interval=0.0)
    with progress.reporting(rep), pytest.raises(Cancelled):
        local_thickness(mask)


def small_centre_blocks(monkeypatch, edge=8, slab=None):
    """Make block by block pass the ball centres between blocks of ``edge`` voxels (slabs of the
    distance transform and of the radii pass of ``slab`` voxels); returns the centres module."""
    import damselfly.engine.thickness._blocks as tb
    import damselfly.engine.thickness._centres as tc

    monkeypatch.setattr(tb, "BLOCK", edge)
    monkeypatch.setattr(tb, "GROWN_VOXELS", edge ** 3)
    monkeypatch.setattr(tb, "CENTRES_WHEN", 0.0)
    monkeypatch.setattr(tb, "CENTRE_BLOCK", edge)
    if slab:
        monkeypatch.setattr(tb, "SLAB_VOXELS", slab)
        monkeypatch.setattr(tc, "SLAB_VOXELS", slab)
    return tc


@pytest.mark.parametrize("spacing, border, smooth", [((1, 1, 1), False, 1.5), ((2.0, 1.0, 1.5), False, 2.5),
                                                     ((1, 1, 1), True, 2.5), ((1.0, 0.7, 0.7), True, 1.5),
                                                     ((0.05, 0.05, 0.05), False, 3.0)])
@pytest.mark.parametrize("dense", [True, False])
def test_block_by_block_through_the_ball_centres_equals_the_whole_volume(spacing, border, smooth, dense,
                                                                           monkeypatch):
    """The ball centres passed between blocks of 8 (levels by a dense code table or, as for huge radii, a
    sorted one): the same values, voxel for voxel, as in memory, and no read of more than a slab."""
    from scipy import ndimage as ndi

    from damselfly.engine.thickness._blocks import blockwise_thickness

    a = ndi.gaussian_filter(np.random.default_rng(3).random((36, 41, 45)), smooth)
    mask = a > np.median(a)
    ref = local_thickness(mask, spacing, border=border, outside=np.nan)
    tc = small_centre_blocks(monkeypatch, 8, 3 * 41 * 45)
    if not dense:
        monkeypatch.setattr(tc, "DENSE_LIMIT", 0)
    filled, reads = [], []
    monkeypatch.setattr(tc, "fill_block", lambda job, i, f=tc.fill_block: filled.append(i) or f(job, i))
    out = np.full(mask.shape, -1, np.float32)
    largest = blockwise_thickness(lambda sl: reads.append(mask[sl].size) or mask[sl], mask.shape, spacing, out,
                                  border=border, outside=np.nan)
    assert largest == pytest.approx(np.nanmax(ref) / 2, rel=1e-6)
    np.testing.assert_array_equal(out, ref)
    assert sorted(filled) == list(range(5 * 6 * 6)) and max(reads) <= 3 * 41 * 45 <= mask.size / 12


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.7)])
def test_a_halo_as_wide_as_the_blocks_passes_the_ball_centres_instead(spacing, monkeypatch):
    """Radius 20 over blocks of 8: grown by the radius, every block would read most of the scan; the
    centres pass between the blocks instead (chosen by itself), with the same values, isotropic and not."""
    import damselfly.engine.thickness._blocks as tb
    import damselfly.engine.thickness._centres as tc
    from damselfly.engine.thickness._blocks import blockwise_thickness

    mask = cylinder(48, 20 * min(spacing), pores=4, seed=3, spacing=spacing)
    ref = local_thickness(mask, spacing)
    cores, filled = [], []
    monkeypatch.setattr(tb, "_core_block", lambda job, core, f=tb._core_block: cores.append(core) or f(job, core))
    monkeypatch.setattr(tc, "fill_block", lambda job, i, f=tc.fill_block: filled.append(i) or f(job, i))
    monkeypatch.setattr(tb, "BLOCK", 8)
    monkeypatch.setattr(tb, "GROWN_VOXELS", 8 ** 3)
    monkeypatch.setattr(tb, "CENTRE_BLOCK", 8)
    out = np.zeros(mask.shape, np.float32)
    largest = blockwise_thickness(lambda sl: mask[sl], mask.shape, spacing, out)
    np.testing.assert_array_equal(out, ref)
    assert cores == [] and len(filled) == 6 ** 3 and largest / min(spacing) > 8  # balls wider than a block


def test_passing_the_centres_reports_each_block_stops_and_leaves_no_scratch(monkeypatch, tmp_path):
    """Progress per block in both passes (the ridge, the fill); Stop between blocks; the centres' scratch
    folder goes with the run, stopped or not."""
    import gc

    from damselfly.engine import Cancelled, progress
    from damselfly.engine.thickness._blocks import blockwise_thickness

    monkeypatch.setenv("DAMSELFLY_SCRATCH", str(tmp_path))
    small_centre_blocks(monkeypatch, 8)
    mask = cylinder(32, 12, pores=2, seed=4)
    seen = []
    rep = progress.Reporter(lambda e: seen.append((e.message, e.done, e.total)), interval=0.0)
    out = np.zeros(mask.shape, np.float32)
    with progress.reporting(rep):
        blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), out)
    np.testing.assert_array_equal(out, local_thickness(mask))
    for step in ("Distance ridge, block by block", "Filling the balls, block by block"):
        done = [d for m, d, t in seen if m == step]
        assert done[-1] == 64 and len(set(done)) > 10  # (4 x 4 x 4 blocks)

    def stop_in_the_fill(e):
        if e.message == "Filling the balls, block by block" and e.done == 3:
            rep.cancel()

    rep = progress.Reporter(stop_in_the_fill, interval=0.0)
    with progress.reporting(rep), pytest.raises(Cancelled):
        blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), np.zeros(mask.shape, np.float32))
    gc.collect()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("damselfly-")]


@pytest.mark.parametrize("centre", [(2, 2, 7), (2, 2, -2), (-1, 3, 2), (7, 7, 7), (2, 8, 3)])
@pytest.mark.parametrize("path", ["rows", "tables", "counts"])
def test_balls_centred_outside_the_array_fill_only_what_they_reach(centre, path, monkeypatch):
    """A block is filled from balls centred beyond it (the centres pass between blocks): each writes
    exactly its voxels inside the array, whichever path fills it, never a voxel of another row."""
    from damselfly.engine.thickness import _exact as T

    monkeypatch.setattr(T, "MASK_ROWS", 4096 if path == "tables" else 0)
    monkeypatch.setattr(T, "BIG_ROWS", 0 if path == "counts" else 10 ** 12)
    mask = np.ones((6, 6, 6), bool)
    mask[4, 1] = False
    centres = tuple(np.array([v], np.int32) for v in (*centre, 0, 0))
    out = T.fill_balls(mask, (1.0, 1.0, 1.0), centres, np.array([9.0]))
    z, y, x = np.indices(mask.shape)
    inside = ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= 9) & mask
    np.testing.assert_array_equal(out, np.where(inside, 6.0, 0.0).astype(np.float32))


# ------------------------------------------------------------------------------------------------
# balls passed over where no unfilled voxel is in reach (thickness/_reach.py, issue 36)
# ------------------------------------------------------------------------------------------------
def snapshots_every_chunk(monkeypatch):
    """Fill in chunks of few balls with a snapshot of the unfilled voxels before every chunk but the first;
    returns a list that receives, per chunk tested, how many balls were passed over and how many tested."""
    from damselfly.engine.thickness import _exact as T
    from damselfly.engine.thickness import _reach as R

    monkeypatch.setattr(R, "PATIENCE", 0.0)
    monkeypatch.setattr(T, "CHUNK_ROWS", 3000)
    skipped = []

    def spy(*a, f=R._reaching):
        f(*a)
        skipped.append((int(np.count_nonzero(~a[-1])), len(a[-1])))

    monkeypatch.setattr(R, "_reaching", spy)
    return skipped


@pytest.mark.parametrize("spacing", SPACINGS)
def test_passing_over_balls_that_reach_no_unfilled_voxel_equals_the_definition(spacing, monkeypatch):
    skipped = snapshots_every_chunk(monkeypatch)
    rng = np.random.default_rng(int(sum(spacing) * 10))
    for _ in range(3):
        mask = ndimage.gaussian_filter(rng.random((14, 15, 16)), 1.5) > rng.uniform(0.45, 0.55)
        if mask.any() and not mask.all():
            np.testing.assert_array_equal(local_thickness(mask, spacing), oracle(mask, spacing))
    assert sum(k for k, _ in skipped) > 0


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.7)])
def test_bulk_parts_pass_over_most_balls_with_the_same_values(spacing, monkeypatch):
    """A cylinder with pores: most balls write nothing and are passed over; the values stay those of the
    fill without snapshots, in memory and block by block through the centres (balls centred beyond a block
    are tested from the block's voxel nearest to them)."""
    from damselfly.engine.thickness._blocks import blockwise_thickness

    mask = cylinder(48, 20 * min(spacing), pores=6, seed=5, spacing=spacing)
    ref = local_thickness(mask, spacing)
    skipped = snapshots_every_chunk(monkeypatch)
    np.testing.assert_array_equal(local_thickness(mask, spacing), ref)
    assert sum(k for k, _ in skipped) > 0.5 * sum(n for _, n in skipped)  # most balls tested
    skipped.clear()
    small_centre_blocks(monkeypatch, 16)
    out = np.zeros(mask.shape, np.float32)
    blockwise_thickness(lambda sl: mask[sl], mask.shape, spacing, out)
    np.testing.assert_array_equal(out, ref)
    assert sum(k for k, _ in skipped) > 0.3 * sum(n for _, n in skipped)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.7), (0.3, 0.7, 1.1)])
@pytest.mark.parametrize("centre", [(3, 4, 5), (-4, 2, 6), (3, 13, -2)])
def test_a_ball_is_live_when_an_unfilled_voxel_is_within_its_radius(spacing, centre):
    """One unfilled voxel ``u``: a ball reaching it exactly (its squared radius is ``|c - u|^2``) is live. One
    falling short of the bound ``|c - p|^2 + |p - u|^2`` (``p``: the centre clamped into the array; for a
    centre inside, ``|c - u|^2`` itself) by a hair is not; so is none once the voxel is filled."""
    from damselfly.engine.thickness import _exact as T
    from damselfly.engine.thickness._reach import Reach

    unfilled = np.zeros((8, 10, 12), bool)
    u = (5, 7, 1)
    unfilled[u] = True
    nxt = np.empty(unfilled.shape, np.int16)
    T._init_next(unfilled, nxt)
    reach = Reach(nxt, spacing, T.distance_offsets)
    reach.filled(1.0)  # time enough for a snapshot

    def d2(a, b):
        return sum(((i - j) * s) ** 2 for i, j, s in zip(a, b, spacing))

    p = tuple(min(max(v, 0), n - 1) for v, n in zip(centre, unfilled.shape))
    bound = d2(centre, p) + d2(p, u)
    assert bound <= d2(centre, u) + 1e-9 and (bound == pytest.approx(d2(centre, u))) == (p == centre)
    r2s = np.array([d2(centre, u), bound - 1e-4, bound * 0.999])
    c = [np.full(3, v, np.int32) for v in centre]
    assert reach.live(*c, np.arange(3, dtype=np.int32), r2s).tolist() == [True, False, False]
    nxt[u] = 2  # now filled: nothing is left, no ball is live
    reach.filled(1.0)
    assert not reach.live(*c, np.zeros(3, np.int32), r2s).any()


def test_centre_files_hold_int32_rows(monkeypatch):
    """The centres pass between blocks as documented: int32 rows of (z, y, x, level, bits), 20 bytes each
    (block corners are numpy integers: the rows once came out int64, twice the bytes on disk)."""
    from damselfly.engine.thickness._blocks import blockwise_thickness

    tc = small_centre_blocks(monkeypatch, 8)
    written = []
    monkeypatch.setattr(tc.CentreFiles, "write",
                        lambda self, s, t, rows, f=tc.CentreFiles.write: written.append(rows) or f(self, s, t, rows))
    mask = cylinder(24, 9, pores=2, seed=1)
    out = np.zeros(mask.shape, np.float32)
    blockwise_thickness(lambda sl: mask[sl], mask.shape, (1, 1, 1), out)
    np.testing.assert_array_equal(out, local_thickness(mask))
    assert written and all(r.dtype == np.int32 and r.ndim == 2 and r.shape[1] == 5 for r in written)
