"""A fast in-process fuzz of the parser, checker and formatter (the long run: benchmarks/bench_fuzz.py)."""

import pytest

from damselfly.macros.diagnostics import MacroError
from damselfly.macros.parser import parse

from .fuzzing import fuzz, probe


def test_probe_catches_what_it_is_meant_to_catch(tmp_path):
    assert probe("version 1\nraw = load(\"x.tif\")\n", tmp_path) is None
    assert probe("raw = load(\n", tmp_path) is None  # a syntax error is a good answer
    with pytest.raises(MacroError) as e:
        parse("version 1\nx = y(", "t.dfm")
    assert e.value.diagnostics[0].line == 2


def test_three_thousand_mutated_macros_get_answers_not_crashes(tmp_path):
    failures = fuzz(3000, seed=13, out_dir=tmp_path)
    assert not failures, "\n\n".join(f"{problem}\n--- macro ---\n{text[:400]}" for text, problem in failures[:3])
