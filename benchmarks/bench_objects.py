"""Objects: label_objects against cc3d alone, out of core, measure_objects, and the real nuclei.

    .venv/bin/python benchmarks/bench_objects.py [--size N] [--data ../shared/data] [--repeat R]

``--size`` past 256 tiles the 256³ blobs (their field wraps around, so objects cross the tiles' faces).

1. In memory: ``label_objects`` of an N³ volume of blobs (a smoothed random field thresholded at 30 %)
   against ``cc3d.connected_components`` of the same mask, in the same run (R repeats: the spread).
2. Out of core: the same volume as an OME-Zarr, loaded lazily and labelled slab by slab into scratch in
   a fresh process (its own peak RSS); the ids compared with cc3d's in memory voxel for voxel (both
   number the objects in scan order) through a SHA-256 of each.
3. ``measure_objects`` of the objects of (1), and of about 100,000 single-voxel objects in a 256³ scan.
4. ``--scale N`` instead: end to end at N³ (e.g. 2048) out of core: the tiled blobs written to an
   OME-Zarr through a memory-mapped file (no N³ array in memory), then in a fresh process
   ``label_objects`` -> ``measure_objects`` -> ``filter_objects``, each timed, with that process's peak
   RSS (VmHWM). Needs about N³/8 bytes of disk for the scan and the object ids (compressed) in ``--work``.
5. ``--data``: the real nuclei (``nuclei_labels.tif``, 20 instances): how many objects ``label_objects``
   finds in ``labels > 0`` (touching nuclei merge) and ``separate_objects`` after it, against the 20,
   with their median volumes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from damselfly.engine import make_classes
from damselfly.engine.actions.objects import label_objects, measure_objects, separate_objects
from damselfly.engine.core.data import Labels
from damselfly.engine.io import _files as io


def blobs(n: int, seed: int = 0) -> np.ndarray:
    if n > 256 and n % 256 == 0:
        return np.tile(blobs(256, seed), (n // 256,) * 3)
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.standard_normal((n, n, n)).astype(np.float32), 3, mode="wrap")
    return (f > np.quantile(f[::4, ::4, ::4], 0.7)).astype(np.uint8) + 1


def matched(truth: np.ndarray, found: np.ndarray, iou: float = 0.5) -> int:
    """How many objects of ``truth`` have an object in ``found`` overlapping them at IoU >= ``iou``
    (at most one can: the matching is one to one above 0.5)."""
    both = (truth > 0) & (found > 0)
    pairs, inter = np.unique(np.stack([truth[both], found[both]]), axis=1, return_counts=True)
    size_t, size_f = np.bincount(truth.ravel()), np.bincount(found.ravel())
    union = size_t[pairs[0]] + size_f[pairs[1]] - inter
    return len(np.unique(pairs[0][inter / union >= iou]))


def digest(ids) -> str:
    h = hashlib.sha256()
    for z0 in range(0, ids.shape[0], 64):
        h.update(np.ascontiguousarray(ids[z0:z0 + 64], dtype=np.uint32).tobytes())
    return h.hexdigest()


def out_of_core(path: str) -> None:
    """In a fresh process: label the OME-Zarr at ``path`` lazily; print seconds, digest and peak RSS."""
    lazy = io.read_labels(Path(path))
    t0 = time.perf_counter()
    out = label_objects(lazy, class_="solid")
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds, "digest": digest(out.data), "rss_mib": own_peak_mib(),
                      "objects": out.metadata["objects"]}))


def own_peak_mib() -> float:
    """This process's peak RSS (VmHWM, which unlike ``ru_maxrss`` does not carry a parent's peak over the
    ``fork`` and ``exec`` that started it), as ``bench_inference`` reads it."""
    from bench_inference import _hwm_kib

    return _hwm_kib() / 1024


def scale(n: int, work: str | None) -> None:
    """The tiled blobs at n³ as an OME-Zarr (written from a memory-mapped file), then label, measure and
    filter out of core in a fresh process."""
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        t0 = time.perf_counter()
        tile = blobs(256)
        mm = np.lib.format.open_memmap(Path(tmp) / "blobs.npy", mode="w+", dtype=np.uint8, shape=(n, n, n))
        for z in range(0, n, 256):
            mm[z:z + 256] = np.tile(tile, (1, n // 256, n // 256))
        mm.flush()
        del mm
        data = np.load(Path(tmp) / "blobs.npy", mmap_mode="r")
        io.write_volume(Labels(data, classes=make_classes(["void", "solid"]), name="blobs"), Path(tmp) / "b.ome.zarr")
        (Path(tmp) / "blobs.npy").unlink()
        print(f"{n}^3 blobs written as OME-Zarr in {time.perf_counter() - t0:.0f} s", flush=True)
        subprocess.run([sys.executable, __file__, "--end-to-end", str(Path(tmp) / "b.ome.zarr")], check=True)


def end_to_end(path: str) -> None:
    from damselfly.engine.actions.objects import filter_objects

    lazy = io.read_labels(Path(path))
    steps = [("label_objects", lambda _: label_objects(lazy, class_="solid")), ("measure_objects", measure_objects),
             ("filter_objects", lambda o: filter_objects(o, min_volume=100, exclude_border=True))]
    objs = None
    for name, fn in steps:
        t0 = time.perf_counter()
        res = fn(objs)
        seconds = time.perf_counter() - t0
        count = res.metadata.get("objects") if hasattr(res, "data") else len(res)
        print(f"  {name}: {seconds:.0f} s, {count:,} objects; peak RSS so far {own_peak_mib():.0f} MiB", flush=True)
        if name == "label_objects":
            objs = res


def main() -> None:
    import cc3d

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", help="../shared/data (the real nuclei)")
    ap.add_argument("--out-of-core", help=argparse.SUPPRESS)
    ap.add_argument("--scale", type=int, help="end to end at this size (a multiple of 256), out of core")
    ap.add_argument("--work", default=None, help="--scale: a folder for the scan (default: the temp folder)")
    ap.add_argument("--end-to-end", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.out_of_core:
        return out_of_core(args.out_of_core)
    if args.end_to_end:
        return end_to_end(args.end_to_end)
    if args.scale:
        return scale(args.scale, args.work)
    n = args.size
    seg = Labels(blobs(n), classes=make_classes(["void", "solid"]), name="blobs")
    mask = np.asarray(seg.data) == 2
    ref = cc3d.connected_components(mask, connectivity=26)  # a first call: imports, page faults
    ratios = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref = cc3d.connected_components(mask, connectivity=26)
        t1 = time.perf_counter()
        objs = label_objects(seg, class_="solid")
        t2 = time.perf_counter()
        ratios.append((t2 - t1) / (t1 - t0))
        t_cc3d = t1 - t0
    count = objs.metadata["objects"]
    print(f"{n}^3 blobs, {count} objects: label_objects / cc3d alone in memory = "
          f"{min(ratios):.2f}-{max(ratios):.2f} x ({t_cc3d:.2f} s for cc3d); "
          f"same ids: {np.array_equal(np.asarray(objs.data), ref)}")
    del mask
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "blobs.ome.zarr"
        io.write_volume(seg, path)
        run = subprocess.run([sys.executable, __file__, "--out-of-core", str(path)], check=True,
                             capture_output=True, text=True)
        r = json.loads(run.stdout.strip().splitlines()[-1])
        print(f"out of core (OME-Zarr in, scratch out, a fresh process): {r['seconds']:.2f} s = "
              f"{r['seconds'] / t_cc3d:.2f} x cc3d in memory; same ids: {r['digest'] == digest(ref)}; "
              f"peak RSS {r['rss_mib']:.0f} MiB")
    del ref
    t0 = time.perf_counter()
    table = measure_objects(objs)
    seconds = time.perf_counter() - t0
    print(f"measure_objects: {count} objects in {seconds:.2f} s ({1000 * seconds / max(count, 1):.2f} s per 1,000)")
    del table
    rng = np.random.default_rng(0)
    specks = np.ones((256, 256, 256), np.uint8)
    at = rng.integers(0, 128, (3, 100_000)) * 2  # single voxels on the even grid: never touching
    specks[at[0], at[1], at[2]] = 2
    many = label_objects(Labels(specks, classes=make_classes(["bg", "speck"])), class_="speck")
    t0 = time.perf_counter()
    measure_objects(many)
    print(f"measure_objects: {many.metadata['objects']:,} objects (256^3) in {time.perf_counter() - t0:.2f} s")
    if args.data:
        inst = np.asarray(io.read_volume(Path(args.data) / "nuclei_labels.tif").data)
        lab = Labels((inst > 0).astype(np.uint8) + 1, classes=make_classes(["background", "nucleus"]), name="n")
        given = np.bincount(inst.ravel())[1:]
        given = given[given > 0]
        merged = label_objects(lab, class_="nucleus")
        vols = np.asarray(measure_objects(merged).columns["voxels"])
        print(f"nuclei: {len(given)} given instances (median {np.median(given):.0f} voxels); label_objects finds "
              f"{merged.metadata['objects']} (median {np.median(vols):.0f} voxels: touching nuclei merge)")
        for kw in ({}, {"h": 3.0}, {"smooth": 0.0}, {"markers": "peak_local_max", "min_distance": 15.0}):
            split = separate_objects(merged, **kw)
            sv = np.asarray(measure_objects(split).columns["voxels"])
            print(f"  separate_objects({kw or 'defaults'}): {split.metadata['objects']} objects, median "
                  f"{np.median(sv):.0f} voxels; given nuclei matched at IoU >= 0.5: "
                  f"{matched(inst, np.asarray(split.data))} of {len(given)}")


if __name__ == "__main__":
    main()
