"""A session file is an input like any other (issue 31): its relative paths lie beside it, not in the
app's working folder; a bad field is a clear error naming it, and nothing is half restored."""

import json

import pytest

from .test_app import settle


def _session(tmp_path, scan, **view):
    doc = {"format": "damselfly-session", "version": 1,
           "objects": [{"name": "raw", "action": "load", "args": {"path": scan.name}}],
           "view": {"volume": "raw", "axis": "z", "index": 3, **view}, "macro": {"text": "", "path": None}}
    p = tmp_path / "work.dfsession"
    p.write_text(json.dumps(doc))
    return p


def test_relative_paths_in_a_session_lie_beside_it(qtbot, win, scan, tmp_path, monkeypatch):
    from damselfly.app.session_file import FORMAT

    path, _truth = scan
    assert FORMAT == "damselfly-session"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the app's working folder holds no such file
    assert win.restore_session(_session(tmp_path, path))
    settle(qtbot, win)
    assert win.session["raw"].metadata["source"] == str(path.resolve()) and win.messages == []


@pytest.mark.parametrize("view, field", [({"zoom": "big"}, "zoom"), ({"index": 2 ** 40}, "index"),
                                         ({"axis": "w"}, "axis"), ({"pan": [1, "x"]}, "pan"),
                                         ({"hidden_classes": [-1]}, "hidden_classes")])
def test_a_bad_view_field_is_named_and_nothing_is_restored(qtbot, win, scan, tmp_path, view, field):
    path, _truth = scan
    assert not win.restore_session(_session(tmp_path, path, **view))
    settle(qtbot, win)
    assert f"view field '{field}'" in win.messages[-1] and "raw" not in win.session.objects


def test_a_session_nested_too_deep_is_a_clear_error(qtbot, win, tmp_path):
    p = tmp_path / "deep.dfsession"
    p.write_text("[" * 100_000 + "]" * 100_000)
    assert not win.restore_session(p)
    assert "cannot restore the session" in win.messages[-1] and "internal error" not in win.messages[-1]
