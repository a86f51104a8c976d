"""Macro fuzzing shared by the fast test (``test_fuzz.py``) and the long run (``benchmarks/bench_fuzz.py``).

:func:`mutate` makes a broken variant of a seed macro (characters inserted, deleted or replaced, lines
duplicated, swapped or cut, hostile literals spliced in); :func:`probe` runs the parser, the checker and
the formatter on it and returns what went wrong, if anything, where "wrong" means an exception other
than :class:`~macros.diagnostics.MacroError`, a diagnostic at an impossible position, or a formatted
macro that does not parse back to the same AST.
"""

from __future__ import annotations

import random
from pathlib import Path

from damselfly.macros.checker import check
from damselfly.macros.diagnostics import MacroError
from damselfly.macros.formatter import format_macro
from damselfly.macros.parser import parse

ROOT = Path(__file__).resolve().parents[2]
SEEDS = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("*.dfm"))]
ALPHABET = list('abcxyz_019 \t\n"\\=[](),.#{}+-eE') + ["\x00", "\ufeff", "é", "\ud800", "\r", "\x7f"]
HOSTILE = ["9" * 5000, "[" * 500 + "]" * 500, "1e999", "-0.0", '"{scan.bogus}"', '"{nope}"', '"../x.tif"',
           '"/etc/passwd"', '"~/x.csv"', '"' + "x" * 5000 + '.tif"', '"a\\u0000b"', '"\\ud800"', "none", "true",
           "version 2", "param scan = 1", "= 1", "(", ")", "[", "]", ",", '"', "load(", "save(raw, \".\")"]


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of ``text``."""
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        pos = rng.randrange(len(text) + 1)
        lines = text.split("\n")
        if op == 0:
            text = text[:pos] + rng.choice(ALPHABET) + text[pos:]
        elif op == 1 and text:
            text = text[:pos] + text[pos + 1:]
        elif op == 2 and text:
            text = text[:pos] + rng.choice(ALPHABET) + text[pos + 1:]
        elif op == 3:
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            text = "\n".join(lines)
        elif op == 4 and len(lines) > 1:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif op == 5:
            text = text[:pos] + rng.choice(HOSTILE) + text[pos + rng.randint(0, 8):]
        else:
            text = text[:pos]
    return text


def probe(text: str, out_dir: Path) -> str | None:
    """``None`` if parser, checker and formatter handled ``text`` well; otherwise what went wrong."""
    try:
        macro = parse(text, "fuzz.dfm")
    except MacroError as e:
        return _bad_positions(e.diagnostics, text)
    except Exception as e:  # noqa: BLE001 - the point of fuzzing
        return f"parse raised {type(e).__name__}: {e}"
    try:
        res = check(macro, check_files=False, out_dir=out_dir)
        again = parse(format_macro(macro), "fuzz.dfm")
    except Exception as e:  # noqa: BLE001
        return f"check/format raised {type(e).__name__}: {e}"
    if again.statements != macro.statements:
        return "format then parse changed the macro"
    return _bad_positions(res.diagnostics, text)


def _bad_positions(diagnostics, text: str) -> str | None:
    n_lines = len(text.splitlines()) + 1
    for d in diagnostics:
        if d.line < 0 or d.column < 0 or d.line > n_lines or (d.line and d.column < 1):
            return f"diagnostic at impossible position {d.line}:{d.column}: {d.message}"
    return None


def fuzz(n: int, seed: int, out_dir: Path) -> list[tuple[str, str]]:
    """``n`` mutations from a seeded generator; the ``(text, problem)`` pairs that went wrong."""
    rng = random.Random(seed)
    failures = []
    for _ in range(n):
        text = mutate(rng.choice(SEEDS), rng)
        problem = probe(text, out_dir)
        if problem:
            failures.append((text, problem))
    return failures
