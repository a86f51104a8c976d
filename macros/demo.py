"""``damselfly demo``: the main job on generated phantoms, end to end.

1. A casting phantom and four "painted" slices of its truth (what a user paints in the app).
2. ``examples/casting_porosity.dfm``: calibrate, train a U-Net on the painted slices, segment the whole
   scan, score it and multi-Otsu against the truth, measure the metal's local thickness, save the model.
3. A second phantom (another seed), segmented unattended by ``examples/casting_apply.dfm`` with the
   saved model (``load_model``), and scored.
"""

from __future__ import annotations

from pathlib import Path

from damselfly.engine.actions.processing import evaluate
from damselfly.engine.actions.segmentation import sparse_labels
from damselfly.engine.core import phantoms
from damselfly.engine.core.progress import Reporter
from damselfly.engine.io import _files as io

from .console import print_statement
from .runner import run_file

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DEMO_MACRO = EXAMPLES / "casting_porosity.dfm"
APPLY_MACRO = EXAMPLES / "casting_apply.dfm"


def painted_slices(size: int) -> list[int]:
    """What a user paints: three slices through the part, and one of the air beyond its end (without it,
    the network has never seen air inside the part's outline and calls some of it pore)."""
    return sorted({size // 6, size // 2, 5 * size // 6, size - 1 - size // 32})


def _write_phantom(data: Path, name: str, size: int, seed: int):
    vol, truth = phantoms.casting((size, size, size), seed=seed)
    return io.write_volume(vol, data / f"{name}.tif"), io.write_volume(truth, data / f"{name}_truth.tif"), truth


def run_demo(out: Path, size: int = 128, seed: int = 1, epochs: int | None = None,
             reporter: Reporter | None = None, device: str = "auto"):
    """Run the demo into ``out`` (data in ``out/data``, results in ``out/results`` and ``out/applied``)
    and print the scores and where everything went."""
    for m in (DEMO_MACRO, APPLY_MACRO):
        if not m.exists():
            raise FileNotFoundError(f"the example macro is missing: {m} (run from a source checkout)")

    out = out.resolve()
    data = out / "data"
    print(f"Generating a {size}^3 casting phantom (pores, cupping, rings, streaks, noise) ...", flush=True)
    scan, truth_path, truth = _write_phantom(data, "casting", size, seed)
    zs = painted_slices(size)
    painted = io.write_volume(sparse_labels(truth, slices=zs), data / "casting_painted.tif")
    print(f"  scan:    {scan}\n  painted: {painted}  (slices {zs} of the truth, as a user would paint them)"
          f"\n  truth:   {truth_path}")
    params = {"scan": str(scan), "painted_file": str(painted), "truth_file": str(truth_path)}
    if epochs is not None:
        params["epochs"] = epochs
    print(f"Running {DEMO_MACRO.name} (training on the painted slices) ...", flush=True)
    result = run_file(DEMO_MACRO, params, out / "results", reporter=reporter, on_statement=print_statement,
                      device=device)
    if result.status != "ok":
        raise RuntimeError(f"{DEMO_MACRO.name} {result.status}: {result.record.get('error')}")
    res = out / "results"
    unet = io.read_table(res / "casting_scores.csv")
    otsu = io.read_table(res / "casting_otsu_scores.csv")

    print(f"\nA second scan (seed {seed + 1}), segmented unattended with the saved model ...", flush=True)
    scan2, truth2_path, truth2 = _write_phantom(data, "casting_2", size, seed + 1)
    applied = run_file(APPLY_MACRO, {"scan": str(scan2), "model_file": str(res / "casting.dfmodel")},
                       out / "applied", reporter=reporter, on_statement=print_statement, device=device)
    if applied.status != "ok":
        raise RuntimeError(f"{APPLY_MACRO.name} {applied.status}: {applied.record.get('error')}")
    second = evaluate(io.read_labels(out / "applied" / "casting_2_seg.tif"), truth2)

    print("\nDice per class against the phantom's truth:")
    print(f"  {'class':8s} {'multi-Otsu':>10s} {'U-Net':>8s} {'U-Net, 2nd scan':>16s}")
    for row in unet.rows():
        c = row["class"]
        print(f"  {c:8s} {otsu.row('class', c)['dice']:10.3f} {row['dice']:8.3f} "
              f"{second.row('class', c)['dice']:16.3f}")
    print("(Grey values alone fail on the pores: cupping makes the part's centre as dark as a pore, and blur\n"
          " and noise hide the small ones. The network learns them from four painted slices.)")
    stats = io.read_table(res / "casting_metal_thickness.csv").rows()[0]
    print(f"\nLocal thickness of the metal (U-Net segmentation): mean {stats['mean']:.3f} {truth.unit}, "
          f"median {stats['median']:.3f}, max {stats['max']:.3f} over {stats['voxels']} voxels")
    pores = io.read_table(res / "casting_pores.csv")
    fractions = io.read_table(res / "casting_class_fractions.csv")
    d = sorted(pores["equivalent_diameter"])
    line = f"Pores (U-Net segmentation): {len(d)}, porosity {fractions.row('class', 'pore')['fraction']:.2%}"
    if d:
        big = max(pores.rows(), key=lambda r: r["volume"])
        line += (f"; equivalent diameter median {d[len(d) // 2]:.3f} {truth.unit}, largest "
                 f"{big['equivalent_diameter']:.3f} {truth.unit} at z {big['centroid_z']:.2f}, y {big['centroid_y']:.2f}, "
                 f"x {big['centroid_x']:.2f} (one row per pore in casting_pores.csv; their size distribution "
                 f"in casting_pore_sizes.csv and .png)")
    print(line)
    print(f"\nDone in {result.seconds + applied.seconds:.1f}s. Outputs:")
    for o in result.outputs + applied.outputs:
        print(f"  {o}")
    print(f"  {res / 'run.json'}, {out / 'applied' / 'run.json'}  (run records)")
    return result
