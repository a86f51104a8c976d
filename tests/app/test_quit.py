"""The app quits on SIGTERM and Ctrl-C as Quit does; unsaved work goes to a recovery session offered at
the next start (issue 30)."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from .test_app import settle


@pytest.fixture()
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("DAMSELFLY_CONFIG_DIR", str(tmp_path / "config"))
    return tmp_path / "config"


def test_a_signal_saves_painted_work_for_the_next_start(qtbot, win, scan, config, tmp_path):
    from damselfly.app.window import MainWindow

    path, truth = scan
    win.open_files([str(path)])
    settle(qtbot, win)
    layer = win.new_label_layer(["air", "metal"])
    win.set_tool("brush")
    win.set_slice(10)
    win.canvas.paint_at([(5, 5), (5, 6)])
    painted = np.array(layer.data)
    assert painted.any() and win.unsaved_work() == ["painted labels 'painted'"]
    win.quit_on_signal(signal.SIGTERM)
    assert not win.isVisible() and win.asked == []  # no question: nobody is there to answer it
    recovery = config / "recovery" / "recovery.dfsession"
    assert recovery.exists()
    again = MainWindow(base_dir=tmp_path, out_dir=tmp_path / "out2", device="cpu")
    qtbot.addWidget(again)
    asked = []
    again.ask = lambda q: asked.append(q) or True
    assert again.offer_recovery()
    settle(qtbot, again)
    assert "ended by a signal" in asked[0] and not recovery.exists()
    np.testing.assert_array_equal(np.asarray(again.session["painted"].data), painted)
    assert not again.offer_recovery()  # offered once


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_app_process_quits_on_sigterm_and_ctrl_c(tmp_path, config, sig):
    exe = os.path.join(os.path.dirname(sys.executable), "damselfly")
    proc = subprocess.Popen([exe, "app"], cwd=tmp_path, env={**os.environ, "DAMSELFLY_CONFIG_DIR": str(config)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(6)  # let it start (a signal during start-up quits it as cleanly)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    # a clean quit: exit status 0 (killed by SIGTERM it would be -15; a Ctrl-C traceback 1), nothing to recover
    assert proc.returncode == 0 and "Traceback" not in err, err
    assert not (config / "recovery" / "recovery.dfsession").exists()


def test_the_app_names_a_missing_x_library_and_how_to_install_it(monkeypatch, capsys):
    import ctypes.util

    from damselfly.app import main

    real = ctypes.util.find_library
    monkeypatch.setattr(ctypes.util, "find_library", lambda n: None if n == "xcb-cursor" else real(n))
    monkeypatch.setenv("DISPLAY", ":99")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    assert main() == 1
    err = capsys.readouterr().err
    assert "libxcb-cursor" in err and "sudo apt-get install libxcb-cursor0" in err
