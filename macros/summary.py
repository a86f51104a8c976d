"""The summary of a batch: ``OUT/summary.csv`` and ``OUT/summary.html``, one row per scan.

Each row has the scan's status, time, a link to its report (an ``.html`` it wrote) and every scalar
result found among its saved tables (:func:`scan_scalars`); the page plots each scalar across the scans
and flags outliers: values farther from the batch's median than ``OUTLIER_MADS`` times the median
absolute deviation scaled to a standard deviation (1.4826 MAD, as MATLAB's ``isoutlier`` does), the
spread taken as at least ``RELATIVE_FLOOR`` of the median. Written
at the end of every batch (also an interrupted one, for what is done) and by ``damselfly report OUT``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from damselfly.engine.core.data import Table
from damselfly.engine.io import _files as io
from damselfly.engine.report._page import esc, fmt, page, plot_html, relative, section, table_numbers

OUTLIER_MADS = 3.0
#: the spread is taken as at least this fraction of the median: scans that agree to a few parts in a
#: thousand (a tight batch of six) are not outliers for differing by one per cent
RELATIVE_FLOOR = 0.01
#: a table file larger than this is only counted (rows), not read (object tables of many objects)
SMALL_TABLE = 64 * 1024


def _key(path: Path, scan_stem: str) -> str:
    """A table's name common to every scan: its file stem without the scan's (``part_07_pores`` ->
    ``pores``)."""
    s = path.stem
    return s[len(scan_stem) + 1:] if s.startswith(scan_stem + "_") and len(s) > len(scan_stem) + 1 else s


def table_scalars(path: Path, key: str) -> dict[str, float]:
    """The scalars of one saved table: each number of a one-row table; mean, median, max of a
    ``thickness_stats`` table; Dice or volume fraction per class; the number of objects of an object table."""
    if path.stat().st_size > SMALL_TABLE:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
            rows = sum(1 for _ in f)
        return {f"{key}.count": rows} if "id" in header else {}
    try:
        t = io.read_table(path)
    except Exception:
        return {}
    return {f"{key}.{name}": float(v) for name, v in table_numbers(t).items()}


def scan_scalars(out_dir: Path, item: str) -> tuple[dict[str, float], str | None]:
    """Every scalar result of one scan's folder (from the tables its run record lists) and its report's
    path relative to the batch folder's parent, if it wrote one."""
    from damselfly.engine.report._run import read_run_record

    record = read_run_record(out_dir)
    stem = io.stem(item)
    found, report = {}, None
    for o in record.get("outputs", []):
        p = Path(o)
        if not p.exists():
            continue
        if p.suffix.lower() == ".csv":
            found.update(table_scalars(p, _key(p, stem)))
        elif p.suffix.lower() in (".html", ".htm") and report is None:
            report = p
    return found, report


def outliers(values: list[float]) -> set[int]:
    """Indices of values beyond ``OUTLIER_MADS`` scaled MADs of the median (none while the MAD is 0).

    Examples
    --------
    >>> sorted(outliers([1.0, 1.1, 0.9, 1.0, 5.0, float("nan")]))
    [4]
    """
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if ok.sum() < 3:
        return set()
    med = np.median(v[ok])
    mad = max(1.4826 * np.median(np.abs(v[ok] - med)), RELATIVE_FLOOR * abs(med))
    if mad == 0:
        return set()
    return {int(i) for i in np.flatnonzero(ok & (np.abs(v - med) > OUTLIER_MADS * mad))}


def write_summary(out_root: str | Path) -> tuple[Path, Path]:
    """Write ``summary.csv`` and ``summary.html`` for the batch in ``out_root`` (from its ``batch.json``
    and the scans' folders); returns their paths."""
    root = Path(out_root)
    batch = json.loads((root / "batch.json").read_text(encoding="utf-8"))
    rows, names = [], set()
    for it in batch.get("items", []):
        scalars, report = scan_scalars(Path(it["out_dir"]), it["item"])
        names |= set(scalars)
        rows.append({"scan": io.stem(it["item"]), "status": it["status"], "seconds": it.get("seconds", 0.0),
                     "error": it.get("error") or "", "report": relative(report, root) if report else "", **scalars})
    names = sorted(names)
    flagged = {n: outliers([r.get(n, np.nan) for r in rows]) for n in names + ["seconds"]}
    for k, r in enumerate(rows):
        r["outliers"] = " ".join(n for n in names if k in flagged[n])
    head = ["scan", "status", "seconds", "report", *names, "outliers", "error"]
    csv_path, html_path = root / "summary.csv", root / "summary.html"
    io.write_table(Table({h: [r.get(h, "") for r in rows] for h in head}), csv_path)
    io.write_text(html_path, _html(batch, head, rows, names, flagged))
    return csv_path, html_path


TEXT, TEXT_COLUMNS = ' class="t"', ("scan", "status", "error", "report", "outliers")


def _html(batch: dict, head: list[str], rows: list[dict], names: list[str], flagged: dict) -> str:
    from damselfly.engine.report import _plots as plots

    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "failed", "cancelled", "skipped", "not run")}
    sub = (f"{len(rows)} scans: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n)
           + (" · <b class=\"bad\">interrupted</b>" if batch.get("interrupted") else "")
           + f" · macro <code>{esc(batch.get('macro', ''))}</code> · <a href=\"summary.csv\">summary.csv</a>"
           + " · <a href=\"batch.json\">batch.json</a>")
    cells = []
    for k, r in enumerate(rows):
        tds = []
        for h in head:
            v = r.get(h, "")
            if h == "report" and v:
                tds.append(f'<td class="t"><a href="{esc(v)}">report</a></td>')
            elif h == "status":
                tds.append(f'<td class="t {"ok" if v in ("ok", "skipped") else "bad"}">{esc(v)}</td>')
            elif isinstance(v, (int, float)):
                bad = h != "seconds" and h in flagged and k in flagged[h]  # slow scans: red in the plot only
                mark = ' class="bad" title="outlier"' if bad else ""
                tds.append(f'<td data-v="{esc(v)}"{mark}>{"⚠ " if bad else ""}{esc(fmt(v))}</td>')
            else:
                tds.append(f'<td class="t{" wrap" if h == "error" else ""}">{esc(v)}</td>')
        cells.append("<tr>" + "".join(tds) + "</tr>")
    table = ('<div class="scroll"><table class="sortable"><thead><tr>'
             + "".join(f"<th{TEXT if h in TEXT_COLUMNS else ''}>{esc(h)}</th>" for h in head)
             + "</tr></thead><tbody>" + "".join(cells) + "</tbody></table></div>")
    scans = [r["scan"] for r in rows]
    figs = [plot_html(plots.strip_svg(scans, [r.get(n, np.nan) for r in rows], n, flagged[n]),
                      f"{n} across the scans" + (f" ({len(flagged[n])} flagged)" if flagged[n] else ""))
            for n in names + ["seconds"]] if rows else []
    return page(f"Batch summary: {Path(batch.get('macro', '')).name}",
                [section("Scans", table), section("Results across the scans",
                                                  f'<div class="grid">{"".join(figs)}</div>')], sub)
