"""The long fuzz of the macro parser, checker and formatter (the fast one is tests/macros/test_fuzz.py).

Usage: ``python benchmarks/bench_fuzz.py [N] [SEED]`` (default 26,000 mutated macros). Prints the count,
the rate, and the first failures; exits 1 if any mutation crashed or round-tripped wrong.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.macros.fuzzing import fuzz  # noqa: E402


def main(n: int = 26000, seed: int = 1) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        failures = fuzz(n, seed, Path(tmp))
        seconds = time.perf_counter() - t0
    print(f"{n} mutated macros in {seconds:.1f} s ({n / seconds:.0f}/s): {len(failures)} failures")
    for text, problem in failures[:5]:
        print(f"\n{problem}\n--- macro ---\n{text[:500]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*(int(a) for a in sys.argv[1:3])))
