"""How fast the phantoms are, as a ratio to a reference done in the same run.

Target (issue 2): a 128^3 casting phantom "in a couple of seconds". The reference is one 3-D Gaussian
blur (sigma 1) of a float32 volume of the same size: the phantom does that blur plus geometry, artefacts
and noise, so a ratio of a few (< 10) means the generator is dominated by unavoidable array work.

    .venv/bin/python benchmarks/bench_phantoms.py [size]
"""

import sys
import time

import numpy as np
from scipy import ndimage

from damselfly.engine.core import phantoms


def best_of(fn, n=3):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(size=128):
    shape = (size, size, size)
    ref_data = np.random.default_rng(0).random(shape, dtype=np.float32)
    ref = best_of(lambda: ndimage.gaussian_filter(ref_data, 1.0))
    print(f"reference: gaussian_filter {size}^3 float32: {ref:.3f} s")
    for name, fn in [("casting", phantoms.casting), ("fibre_composite", phantoms.fibre_composite),
                     ("layered", phantoms.layered)]:
        t = best_of(lambda fn=fn: fn(shape, seed=0))
        print(f"{name:16s} {size}^3: {t:.3f} s  = {t / ref:.1f} x reference")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 128)
