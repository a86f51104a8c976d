import pytest

from damselfly.engine.core import phantoms
from damselfly.engine.io import _files as io
from damselfly.macros.checker import check
from damselfly.macros.parser import parse


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    v, t = phantoms.casting((24, 32, 32), seed=0)
    io.write_volume(v, d / "scan.tif")
    io.write_volume(t, d / "truth.tif")
    return d


def diags(text, data_dir, **kw):
    m = parse(text, str(data_dir / "m.dfm"))
    return check(m, **kw).diagnostics


def errors(text, data_dir, **kw):
    return [d for d in diags(text, data_dir, **kw) if d.severity == "error"]


HEAD = 'version 1\nparam scan = "scan.tif"\nraw = load(scan)\n'


def one(text, data_dir, **kw):
    ds = [d for d in diags(HEAD + text, data_dir, **kw) if d.severity == "error"]
    assert len(ds) == 1, [d.format() for d in ds]
    return ds[0]


def test_a_good_macro_checks_clean_and_resolves_inputs(data_dir):
    m = parse(HEAD + 'cal = calibrate(raw)\nlab = load_labels("truth.tif")\nseg = threshold(cal)\n'
                     's = evaluate(seg, lab)\nsave(s, "{scan.stem}.csv")\n', str(data_dir / "m.dfm"))
    res = check(m)
    assert res.ok, [d.format() for d in res.diagnostics]
    assert res.inputs == [str(data_dir / "scan.tif"), str(data_dir / "truth.tif")]


@pytest.mark.parametrize("line, col, pattern", [
    ("cal = calibrat(raw)", 7, "unknown action 'calibrat'; did you mean 'calibrate'?"),
    ("cal = calibrate(raw, metod=\"match\")", 22, "no parameter 'metod'; did you mean 'method'?"),
    ("t = threshold(raw, size=2)", 20, "no parameter 'size'; its parameters: volume, method, classes, names"),
    ("cal = calibrate(raw, method=\"percentil\")", 29, "did you mean 'percentile'?"),
    ("cal = calibrate(raw, low=\"x\")", 26, "low expects float, got str 'x'"),
    ("cal = calibrate(rwa)", 17, "undefined name 'rwa'; did you mean 'raw'?"),
    ("t = threshold(raw, classes=2.0)", 28, "classes expects int, got float"),
    ("cal = calibrate()", 7, "missing required argument(s): volume"),
    ("cal = calibrate(raw, raw)", 22, "method expects"),
    ("cal = calibrate(volume=raw, 1)", 29, "positional argument after a keyword"),
    ("cal = calibrate(raw, volume=raw)", 22, "got 'volume' twice"),
    ("x = save(raw, \"a.tif\")", 1, "returns nothing"),
    ("save(raw, \"{scam}.tif\")", 11, "template '{scam}' names no param; did you mean 'scan'?"),
    ("lab = load_labels(\"nope.tif\")", 19, "input file 'nope.tif' not found"),
    ("version 1", 1, "'version' given twice"),
    ("param scan = \"b.tif\"", 7, "param 'scan' declared twice"),
    ("scan = calibrate(raw)", 1, "'scan' is a param"),
])
def test_each_error_names_its_line_and_column(data_dir, line, col, pattern):
    d = one(line, data_dir)
    assert (d.line, d.column) == (4, col), d.format()
    assert pattern in d.message, d.format()
    assert d.format().startswith(f"{data_dir / 'm.dfm'}:4:{col}: error: ")


def test_type_flow_catches_a_table_where_a_volume_is_expected(data_dir):
    d = one('lab = load_labels("truth.tif")\ns = evaluate(lab, lab)\nc = calibrate(s)', data_dir)
    assert d.line == 6 and "volume expects Volume, got Table" in d.message


def test_type_flow_through_crop_keeps_labels(data_dir):
    ds = errors(HEAD + 'lab = load_labels("truth.tif")\nc = crop(lab, [0, 0, 0, 4, 4, 4])\n'
                       's = evaluate(c, c)\nv = crop(raw, [0, 0, 0, 4, 4, 4])\nt = evaluate(v, c)\n', data_dir)
    assert len(ds) == 1 and ds[0].line == 8 and "seg expects Labels, got Volume" in ds[0].message


def test_unknown_action_does_not_cascade(data_dir):
    ds = errors(HEAD + "x = nosuch(raw)\ny = calibrate(x)\n", data_dir)
    assert [d.line for d in ds] == [4]


def test_overrides_replace_params_and_unknown_overrides_are_errors(data_dir):
    ds = diags(HEAD, data_dir, overrides={"scan": "missing.tif", "sacn": 1})
    msgs = sorted(d.message for d in ds)
    assert any("no param 'sacn'; did you mean 'scan'?" in m for m in msgs)
    assert any("input file 'missing.tif' not found" in m for m in msgs)


def test_param_values_must_be_literals_and_version_must_be_known(data_dir):
    ds = diags("version 2\nparam a = b\n", data_dir)
    assert ["unsupported macro version 2" in ds[0].message, "must be a literal" in ds[1].message] == [True, True]


def test_results_never_used_or_saved_are_warnings_not_errors(data_dir):
    res = check(parse(HEAD + 'cal = calibrate(raw)\nseg = threshold(cal)\nseg = threshold(cal, classes=3)\n'
                             'save(seg, "s.tif")\nstats = evaluate(seg, seg)\n', str(data_dir / "m.dfm")))
    assert res.ok
    assert [(d.severity, d.line, d.message) for d in res.diagnostics] == [
        ("warning", 5, "'seg' is computed but never used or saved (add: save(seg, \"...\"))"),
        ("warning", 8, "'stats' is computed but never used or saved (add: save(stats, \"...\"))")]


def test_a_batch_that_trains_on_labels_painted_on_one_scan_is_warned(data_dir):
    text = (HEAD + 'cal = calibrate(raw)\npainted = load_labels("truth.tif")\nsp = sparse_labels(painted, [1])\n'
            'model = train(cal, sp)\nseg = infer(model, cal)\nsave(seg, "{scan.stem}_seg.tif")\n')
    m = parse(text, str(data_dir / "m.dfm"))
    assert check(m).ok and not check(m).diagnostics  # one run: training on its own labels is fine
    ds = check(m, batch_param="scan").diagnostics
    assert [(d.severity, d.line, d.column) for d in ds] == [("warning", 7, 20)]
    assert "every scan is trained on 'sp', labels painted on one scan" in ds[0].message
    per_scan = parse(text.replace('load_labels("truth.tif")', 'load_labels("{scan.stem}_labels.tif")'),
                     str(data_dir / "m.dfm"))
    assert not check(per_scan, batch_param="scan", check_files=False).diagnostics


def grains_files(tmp_path):
    """The grains phantom (scan, truth), its truth written to ``t.tif`` with its sidecar (air, ice)."""
    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    vol, truth = phantoms.grains((12, 24, 24), seed=1)
    io.write_volume(truth, tmp_path / "t.tif")
    return vol, truth


def class_errors(tmp_path, text: str) -> list[tuple[int, str]]:
    """The checker's errors (line, message) of the macro ``text`` in ``tmp_path``."""
    from damselfly.macros.checker import check
    from damselfly.macros.parser import parse

    res = check(parse(text, str(tmp_path / "m.dfm")), base_dir=tmp_path, out_dir=tmp_path / "out")
    return [(d.line, d.message) for d in res.diagnostics if d.severity == "error"]


def test_check_knows_the_classes_of_a_model_file_and_of_labels_with_a_sidecar(tmp_path):
    """local_thickness(seg, class="snow") on a model of air and ice is an error before anything runs
    (issue 30), through infer; so is a class a labels file's sidecar does not name."""
    from damselfly.engine.actions.segmentation import sparse_labels, train
    from damselfly.engine.core.context import RunContext
    from damselfly.engine.io import _files as io
    from damselfly.engine.segmentation import _model as model_io

    vol, truth = grains_files(tmp_path)
    io.write_volume(vol, tmp_path / "s.tif")
    model = train(vol, sparse_labels(truth, [3, 8]), arch="forest", ctx=RunContext(device="cpu"))
    model_io.save_model(model, tmp_path / "m.dfmodel")
    text = ('version 1\nparam scan = "s.tif"\nraw = load(scan)\nmodel = load_model("m.dfmodel")\n'
            'seg = infer(model, raw)\nthick = local_thickness(seg, class="snow")\nsave(thick, "a.tif")\n'
            'lab = load_labels("t.tif")\nth2 = local_thickness(lab, class="ic")\nsave(th2, "b.tif")\n'
            'ok = local_thickness(seg, class="ice")\nsave(ok, "c.tif")\n'
            'named = load_labels("t.tif", classes=["a", "b"])\nth3 = local_thickness(named, class="b")\n'
            'save(th3, "d.tif")\n')
    assert class_errors(tmp_path, text) == [(6, "unknown class 'snow' ('seg' has the classes air, ice)"),
                      (9, "unknown class 'ic' ('lab' has the classes air, ice); did you mean 'ice'?")]


def test_check_knows_the_classes_merge_classes_makes(tmp_path):
    """merge_classes of labels whose classes are known: its result's classes are known too (a class it
    merged away is an error at its line), and the classes it is told to merge are checked."""
    grains_files(tmp_path)
    text = ('version 1\nlab = load_labels("t.tif")\nm = merge_classes(lab, into="solid", classes=["ice"], '
            'unlabelled="unknown")\nfr = class_fractions(m)\nsave(fr, "f.csv")\n'
            'a = local_thickness(m, class="ice")\nsave(a, "a.tif")\nb = local_thickness(m, class="solid")\n'
            'save(b, "b.tif")\nc = merge_classes(lab, into="x", classes=["snow"])\nsave(c, "c.tif")\n')
    assert class_errors(tmp_path, text) == [(6, "unknown class 'ice' ('m' has the classes unknown, air, solid)"),
                      (10, "unknown class 'snow' ('lab' has the classes air, ice)")]


def test_check_finds_an_evaluation_against_a_truth_with_no_class_in_common(tmp_path):
    """evaluate(seg, ids) where the labels file names other classes than the segmentation (another tool's
    instance ids) is an error at the argument before anything runs; merged, it is fine."""
    grains_files(tmp_path)  # t.tif: air, ice
    text = ('version 1\nlab = load_labels("t.tif")\nids = load_labels("t.tif", classes=["c1", "c2"])\n'
            'a = evaluate(lab, ids)\nsave(a, "a.csv")\nm = merge_classes(ids, into="ice", unlabelled="air")\n'
            'b = evaluate(lab, m)\nsave(b, "b.csv")\n')
    assert class_errors(tmp_path, text) == [
        (4, "'ids' shares no class name with 'lab' (c1, c2 against air, ice): name its classes with "
            "load_labels(..., classes=[...]) or merge them with merge_classes")]
