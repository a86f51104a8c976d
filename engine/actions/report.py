"""The report action: an HTML page of what the run has saved, with plots and provenance."""

from __future__ import annotations

from ..core import progress
from ..core.context import RunContext
from ..core.errors import ParameterError
from ..registry import OutputPath, action


@action("report", category="Render", title="Report of this session…")
def report(path: OutputPath, title: str | None = None, include: list[str] | None = None, *, ctx: RunContext) -> None:
    """An HTML page of everything the run has saved so far: key numbers, pictures, movies, plots (the
    histogram of every thickness map and of every object table's sizes, class fractions), sortable tables,
    the files with their SHA-256, and the run's provenance (macro text and hash, parameters, settings,
    inputs and their hashes, versions, timings). Self-contained: pictures and plots are inside the page,
    movies are linked next to it; nothing is fetched from the network. Prints to PDF cleanly.

    Parameters
    ----------
    path : path
        The ``.html`` page, relative to the run's output folder (e.g. ``"{scan.stem}_report.html"``).
    title : str, optional
        The page's title (default: "Damselfly report: " and the macro's name).
    include : list of str, optional
        Only the outputs whose file names match these patterns (``["*.png", "*_pores.csv"]``).

    Examples
    --------
    >>> report("{scan.stem}_report.html", title="{scan.stem}: porosity")   # doctest: +SKIP
    """
    from ..report._run import write_run_report

    if not str(path).lower().endswith((".html", ".htm")):
        raise ParameterError(f"a report is an .html file, got {path}")
    task = progress.task(f"Writing {path}", total=1)
    write_run_report(path, ctx.out_dir, title=title, include=include, overwrite=ctx.may_replace(path))
    task.finish()
