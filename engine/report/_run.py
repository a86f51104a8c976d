"""The report of one run: key results, pictures, movies, plots, tables, files and provenance.

:func:`run_report_html` builds the page from a run record (``run.json``: see ``macros/runrecord.py``)
and the files it lists; :func:`write_run_report` writes it atomically. A folder without a record (an
app session) is reported from the files in it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.data import Table
from . import _plots as plots
from ._page import (
    IMAGES,
    MOVIES,
    TABLES,
    esc,
    fmt,
    fraction_rows,
    image_html,
    movie_html,
    page,
    plot_html,
    relative,
    section,
    selected,
    size_column,
    table_html,
    table_numbers,
    thickness_values,
)

#: the run record's file in an output folder (written by ``macros/runrecord.py``)
RUN_RECORD = "run.json"


def read_record(out_dir) -> dict | None:
    """The run record in ``out_dir``, or ``None`` if there is none or it is unreadable."""
    try:
        rec = json.loads((Path(out_dir) / RUN_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def read_run_record(out_dir: Path) -> dict:
    """The run record of ``out_dir`` (``{}`` when there is none, e.g. an app session's folder)."""
    rec = read_record(out_dir)
    return {} if rec is None else rec


def outputs_of(out_dir: Path, record: dict, page_path: Path) -> list[Path]:
    """The files a report shows: the record's outputs that exist, else the files in ``out_dir``."""
    listed = record.get("outputs")
    if listed is None:
        listed = [str(p) for p in sorted(Path(out_dir).iterdir())
                  if not p.name.startswith(".") and p.name != RUN_RECORD]
    found = []
    for o in listed:
        p = Path(o) if Path(o).is_absolute() else Path(out_dir) / o
        if p.exists() and p.resolve() != Path(page_path).resolve():
            found.append(p)
    return found


def run_report_html(page_path: Path, out_dir: Path, record: dict, title: str | None = None,
                    include: list[str] | None = None) -> str:
    """The report page of the run in ``out_dir`` (``record``: its run record), to be written at
    ``page_path`` (links are relative to it); ``include``: file-name patterns of the outputs to show."""
    page_dir = Path(page_path).parent
    files = [Path(p) for p in selected([str(p) for p in outputs_of(out_dir, record, page_path)], include)]
    info = record.get("output_info", {})
    tables = {p: _read_table(p) for p in files if p.suffix.lower() in TABLES}
    tables = {p: t for p, t in tables.items() if t is not None}
    unit = {p: (info.get(str(p)) or {}).get("unit", "") for p in files}
    sections = [
        section("Key results", _key_results(tables, unit)),
        section("Pictures", _grid(image_html(p, page_dir) for p in files if p.suffix.lower() in IMAGES)),
        section("Movies", _grid(movie_html(p, page_dir) for p in files if p.suffix.lower() in MOVIES)),
        section("Plots", _grid(_plots(files, tables, info, unit))),
        section("Tables", "".join(f"<h3>{esc(p.name)}</h3>" + table_html(t, unit[p], link=p.name)
                                  for p, t in tables.items() if len(t) > 1)),
        section("Files", _files(files, record, page_dir)),
        section("Provenance", _provenance(record)),
    ]
    name = Path(record.get("macro") or out_dir).name
    title = title or f"Damselfly report: {name}"
    status = record.get("status")
    sub = " · ".join(x for x in (
        ("written during the run" if status == "running" else
         f"status <b class=\"{'ok' if status == 'ok' else 'bad'}\">{esc(status)}</b>") if status else "",
        f"started {esc(record['started'])}" if record.get("started") else "",
        f"device {esc(record.get('settings', {}).get('device'))}" if record.get("settings") else "",
        f"output folder <code>{esc(Path(out_dir).name)}</code>") if x)
    return page(title, sections, sub)


def write_run_report(path: str | os.PathLike, out_dir: str | os.PathLike, record: dict | None = None, title: str | None = None,
                     include: list[str] | None = None, overwrite: bool = True) -> Path:
    """Write the report of the run in ``out_dir`` to ``path`` atomically; returns the path."""
    from ..core._atomic import write_text

    record = read_run_record(out_dir) if record is None else record
    write_text(Path(path), run_report_html(Path(path), Path(out_dir), record, title, include), overwrite=overwrite)
    return Path(path)


def _read_table(p: Path) -> Table | None:
    from ..io._files import read_table

    try:
        return read_table(p)
    except Exception:  # a CSV someone else wrote: listed among the files, not shown
        return None


def _grid(items) -> str:
    items = [i for i in items if i]
    return f'<div class="grid">{"".join(items)}</div>' if items else ""


def _key_results(tables: dict, unit: dict) -> str:
    """One card per number the tables stand for (:func:`~damselfly.engine.report._page.table_numbers`):
    one-row tables, thickness statistics, Dice and volume fraction per class, object counts."""
    from ..render._objects import column_unit

    cards = []
    for p, t in tables.items():
        for name, v in table_numbers(t).items():
            if name.startswith("fraction["):
                cards.append((f"{100 * v:.3g} %", f"{p.stem} · {name[9:-1]} fraction"))
            elif name.startswith("dice["):
                cards.append((fmt(v), f"{p.stem} · Dice {name[5:-1]}"))
            elif name == "count":
                cards.append((str(v), f"{p.stem} · objects"))
            else:
                u = t["unit"][0] if "unit" in t.columns else column_unit(name, unit[p]) if unit[p] else ""
                cards.append((f"{fmt(v)} {u}".strip(), f"{p.stem} · {name}"))
    return '<div class="cards">' + "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>'
                                           for v, k in cards) + "</div>" if cards else ""


def _plots(files: list[Path], tables: dict, info: dict, unit: dict):
    """The histogram of every thickness map and of every object table's size column; class fractions."""
    from ..render._objects import column_title

    for p in files:
        if (info.get(str(p)) or {}).get("measure") == "local_thickness":
            v = thickness_values(p)
            if v.size:
                counts, edges = plots.histogram_bins(v, 30)
                label = column_title("local_thickness", unit[p]).replace("_", " ")
                yield plot_html(plots.histogram_svg(counts, edges, label, weights_label="voxels (sampled)"),
                                f"Local thickness: {p.name}")
    for p, t in tables.items():
        col = size_column(t)
        if col and len(t) > 1:
            counts, edges = plots.histogram_bins(np.asarray(t[col], float), 20)
            yield plot_html(plots.histogram_svg(counts, edges, column_title(col, unit[p]).replace("_", " ")),
                            f"{col.replace('_', ' ')} of the {len(t)} objects in {p.name}")
        fr = fraction_rows(t)
        if fr:
            yield plot_html(plots.bars_svg(fr[0], [100 * f for f in fr[1]], "volume fraction (%)"),
                            f"Class fractions: {p.name}")


def _files(files: list[Path], record: dict, page_dir: Path) -> str:
    sha = record.get("output_sha256", {})
    rows = "".join(f'<tr><td class="t"><a href="{esc(relative(p, page_dir))}">{esc(p.name)}</a></td>'
                   f'<td data-v="{_size(p)}">{_human(_size(p))}</td><td class="t"><code>{esc(sha.get(str(p), ""))}</code></td></tr>'
                   for p in files)
    return (f'<div class="scroll"><table class="sortable"><thead><tr><th class="t">file</th><th>size</th>'
            f'<th class="t">SHA-256</th></tr></thead><tbody>{rows}</tbody></table></div>') if files else ""


def _size(p: Path) -> int:
    return sum(q.stat().st_size for q in p.rglob("*") if q.is_file()) if p.is_dir() else p.stat().st_size


def _human(n: float) -> str:
    for u in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {u}" if u == "B" else f"{n:.1f} {u}"
        n /= 1000
    return f"{n:.1f} TB"


def _provenance(record: dict) -> str:
    if not record:
        return '<p class="meta">No run record in this folder (an app session): the files above are what it holds.</p>'
    kv = [("macro", record.get("macro")), ("macro SHA-256", record.get("macro_sha256")),
          ("status", record.get("status")), ("started", record.get("started")),
          ("finished", record.get("finished")), ("seconds", record.get("seconds")),
          ("parameters", json.dumps(record.get("params", {}))), ("settings", json.dumps(record.get("settings", {})))]
    out = '<div class="scroll"><table><tbody>' + "".join(
        f'<tr><th class="t">{esc(k)}</th><td class="t wrap"><code>{esc(v)}</code></td></tr>'
        for k, v in kv if v is not None) + "</tbody></table></div>"
    inputs = record.get("inputs") or {}
    if inputs:
        out += "<h3>Inputs</h3><div class=\"scroll\"><table class=\"sortable\"><thead><tr><th class=\"t\">file</th><th>size</th>" \
               "<th class=\"t\">SHA-256</th></tr></thead><tbody>" + "".join(
                   f'<tr><td class="t"><code>{esc(k)}</code></td><td>{_human((v or {}).get("size", 0))}</td>'
                   f'<td class="t"><code>{esc((v or {}).get("sha256", ""))}</code></td></tr>'
                   for k, v in inputs.items()) + "</tbody></table></div>"
    steps = record.get("statements") or []
    if steps:
        out += "<h3>Timings</h3><div class=\"scroll\"><table class=\"sortable\"><thead><tr><th>line</th><th class=\"t\">action</th>" \
               "<th class=\"t\">result</th><th>seconds</th></tr></thead><tbody>" + "".join(
                   f'<tr><td>{esc(s.get("line"))}</td><td class="t">{esc(s.get("action"))}</td>'
                   f'<td class="t">{esc(s.get("target") or "")}</td><td data-v="{esc(s.get("seconds"))}">'
                   f'{esc(fmt(s.get("seconds")))}</td></tr>' for s in steps) + "</tbody></table></div>"
    versions = record.get("versions") or {}
    if versions:
        out += "<h3>Versions</h3><p>" + ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items()) + "</p>"
    if record.get("macro_text"):
        out += f"<h3>Macro</h3><pre>{esc(record['macro_text'])}</pre>"
    return out
