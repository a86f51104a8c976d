"""Mutated files of every format the engine reads: a reader must give a volume or a clear error
(a :class:`~damselfly.engine.errors.DamselflyError` naming the file), never another exception — which
the command line reports as "internal error". Used by ``tests/engine/test_format_fuzz.py`` (a few
thousand in CI) and ``benchmarks/bench_format_fuzz.py`` (a longer run).

Each format is written once, valid, by the engine's own writer (small: 4 x 8 x 8); a mutation then
changes its header or metadata: random bytes overwritten in the first 512 bytes of a binary file (the
header), or a JSON/text value replaced by another kind of value (a huge number, a negative one, a string,
a nested list, null) in a text header or a Zarr/OME metadata document.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np

FORMATS = ("tif", "nrrd", "mhd", "mrc", "h5", "npy", "nii", "ome.zarr", "zarr")
WEIRD = [-1, 0, 2 ** 31, 2 ** 63, -(2 ** 40), 1e308, "x", "..", "/etc/passwd", None, [], [[[]]], {}, True, 0.5,
         "1 2", "-5 -5 -5", "LOCAL", "MET_FLOAT", "../../x"]


def originals(folder: Path) -> dict[str, Path]:
    """One valid file of each format in ``folder``."""
    from damselfly.engine import io, phantoms

    vol, _ = phantoms.grains((4, 8, 8), seed=0)
    out = {}
    for fmt in FORMATS:
        p = folder / f"orig_{fmt.replace('.', '_')}.{fmt}"
        if fmt == "zarr":
            import zarr

            z = zarr.create_array(str(p), shape=vol.shape, chunks=(2, 8, 8), dtype="u2", zarr_format=2)
            z[:] = np.asarray(vol.data)
        else:
            io.write_volume(vol, p)
        out[fmt] = p
    return out


def _text_files(p: Path) -> list[Path]:
    """The metadata files of a format to mutate as text: JSON documents and text headers."""
    if p.is_dir():
        return sorted(q for q in p.rglob("*") if q.is_file() and q.name in (".zarray", ".zattrs", ".zgroup",
                                                                                "zarr.json"))
    if p.suffix == ".mhd":
        return [p]
    return []


def mutate(src: Path, dst: Path, rng: random.Random) -> None:
    """A mutated copy of ``src`` (a file, or a folder with its data files beside it) at ``dst``."""
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy(src, dst)
        for side in src.parent.glob(src.stem + ".raw"):  # MetaImage's data file keeps its name
            if not (dst.parent / side.name).exists():
                shutil.copy(side, dst.parent / side.name)
    texts = _text_files(dst)
    if texts and rng.random() < 0.8:
        _mutate_text(rng.choice(texts), rng)
        return
    target = dst if dst.is_file() else rng.choice([q for q in dst.rglob("*") if q.is_file()])
    data = bytearray(target.read_bytes())
    for _ in range(rng.randint(1, 8)):
        if not data:
            break
        i = rng.randrange(min(len(data), 512))
        data[i] = rng.randrange(256)
    if rng.random() < 0.2:
        data = data[:rng.randrange(len(data) + 1)]  # truncated
    target.write_bytes(bytes(data))


def _mutate_text(p: Path, rng: random.Random) -> None:
    text = p.read_text(encoding="latin-1")
    try:
        doc = json.loads(text)
    except ValueError:  # a text header: one value replaced
        lines = text.splitlines()
        i = rng.randrange(len(lines))
        if "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            lines[i] = f"{key}= {rng.choice(WEIRD)}"
        p.write_text("\n".join(lines) + "\n", encoding="latin-1")
        return
    p.write_text(json.dumps(_mutate_json(doc, rng)), encoding="utf-8")


def _mutate_json(doc, rng: random.Random):
    """``doc`` with one value somewhere inside replaced by a weird one."""
    if isinstance(doc, dict) and doc:
        k = rng.choice(list(doc))
        doc[k] = _mutate_json(doc[k], rng) if rng.random() < 0.7 else rng.choice(WEIRD)
        return doc
    if isinstance(doc, list) and doc:
        i = rng.randrange(len(doc))
        doc[i] = _mutate_json(doc[i], rng) if rng.random() < 0.7 else rng.choice(WEIRD)
        return doc
    return rng.choice(WEIRD)


def probe(path: Path) -> str | None:
    """None if loading ``path`` and reading all its voxels, as a macro does (``load``, then ``calibrate``),
    gives a volume or a clear error; else what went wrong."""
    from damselfly.engine import Session, Settings
    from damselfly.engine.errors import DamselflyError

    s = Session(Settings(base_dir=path.parent, out_dir=path.parent / "out"))
    try:
        vol = s.run("load", str(path))
        s.run("calibrate", vol)
    except DamselflyError:
        return None
    except Exception as e:  # noqa: BLE001 - what the fuzzer looks for
        return f"{type(e).__name__}: {e}"
    return None


def fuzz(n: int, seed: int, folder: Path) -> list[tuple[str, str]]:
    """``n`` mutations spread over the formats; the (format, problem) of each that was not clear."""
    rng = random.Random(seed)
    (folder / "orig").mkdir()
    orig = originals(folder / "orig")
    failures = []
    for k in range(n):
        fmt = FORMATS[k % len(FORMATS)]
        case = folder / f"case{k}"
        case.mkdir()
        dst = case / orig[fmt].name
        mutate(orig[fmt], dst, rng)
        problem = probe(dst)
        if problem:
            failures.append((f"{fmt} (case {k}, seed {seed})", problem))
        shutil.rmtree(case, ignore_errors=True)
    return failures
