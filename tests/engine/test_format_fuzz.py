"""Mutated files of every format the engine writes and reads: each gives a volume or a clear error,
never an internal error (issue 31). The long run is ``benchmarks/bench_format_fuzz.py``."""

import warnings

from .format_fuzzing import FORMATS, fuzz


def test_two_thousand_mutated_files_get_a_volume_or_a_clear_error(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries warn about the odd headers; errors are what counts
        failures = fuzz(200 * len(FORMATS), seed=7, folder=tmp_path)
    assert failures == [], failures[:5]
