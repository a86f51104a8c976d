"""Clear errors instead of tracebacks and "internal error", and a checker that stays linear
(issue: data safety)."""

import time

import pytest

from damselfly.macros.checker import check
from damselfly.macros.cli import main
from damselfly.macros.parser import parse

from .kit import write_scans


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return write_scans(tmp_path, 1, (8, 16, 16), name="g.tif")


@pytest.mark.parametrize("text, where, words", [
    ("param x = " + "9" * 5000, "1:11", "out of range (numbers must fit in 64 bits)"),
    ("param x = " + "[" * 500 + "]" * 500, "1:43", "lists nested more than 32 deep"),
    ("param x = 1e999", "1:11", "number out of range"),
    ("# param\n = 1", "2:2", "unexpected '='"),
    ("# a comment\nversion = 1", "2:1", "'version' is a keyword"),
])
def test_macro_text_errors_are_positioned(workdir, capsys, text, where, words):
    m = workdir / "m.dfm"
    m.write_text(text + "\n")
    for cmd in (["check", str(m)], ["fmt", str(m)], ["run", str(m), "--out", "o"]):
        assert main(cmd) == 1
        err = capsys.readouterr().err
        assert f"{m}:{where}: error: " in err and words in err and "Traceback" not in err


def test_byte_order_mark_is_accepted(workdir, capsys):
    m = workdir / "m.dfm"
    m.write_bytes("\ufeffversion 1\nparam scan = \"g.tif\"\nraw = load(scan)\n".encode())
    assert main(["check", str(m)]) == 0
    assert main(["fmt", "--check", str(m)]) == 0


def test_check_on_a_folder_and_a_too_long_path_checks_the_other_files(workdir, capsys):
    good = workdir / "good.dfm"
    good.write_text('version 1\nparam scan = "g.tif"\nraw = load(scan)\n')
    long_input = workdir / "long.dfm"
    long_input.write_text(f'version 1\nraw = load("{"d/" * 3000}x.tif")\n')
    long_name = str(workdir / ("x" * 300 + ".dfm"))
    assert main(["check", str(workdir), long_name, str(long_input), str(good)]) == 1
    cap = capsys.readouterr()
    assert f"{workdir}: error: is a folder, not a macro file" in cap.err
    assert "cannot read the macro file: File name too long" in cap.err
    assert f"{long_input}:2:12: error: input path is 6005 bytes long" in cap.err
    assert f"{good}: ok" in cap.out


def test_out_under_a_file_or_naming_a_file(workdir, capsys):
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "g.tif"\nraw = load(scan)\nsave(raw, "c.tif")\n')
    (workdir / "afile").write_text("x")
    for out in ("afile", "afile/sub"):
        assert main(["run", str(m), "--out", out]) == 1
        err = capsys.readouterr().err
        assert "a file of that name (or of a folder above it) is in the way" in err and "Traceback" not in err
    assert (workdir / "afile").read_text() == "x"


@pytest.mark.parametrize("value", ["-3", "0", "100000", "many"])
def test_threads_and_jobs_out_of_range_are_usage_errors(workdir, capsys, value):
    m = workdir / "m.dfm"
    m.write_text('version 1\nparam scan = "g.tif"\nraw = load(scan)\n')
    for flag in ("--threads", "--jobs"):
        with pytest.raises(SystemExit) as e:
            main(["run", str(m), flag, value])
        assert e.value.code == 2
        assert f"argument {flag}:" in capsys.readouterr().err


def test_checker_time_grows_linearly_with_the_number_of_diagnostics():
    def seconds(n):
        text = "version 1\n" + "x = nope(1)\n" * n
        t0 = time.perf_counter()
        res = check(parse(text, "big.dfm"))
        t = time.perf_counter() - t0
        assert len(res.diagnostics) == n
        return t

    seconds(1000)  # warm up
    small = min(seconds(2000) for _ in range(2))
    large = min(seconds(16000) for _ in range(2))
    assert large / small < 8 * 3  # linear: ~8; the old quadratic cost gave ~64


def test_a_line_of_very_many_arguments_gives_output_linear_in_their_number():
    """issue 31: 10,000 arguments used 1.2 GB (each error showed the whole line); now each shows the part
    of the line around its column, and an error message spells out the first 50."""
    from damselfly.macros.checker import check
    from damselfly.macros.diagnostics import MacroError
    from damselfly.macros.parser import parse

    sizes = {}
    for n in (1_000, 10_000):
        m = parse('version 1\nraw = load("a.tif")\nx = calibrate(raw, ' + ", ".join(["1"] * n) + ")\n")
        diags = check(m, check_files=False).diagnostics
        sizes[n] = sum(len(d.format()) for d in diags)
        assert len(diags) >= n - 1  # one per extra argument
        assert len(str(MacroError(diags))) < 60 * 400 and str(MacroError(diags)).endswith("more")
    assert sizes[10_000] < 12 * sizes[1_000]  # linear, not quadratic
