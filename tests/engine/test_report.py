"""Reports (issue 33): the page of a real macro run holds its pictures, movie, plots, tables, units and
provenance, needs nothing from the network, and renders in a real browser (headless Chromium)."""

import re
import shutil

import numpy as np
import pytest

from damselfly.engine import ParameterError
from damselfly.engine.actions.report import report
from damselfly.engine.core.context import RunContext
from damselfly.macros.runner import run_file

from ..browser import check_page, chromium, no_console_errors

MACRO = """version 1
param seed = 1
seg = load_labels("seg.tif")
pores = label_objects(seg, class="pore")
table = measure_objects(pores)
save(table, "pores.csv")
fractions = class_fractions(seg)
save(fractions, "fractions.csv")
thick = local_thickness(seg, class="metal")
stats = thickness_stats(thick)
save(stats, "thickness.csv")
save(thick, "thickness.tif")
snapshot(seg, "snapshot.png", size=[320, 240])
render_movie(seg, "orbit.mp4", seconds=1, fps=4, size=[160, 120])
report("report.html", title="Pores & walls")
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A macro run over a small part with pores (0.1 mm voxels), ending with report(...)."""
    from damselfly.engine import Labels, make_classes
    from damselfly.engine.io import _files as io

    tmp = tmp_path_factory.mktemp("report")
    zz, yy, xx = np.mgrid[:24, :32, :32]
    d = np.ones((24, 32, 32), np.uint8)
    d[4:20, 6:26, 6:26] = 2
    for c, r in (((12, 12, 12), 3), ((10, 20, 18), 2), ((14, 16, 22), 2)):
        d[(zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2 <= r * r] = 3
    io.write_volume(Labels(d, spacing=(0.1, 0.1, 0.1), unit="mm", classes=make_classes(["air", "metal", "pore"])),
                    tmp / "seg.tif")
    (tmp / "part.dfm").write_text(MACRO)
    result = run_file(tmp / "part.dfm", out_dir=tmp / "out")
    assert result.status == "ok"
    return tmp / "out", (tmp / "out" / "report.html").read_text()


def test_the_page_holds_what_the_run_saved_with_units_and_provenance(run):
    out, html = run
    assert "<title>Pores &amp; walls</title>" in html
    assert html.count("data:image/png;base64,") >= 1  # the snapshot is inside the page
    assert '<video controls preload="metadata" src="orbit.mp4">' in html  # the movie is linked beside it
    assert html.count("<svg") >= 3  # thickness, pore sizes, class fractions
    assert "equivalent diameter (mm)" in html and "volume (mm³)" in html and "local thickness (mm)" in html
    assert 'class="sortable"' in html and "3 of" not in html  # three pores: every row shown
    record = __import__("json").loads((out / "run.json").read_text())
    assert record["macro_sha256"] in html and "seg.tif" in html  # the macro's hash and its input
    assert record["inputs"] and all(v["sha256"] in html for v in record["inputs"].values())
    assert "label_objects" in html and "numpy" in html  # timings so far and versions
    assert not re.search(r"(src|href)=\"(https?:)?//", html)  # nothing from the network


def test_include_and_clear_errors(run, tmp_path):
    out, _ = run
    ctx = RunContext(out_dir=out, overwrite=True)
    report(str(out / "only.html"), include=["*.csv"], ctx=ctx)
    only = (out / "only.html").read_text()
    assert "pores.csv" in only and "data:image/png" not in only and "<video" not in only
    with pytest.raises(ParameterError, match=".html"):
        report("r.pdf", ctx=ctx)
    with pytest.raises(Exception, match="exists"):
        report(str(out / "only.html"), ctx=RunContext(out_dir=out, overwrite=False))


def test_a_folder_without_a_run_record_is_reported_from_its_files(run, tmp_path):
    out, _ = run
    for name in ("snapshot.png", "pores.csv"):
        shutil.copy(out / name, tmp_path / name)
    report(str(tmp_path / "session.html"), ctx=RunContext(out_dir=tmp_path))
    html = (tmp_path / "session.html").read_text()
    assert "data:image/png" in html and "pores.csv" in html and "No run record" in html


def test_the_page_in_a_real_browser(run):
    """Headless Chromium: the page is not blank, the console has no errors, every image and the movie
    load, no request leaves the machine, it fits a phone's width, sorts, and prints to a PDF."""
    out, _ = run
    with chromium() as driver:
        check_page(driver, out / "report.html", movies=1)
        driver.find_elements("css selector", "table.sortable th")[2].click()  # sorting runs without errors
        assert no_console_errors(driver)


def test_report_writing_is_cheap_with_a_big_movie(run, tmp_path):
    """A 10 MB movie is linked, not read: the page stays small."""
    out, _ = run
    for name in ("snapshot.png", "pores.csv"):
        shutil.copy(out / name, tmp_path / name)
    (tmp_path / "big.mp4").write_bytes(bytes(10 * 2 ** 20))
    report(str(tmp_path / "big.html"), ctx=RunContext(out_dir=tmp_path))
    assert (tmp_path / "big.html").stat().st_size < 2 ** 20
    assert 'src="big.mp4"' in (tmp_path / "big.html").read_text()
