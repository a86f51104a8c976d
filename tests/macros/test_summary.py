"""The batch summary (issue 33): summary.csv and summary.html after a batch (also a failed scan's row),
scalars of every scan side by side, outliers flagged, links to the reports, `damselfly report OUT`."""

import csv
import json
import time

import numpy as np
import pytest

from damselfly.engine import Labels, make_classes
from damselfly.engine.io import _files as io
from damselfly.macros.cli import main
from damselfly.macros.summary import outliers, table_scalars, write_summary

from ..browser import check_page, chromium

MACRO = """version 1
param scan = "p0.tif"
seg = load_labels(scan, classes=["metal", "pore"])
pores = label_objects(seg, class="pore")
table = measure_objects(pores)
save(table, "{scan.stem}_pores.csv")
fractions = class_fractions(seg)
save(fractions, "{scan.stem}_fractions.csv")
report("{scan.stem}_report.html")
"""


def write_parts(folder, pores_per_scan):
    """One labels file per scan with that many single-voxel pores (the last one an outlier)."""
    for k, n in enumerate(pores_per_scan):
        d = np.ones((8, 32, 32), np.uint8)
        d.reshape(-1)[np.arange(n) * 97] = 2  # 97 voxels apart: (0, 3, 1) steps, never touching
        io.write_volume(Labels(d, spacing=(0.5, 0.5, 0.5), unit="mm", classes=make_classes(["metal", "pore"])),
                        folder / f"p{k}.tif")


def test_a_batch_writes_its_summary_with_outliers_and_report_links(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_parts(tmp_path, [10, 11, 9, 10, 12, 10, 80])
    (tmp_path / "p_bad.tif").write_bytes(b"not a tiff")
    (tmp_path / "m.dfm").write_text(MACRO)
    assert main(["run", "m.dfm", "--batch", "p*.tif", "--out", "b"]) == 1  # one scan failed
    rows = list(csv.DictReader(open(tmp_path / "b" / "summary.csv")))
    assert [r["scan"] for r in rows] == [f"p{k}" for k in range(7)] + ["p_bad"]
    assert [r["status"] for r in rows] == ["ok"] * 7 + ["failed"] and rows[-1]["error"]
    assert [float(r["pores.count"]) for r in rows[:7]] == [10, 11, 9, 10, 12, 10, 80]
    # the metal fraction moves by under 1 %: within the relative floor of the spread, not an outlier
    assert rows[6]["outliers"].split() == ["fractions.fraction[pore]", "pores.count"]
    assert all(r["outliers"] == "" for r in rows[:6])
    assert rows[0]["report"] == "p0/p0_report.html" and (tmp_path / "b" / rows[0]["report"]).exists()
    html = (tmp_path / "b" / "summary.html").read_text()
    assert html.count('title="outlier"') == 2 and 'href="p0/p0_report.html"' in html and html.count("<svg") >= 4
    with chromium() as driver:  # the summary in a real browser, as the report is
        check_page(driver, tmp_path / "b" / "summary.html")
    # rebuilt from the folder alone (e.g. after --resume)
    (tmp_path / "b" / "summary.html").unlink()
    assert main(["report", "b"]) == 0 and (tmp_path / "b" / "summary.html").exists()
    assert main(["report", "b/p0"]) == 0 and (tmp_path / "b" / "p0" / "report.html").exists()
    assert main(["report", "."]) == 1  # neither a batch nor a run


def test_scalars_of_tables_and_outliers(tmp_path):
    from damselfly.engine import Table

    io.write_table(Table({"mean": [1.5], "voxels": [10]}), tmp_path / "a.csv")
    io.write_table(Table({"class": ["air", "pore"], "dice": [0.9, 0.5], "iou": [0.8, 0.3]}), tmp_path / "s.csv")
    io.write_table(Table({"range": ["all", "bin"], "mean": [2.0, 1.0], "max": [3.0, 1.0]}), tmp_path / "t.csv")
    assert table_scalars(tmp_path / "a.csv", "a") == {"a.mean": 1.5, "a.voxels": 10.0}
    assert table_scalars(tmp_path / "s.csv", "s") == {"s.dice[air]": 0.9, "s.dice[pore]": 0.5}
    assert table_scalars(tmp_path / "t.csv", "t") == {"t.mean": 2.0, "t.max": 3.0}
    assert outliers([1, 1, 1, 1]) == set() and outliers([1.0, 2.0]) == set()
    assert outliers([10, 11, 9, 10, 12, 10, 80]) == {6}
    assert outliers([0.519, 0.5197, 0.5236, 0.5202, 0.5201, 0.52]) == set()  # a tight batch: under 1 % apart


@pytest.mark.slow
def test_the_summary_of_a_thousand_scans_is_quick(tmp_path):
    """1,000 scans with three tables each: summary.csv and .html well within 10 s here (measured, not
    asserted as a time: the test only checks the content; benchmarks/README.md has the figure)."""
    from damselfly.engine import Table

    items = []
    for k in range(1000):
        d = tmp_path / f"s{k}"
        d.mkdir()
        outs = []
        for name, t in (("stats", Table({"mean": [1.0 + k % 7], "max": [3.0]})),
                        ("scores", Table({"class": ["a", "b"], "dice": [0.9, 0.8]}))):
            p = d / f"s{k}_{name}.csv"
            io.write_table(t, p)
            outs.append(str(p))
        (d / "run.json").write_text(json.dumps({"status": "ok", "outputs": outs}))
        items.append({"item": f"s{k}.tif", "out_dir": str(d), "status": "ok", "seconds": 1.0})
    (tmp_path / "batch.json").write_text(json.dumps({"macro": "m.dfm", "items": items}))
    t0 = time.perf_counter()
    write_summary(tmp_path)
    seconds = time.perf_counter() - t0
    rows = list(csv.DictReader(open(tmp_path / "summary.csv")))
    assert len(rows) == 1000 and rows[3]["stats.mean"] == "4.0"
    print(f"summary of 1,000 scans: {seconds:.2f} s")
