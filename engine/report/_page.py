"""Reports: one HTML page per run with what it saved, plots, and where every number came from.

The page is one file that needs nothing from the network: pictures up to ``EMBED_BYTES`` and every
plot are inside it (PNG as data URIs, plots as inline SVG), tables are HTML tables sorted by a few lines
of inline script; movies (and larger pictures) are linked relative to the page, so a 10 MB movie costs
nothing to write and the page stays small: keep the page with its output folder. Printing the page
(Ctrl+P) gives a clean PDF (print CSS: no controls, sections not split).

What goes in comes from the run record (``run.json``, kept current while a macro runs): its outputs, the
macro text and its SHA-256, parameters, settings, inputs with their hashes, versions and timings. Units
come from the record's note of each output (its object's unit); "(units unknown)" where there is none.

Examples
--------
>>> html = page("A run", [section("Key results", "<p>none</p>")])
>>> html.startswith("<!DOCTYPE html>") and "A run" in html
True
"""

from __future__ import annotations

import base64
import fnmatch
import html
import os
from pathlib import Path

import numpy as np

from ..core.data import Table

#: pictures up to this size go into the page; larger ones are linked
EMBED_BYTES = 4 * 2 ** 20
#: rows of a table shown in the page (the CSV has them all)
TABLE_ROWS = 200
IMAGES, MOVIES, TABLES = (".png", ".jpg", ".jpeg", ".gif"), (".mp4", ".webm"), (".csv",)

CSS = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d8dce4;--accent:#4c72b0;--bad:#c44e52}
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
margin:0 auto;max-width:1100px;padding:16px}h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;
border-bottom:1px solid var(--line);padding-bottom:.2em;margin-top:1.6em}.meta{color:var(--muted)}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid var(--line);border-radius:8px;padding:8px 12px;
min-width:150px}.card b{display:block;font-size:1.25em}.card span{color:var(--muted);font-size:.85em}
figure{margin:0 0 16px}figure img,figure video,figure svg{max-width:100%;height:auto;border-radius:4px}
figcaption{color:var(--muted);font-size:.85em}.grid{display:grid;grid-template-columns:repeat(auto-fill,
minmax(320px,1fr));gap:16px}.scroll{overflow-x:auto}table{border-collapse:collapse;font-size:.85em}
th,td{border-bottom:1px solid var(--line);padding:3px 8px;text-align:right;white-space:nowrap}
th{cursor:pointer;background:#f3f5f8;position:sticky;top:0}td.t,th.t{text-align:left}
td.wrap{white-space:normal;min-width:16em}pre{background:#f3f5f8;
padding:8px;overflow-x:auto;font-size:.8em}.bad{color:var(--bad);font-weight:600}.ok{color:#2e7d32}
code{font-size:.85em;word-break:break-all}.print{display:none}
@media (max-width:600px){body{padding:8px;font-size:14px}.grid{grid-template-columns:1fr}td.wrap{min-width:0}}
@media print{body{max-width:none}video,.noprint{display:none}.print{display:block}th{position:static}
section,figure,table{break-inside:avoid-page}a{color:inherit;text-decoration:none}}
"""

SORT_JS = """
document.querySelectorAll('table.sortable').forEach(t=>t.querySelectorAll('th').forEach((th,i)=>
th.addEventListener('click',()=>{const b=t.tBodies[0],rows=[...b.rows],d=th.dataset.dir==='a'?-1:1;
th.dataset.dir=d===1?'a':'d';const k=r=>{const c=r.cells[i],v=c.dataset.v??c.textContent,n=parseFloat(v);
return isNaN(n)?v:n};rows.sort((x,y)=>{const p=k(x),q=k(y);return(p>q?1:p<q?-1:0)*d});
rows.forEach(r=>b.appendChild(r))})));
"""


def esc(v) -> str:
    return html.escape(str(v), quote=True)


def page(title: str, sections: list[str], subtitle: str = "") -> str:
    """A whole page: ``sections`` (HTML) under a title, with the style and the table sorter inline."""
    sub = f'<p class="meta">{subtitle}</p>' if subtitle else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><h1>{esc(title)}</h1>{sub}"
            + "".join(sections) + f"<script>{SORT_JS}</script></body></html>\n")


def section(title: str, body: str) -> str:
    return f"<section><h2>{esc(title)}</h2>{body}</section>" if body else ""


def fmt(v) -> str:
    """A cell's text: floats to 4 significant digits, booleans as ✔."""
    if isinstance(v, bool):
        return "✔" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def table_html(table: Table, unit: str = "", rows: int = TABLE_ROWS, link: str = "") -> str:
    """A sortable HTML table (numbers sort as numbers), headers with their units, the first ``rows``."""
    from ..render._objects import column_title

    cols = list(table.columns)
    head = "".join(f'<th class="{"t" if _texts(table[c]) else ""}">{esc(column_title(c, unit) if unit else c)}</th>'
                   for c in cols)
    body = []
    for r in table.rows()[:rows]:
        cells = []
        for c in cols:
            v = r[c]
            num = isinstance(v, (int, float)) and not isinstance(v, bool)
            cells.append(f'<td data-v="{esc(v)}">{esc(fmt(v))}</td>' if num else f'<td class="t">{esc(fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f'<p class="meta">{rows} of {len(table)} rows shown; all in <a href="{esc(link)}">{esc(link)}</a></p>'
            if len(table) > rows else "")
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + f"</tbody></table></div>{more}")


def _texts(values: list) -> bool:
    return bool(values) and isinstance(values[0], str)


def image_html(path: Path, page_dir: Path) -> str:
    """A picture: inside the page up to ``EMBED_BYTES``, else linked."""
    size = path.stat().st_size
    if size <= EMBED_BYTES:
        kind = {".jpg": "jpeg", ".jpeg": "jpeg", ".gif": "gif"}.get(path.suffix.lower(), "png")
        src = f"data:image/{kind};base64," + base64.b64encode(path.read_bytes()).decode()
    else:
        src = relative(path, page_dir)
    return f'<figure><img src="{esc(src)}" alt="{esc(path.name)}" loading="lazy"><figcaption>{esc(path.name)}</figcaption></figure>'


def movie_html(path: Path, page_dir: Path) -> str:
    rel = relative(path, page_dir)
    return (f'<figure><video controls preload="metadata" src="{esc(rel)}"></video>'
            f'<figcaption>{esc(path.name)} <a class="noprint" href="{esc(rel)}">(file)</a></figcaption>'
            f'<p class="print">Movie: {esc(rel)}</p></figure>')


def relative(path: Path, page_dir: Path) -> str:
    """``path`` as a link from a page in ``page_dir`` (forward slashes)."""
    return Path(os.path.relpath(path, page_dir)).as_posix()


def plot_html(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>"


def selected(outputs: list[str], include: list[str] | None) -> list[str]:
    """The outputs a report shows: all, or those whose file name matches one of ``include``'s patterns
    (``*_pores.csv``, ``snapshot.png``)."""
    if not include:
        return list(outputs)
    return [o for o in outputs if any(fnmatch.fnmatch(Path(o).name, pat) for pat in include)]


def thickness_values(path: Path, most: int = 2_000_000) -> np.ndarray:
    """The positive values of a saved thickness map, every k-th voxel so that at most ``most`` are read."""
    from ..io._files import read_volume

    vol = read_volume(path)
    step = max(1, int(np.ceil((np.prod(vol.shape[:3]) / most) ** (1 / 3))))
    v = np.asarray(vol.data[::step, ::step, ::step], np.float64).ravel()
    return v[np.isfinite(v) & (v > 0)]


def size_column(table: Table) -> str | None:
    """The column of an object table that says how big each object is."""
    for c in ("equivalent_diameter", "volume", "voxels"):
        if c in table.columns and "id" in table.columns:
            return c
    return None


def fraction_rows(table: Table) -> tuple[list, list] | None:
    """(class names, volume fractions) of a ``class_fractions`` table."""
    if "class" in table.columns and "fraction" in table.columns:
        return list(table["class"]), [float(v) for v in table["fraction"]]
    return None


def table_numbers(table: Table) -> dict:
    """The numbers a saved table stands for, by name: each number of a one-row table; ``mean``, ``median``
    and ``max`` of a ``thickness_stats`` table (its "all" row); ``dice[class]`` and ``fraction[class]`` of
    per-class tables; ``count`` of an object table. The report's key results and the batch summary's
    columns are these.

    Examples
    --------
    >>> table_numbers(Table({"class": ["air", "pore"], "dice": [0.9, 0.5], "iou": [0.8, 0.3]}))
    {'dice[air]': 0.9, 'dice[pore]': 0.5}
    """
    cols = table.columns
    if not cols or not len(table):
        return {}
    row = table.rows()[0]
    if len(table) == 1:
        return {c: v for c, v in row.items() if _number(v)}
    if list(cols.values())[0][0] == "all":
        return {c: row[c] for c in ("mean", "median", "max") if c in row and _number(row[c])}
    if "class" in cols:
        return {f"{m}[{c}]": v for m in ("dice", "fraction") if m in cols for c, v in zip(cols["class"], cols[m])
                if _number(v)}
    if "id" in cols:
        return {"count": len(table)}
    return {}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)

