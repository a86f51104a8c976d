"""Mutated files of every format the engine reads: a reader must give a volume or a clear error
(a :class:`~damselfly.engine.core.errors.DamselflyError` naming the file), never another exception — which
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

FORMATS = ("tif", "nrrd", "mhd", "mrc", "h5", "npy", "nii", "ome.zarr", "zarr", "dcm")
WEIRD = [-1, 0, 2 ** 31, 2 ** 63, -(2 ** 40), 1e308, "x", "..", "/etc/passwd", None, [], [[[]]], {}, True, 0.5,
         "1 2", "-5 -5 -5", "LOCAL", "MET_FLOAT", "../../x"]


def originals(folder: Path) -> dict[str, Path]:
    """One valid file of each format in ``folder``."""
    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    vol, _ = phantoms.grains((4, 8, 8), seed=0)
    out = {}
    for fmt in FORMATS:
        p = folder / f"orig_{fmt.replace('.', '_')}.{fmt}"
        if fmt == "dcm":  # a folder of slices, written as a scanner would (the engine writes no DICOM)
            p = folder / "orig_dcm"
            write_series(p, [0.0, 1.0, 2.0, 3.0])
        elif fmt == "zarr":
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
    from damselfly.engine.core.errors import DamselflyError

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


def write_series(folder, positions, uid="1.2.3.4", number=1, orientation=(1, 0, 0, 0, 1, 0), xy=(0.0, 0.0),
                 prefix="s"):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    folder.mkdir(exist_ok=True)
    for i, z in enumerate(positions):
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        meta.MediaStorageSOPInstanceUID = generate_uid()
        name = folder / f"{prefix}{i:03d}.dcm"
        ds = FileDataset(str(name), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.Rows, ds.Columns = 4, 5
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = uid, number, f"series {number}"
        ds.ImageOrientationPatient = list(orientation)
        ds.ImagePositionPatient = [xy[0], xy[1], float(z)]
        ds.PixelSpacing = [0.5, 0.5]
        ds.PixelData = np.full((4, 5), number * 100 + i, np.uint16).tobytes()
        ds.save_as(str(name), enforce_file_format=True)
