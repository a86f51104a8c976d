"""Reports for people: HTML pages of runs and batches, and plots.

- ``_page``: the page, its style and tables; ``_run``: the report of one run from its record;
  ``_plots``: histograms and bars (matplotlib, off screen).
"""

from typing import TYPE_CHECKING

from ..core._lazy import lazy_exports

__all__ = ["write_run_report", "read_run_record", "histogram_png"]
__getattr__, __dir__ = lazy_exports(__name__, {
    "write_run_report": "._run",
    "read_run_record": "._run",
    "histogram_png": "._plots",
})

if TYPE_CHECKING:
    from ._plots import histogram_png
    from ._run import read_run_record, write_run_report
