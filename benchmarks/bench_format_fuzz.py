"""The long fuzz of the format readers (the fast one is tests/engine/test_format_fuzz.py).

Usage: ``python benchmarks/bench_format_fuzz.py [N] [SEED]`` (default 20,000 mutated files, 2,000 per
format: TIFF, NRRD, MetaImage, MRC, HDF5, NPY, NIfTI, OME-Zarr, Zarr, DICOM series). Each is loaded and all its voxels
read as a macro would (``load``, then ``calibrate``); prints the count, the rate and the first failures
(anything but a volume or a clear error); exits 1 if there is any.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.engine.format_fuzzing import fuzz  # noqa: E402


def main(n: int = 20000, seed: int = 1) -> int:
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        failures = fuzz(n, seed, Path(tmp))
        seconds = time.perf_counter() - t0
    print(f"{n} mutated files in {seconds:.1f} s ({n / seconds:.0f}/s): {len(failures)} failures")
    for where, problem in failures[:10]:
        print(f"  {where}: {problem}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
