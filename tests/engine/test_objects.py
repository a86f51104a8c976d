"""Objects (issue 32): the partition equals an in-memory labelling, in memory and slab by slab, with
objects crossing every slab face and corner; measurements equal regionprops and marching cubes."""

import numpy as np
import pytest
from scipy import ndimage

from damselfly.engine import make_classes
from damselfly.engine.actions.objects import class_fractions, label_objects, measure_objects
from damselfly.engine.core.data import Labels, Volume
from damselfly.engine.core.errors import ParameterError
from damselfly.engine.objects import _components as objects

STRUCT = {6: ndimage.generate_binary_structure(3, 1), 18: ndimage.generate_binary_structure(3, 2),
          26: ndimage.generate_binary_structure(3, 3)}


def random_mask(shape, density, seed):
    rng = np.random.default_rng(seed)
    return rng.random(shape) < density


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("slab", [1, 2, 3, 7, 64])
def test_slab_by_slab_equals_scipy_in_scan_order(connectivity, slab):
    """Speckle near the percolation threshold: objects cross every slab face, edge and corner; ids equal
    scipy.ndimage.label's (which numbers objects in scan order), voxel for voxel."""
    m = random_mask((23, 17, 19), 0.25, seed=connectivity + slab)
    out = np.zeros(m.shape, np.uint32)
    n = objects.label(lambda a, b: m[a:b], m.shape, out, connectivity, slab=slab)
    ref, n_ref = ndimage.label(m, STRUCT[connectivity])
    assert n == n_ref and np.array_equal(out, ref)


def test_only_corner_and_edge_contacts_across_a_slab_face():
    m = np.zeros((4, 5, 5), bool)
    m[1, 2, 2] = m[2, 3, 3] = True  # a corner across the face between z = 1 and z = 2
    m[1, 0, 0] = m[2, 1, 0] = True  # an edge across it
    out = np.zeros(m.shape, np.uint32)
    assert objects.label(lambda a, b: m[a:b], m.shape, out, 26, slab=2) == 2
    assert objects.label(lambda a, b: m[a:b], m.shape, out, 18, slab=2) == 3
    assert objects.label(lambda a, b: m[a:b], m.shape, out, 6, slab=2) == 4


@pytest.fixture()
def seg():
    """Pores in a metal block, with spacing: class 2 = metal, class 3 = pore."""
    data = np.full((40, 30, 36), 2, np.uint8)
    zz, yy, xx = np.mgrid[:40, :30, :36]
    for (cz, cy, cx), r in (((8, 8, 8), 4), ((25, 15, 20), 6), ((35, 25, 30), 3), ((0, 0, 0), 3)):
        data[(zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 3
    data[20:22, 2:4, 30:33] = 1  # a speck of air
    return Labels(data, spacing=(0.5, 0.25, 0.25), origin=(10.0, 0.0, 5.0), unit="mm",
                  classes=make_classes(["air", "metal", "pore"]), name="seg")


def test_label_objects_of_a_class_min_voxels_and_clear_errors(seg):
    pores = label_objects(seg, class_="pore")
    assert pores.metadata["objects"] == 4 and pores.data.dtype == np.uint32 and pores.unit == "mm"
    assert int(pores.data[0, 0, 0]) == 1 and int(pores.data[8, 8, 8]) == 2  # scan order
    big = label_objects(seg, class_="pore", min_voxels=200)
    assert big.metadata["objects"] == 2 and set(np.unique(big.data)) == {0, 1, 2}
    both = label_objects(seg, classes=["air", "pore"])
    assert both.metadata["objects"] == 5
    with pytest.raises(ParameterError, match="name the class"):
        label_objects(seg)


def test_measurements_equal_regionprops_and_marching_cubes(seg):
    from skimage.measure import marching_cubes, mesh_surface_area, regionprops

    pores = label_objects(seg, class_="pore")
    grey = Volume(np.asarray(seg.data, np.float32) * 10 + np.arange(36, dtype=np.float32), spacing=seg.spacing,
                  origin=seg.origin, unit="mm", name="grey")
    t = measure_objects(pores, image=grey)
    rows = t.rows()
    props = regionprops(np.asarray(pores.data), intensity_image=np.asarray(grey.data), spacing=seg.spacing)
    assert [r["id"] for r in rows] == [p.label for p in props]
    for r, p in zip(rows, props):
        assert r["voxels"] == p.num_pixels and r["volume"] == pytest.approx(p.area)
        assert r["equivalent_diameter"] == pytest.approx(p.equivalent_diameter_area)
        assert [r["centroid_z"], r["centroid_y"], r["centroid_x"]] == pytest.approx(
            np.asarray(p.centroid) + np.asarray(seg.origin))
        assert [r[f"bbox_{a}"] for a in ("z0", "y0", "x0", "z1", "y1", "x1")] == list(p.bbox)
        assert r["axis_major_length"] == pytest.approx(p.axis_major_length, rel=1e-6)
        assert r["axis_minor_length"] == pytest.approx(p.axis_minor_length, rel=1e-6, abs=1e-9)
        assert r["mean_grey"] == pytest.approx(p.intensity_mean) and r["max_grey"] == p.intensity_max
        m = np.pad(np.asarray(pores.data) == p.label, 1).astype(np.float32)
        v, f, _, _ = marching_cubes(m, 0.5, spacing=seg.spacing)
        assert r["surface_area"] == pytest.approx(mesh_surface_area(v, f))
    assert [r["touches_border"] for r in rows] == [True, False, False, False]
    ball = rows[2]  # radius 6 voxels: a ball of the grid, sphericity near 1
    assert 0.8 < ball["sphericity"] <= 1.05 and t.metadata["unit"] == "mm"


def test_measuring_slab_by_slab_equals_one_slab(seg):
    pores = label_objects(seg, class_="pore")
    whole = objects.measure(pores.data, 4, seg.spacing, seg.origin, slab=1000)
    thin = objects.measure(pores.data, 4, seg.spacing, seg.origin, slab=1)
    for k in whole:
        np.testing.assert_allclose(np.asarray(thin[k], float), np.asarray(whole[k], float), rtol=1e-9)


def test_class_fractions_give_the_porosity(seg):
    t = class_fractions(seg)
    by = {r["class"]: r for r in t.rows()}
    d = np.asarray(seg.data)
    assert by["pore"]["voxels"] == int((d == 3).sum()) and by["pore"]["fraction"] == pytest.approx((d == 3).mean())
    assert by["metal"]["volume"] == pytest.approx((d == 2).sum() * 0.5 * 0.25 * 0.25)
    assert sum(r["fraction"] for r in t.rows()) == pytest.approx(1.0) and by["air"]["unit"] == "mm"


def test_touching_balls_separate_into_the_right_count():
    from damselfly.engine.actions.objects import separate_objects

    zz, yy, xx = np.mgrid[:30, :40, :60]
    m = np.zeros(zz.shape, bool)
    for cx in (14, 27, 40):  # three balls of radius 7 in a row, overlapping by a neck
        m |= (zz - 15) ** 2 + (yy - 20) ** 2 + (xx - cx) ** 2 <= 49
    seg = Labels(m.astype(np.uint8) + 1, classes=make_classes(["bg", "grain"]), name="g")
    joined = label_objects(seg, class_="grain")
    assert joined.metadata["objects"] == 1
    split = separate_objects(joined)
    assert split.metadata["objects"] == 3
    assert separate_objects(joined, markers="peak_local_max", min_distance=6).metadata["objects"] == 3
    d = np.asarray(split.data)
    assert [int(d[15, 20, x]) for x in (14, 27, 40)] == [1, 2, 3]  # each ball its own id, in scan order
    assert set(np.unique(d[~m])) == {0} and (d[m] > 0).all()  # nothing lost, nothing added


def test_separating_a_scan_on_disk_equals_separating_it_in_memory(tmp_path):
    from damselfly.engine.actions.objects import separate_objects
    from damselfly.engine.io import _files as io

    zz, yy, xx = np.mgrid[:90, :30, :30]
    m = np.zeros(zz.shape, bool)
    for cz in (10, 40, 52, 80):  # pairs of touching balls down the scan: each group of planes has some
        for cx in (9, 20):
            m |= (zz - cz) ** 2 + (yy - 15) ** 2 + (xx - cx) ** 2 <= 36
    seg = Labels(m.astype(np.uint8) + 1, classes=make_classes(["bg", "grain"]), name="g")
    io.write_volume(label_objects(seg, class_="grain"), tmp_path / "objects.ome.zarr")
    lazy = io.read_labels(tmp_path / "objects.ome.zarr")
    assert not isinstance(lazy.data, np.ndarray)
    on_disk = separate_objects(lazy)
    in_memory = separate_objects(label_objects(seg, class_="grain"))
    assert not isinstance(on_disk.data, np.ndarray)  # chunked scratch storage
    assert on_disk.metadata["objects"] == in_memory.metadata["objects"] == 8
    assert np.array_equal(np.asarray(on_disk.data[:]), np.asarray(in_memory.data))


@pytest.mark.parametrize("markers", ["h_maxima", "peak_local_max"])
def test_separating_group_by_group_equals_the_whole_scan(markers):
    """Pairs of touching balls at many depths (some crossing every group of starting planes), one object
    as deep as the scan, and specks too small for a marker (which stay whole): split in groups of 3 planes
    with anisotropic spacing, the pieces equal splitting the whole scan at once, ids included."""
    from damselfly.engine.objects import _separate as separate

    rng = np.random.default_rng(1)
    zz, yy, xx = np.mgrid[:48, :40, :40]
    m = np.zeros(zz.shape, bool)
    for _ in range(9):
        c = rng.integers(6, 34, 3) + [4, 0, 0]
        for dx in (-4, 4):
            m |= (zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2] - dx) ** 2 <= 25
    m[:, 1:3, 1:3] = True  # a rod through the whole scan
    m[2, 37, 37] = m[45, 37, 2] = True  # specks
    ids, n = objects.label_whole(m)
    args = ((0.8, 0.5, 0.5), 1.0, 0.5, 2.0, markers, 26)
    whole = np.zeros(m.shape, np.uint32)
    k_whole = separate.separate(ids, n, whole, *args, group_depth=1000)
    grouped = np.zeros(m.shape, np.uint32)
    k_grouped = separate.separate(_OnDisk(ids), n, grouped, *args, group_depth=3)
    assert k_grouped == k_whole > n and np.array_equal(grouped, whole)
    assert (whole[m] > 0).all() and (whole[~m] == 0).all()  # the specks and the rod kept


class _OnDisk:
    """An array that is not an ndarray (as a Zarr array is): read by slicing only."""

    def __init__(self, a):
        self.a, self.shape, self.dtype = a, a.shape, a.dtype

    def __getitem__(self, key):
        return self.a[key]


def test_filter_objects_by_volume_border_and_largest(seg):
    from damselfly.engine.actions.objects import filter_objects

    pores = label_objects(seg, class_="pore")
    vols = {r["id"]: r["volume"] for r in measure_objects(pores).rows()}
    inside = filter_objects(pores, exclude_border=True)
    assert inside.metadata["objects"] == 3 and int(inside.data[0, 0, 0]) == 0
    big = filter_objects(pores, min_volume=vols[2] + 1e-9)  # only the ball of radius 6 (#3) is larger than #2
    assert big.metadata["objects"] == 1 and int(big.data[25, 15, 20]) == 1
    top2 = filter_objects(pores, largest=2)
    kept = sorted(vols, key=lambda i: -vols[i])[:2]
    assert top2.metadata["objects"] == 2
    assert {int(np.asarray(pores.data)[np.asarray(top2.data) == k][0]) for k in (1, 2)} == set(kept)
    assert filter_objects(pores, max_volume=0.0).metadata["objects"] == 0


def test_orientation_and_thickness_per_object():
    """An ellipsoid tilted in the y-x plane: its major axis points along the tilt; a thickness map's
    mean and max per object are those of its voxels."""
    zz, yy, xx = np.mgrid[:20, :40, :40].astype(float)
    u = ((yy - 20) + (xx - 20)) / np.sqrt(2)  # along (y, x) = (1, 1)/sqrt(2)
    v = ((yy - 20) - (xx - 20)) / np.sqrt(2)
    inside = (u / 15) ** 2 + (v / 4) ** 2 + ((zz - 10) / 4) ** 2 <= 1
    lab = Labels(inside.astype(np.uint8) + 1, classes=make_classes(["bg", "rod"]), name="rod")
    ids = label_objects(lab, class_="rod")
    thick = Volume(np.where(inside, xx, 0).astype(np.float32), name="t")
    row = measure_objects(ids, thickness=thick).rows()[0]
    direction = [row["orientation_z"], row["orientation_y"], row["orientation_x"]]
    assert direction == pytest.approx([0, 1 / np.sqrt(2), 1 / np.sqrt(2)], abs=1e-6)
    assert row["mean_thickness"] == pytest.approx(xx[inside].mean()) and row["max_thickness"] == xx[inside].max()
    other = Volume(np.zeros((20, 40, 41), np.float32))
    with pytest.raises(Exception, match="shape|grid|geometry"):
        measure_objects(ids, thickness=other)


@pytest.mark.parametrize("slab", [2, 64])
def test_areas_of_touching_objects_equal_marching_cubes_per_object(slab):
    """Objects that touch (split grains, 6-connected labels): each object's area is that of marching
    cubes on its own mask, cubes shared by several objects included."""
    from skimage.measure import marching_cubes, mesh_surface_area

    ids = np.zeros((12, 14, 16), np.uint32)
    ids[2:8, 2:9, 2:8] = 1
    ids[2:8, 2:9, 8:13] = 2  # shares a face with 1
    ids[8:11, 9:12, 13:15] = 3  # an edge and a corner with 2
    ids[4:6, 4:6, 4:6] = 4  # inside 1
    area = objects.surface_areas(ids, 4, (0.5, 1.0, 2.0), slab=slab)
    for i in range(1, 5):
        v, f, _, _ = marching_cubes(np.pad(ids == i, 1).astype(np.float32), 0.5, spacing=(0.5, 1.0, 2.0))
        assert area[i] == pytest.approx(mesh_surface_area(v, f)), i
