import os

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    # The test command runs under xvfb-run; a bare `pytest` without a display gets a clear failure.
    pytest.exit("the app tests need an X server: run them with `bash setup.sh test` (it uses xvfb-run)", 3)


@pytest.fixture()
def win(qtbot, tmp_path):
    """The main window over ``tmp_path`` on the CPU, shown; its questions are answered No (Discard)."""
    from damselfly.app.window import MainWindow

    w = MainWindow(base_dir=tmp_path, out_dir=tmp_path / "out", device="cpu")
    w.asked = []
    w.ask = lambda question: w.asked.append(question) and False  # questions are answered No unless a test says
    w.ask_save = lambda question: w.asked.append(question) or "discard"
    qtbot.addWidget(w)
    w.show()
    yield w
    w.worker.stop()
    w.worker.wait(30)


#: The casting phantom the app tests open (z, y, x).
SHAPE = (32, 48, 48)


@pytest.fixture()
def scan(tmp_path):
    """A small casting phantom saved as ``part_01.tif``: (its path, its truth)."""
    from pathlib import Path

    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    vol, truth = phantoms.casting(SHAPE, seed=3)
    path = io.write_volume(vol, tmp_path / "part_01.tif")
    return Path(path), truth


@pytest.fixture()
def grains(tmp_path):
    """Ice grains and air (33 x 64 x 64, no spacing) saved as ``ice_01.tif``: (its path, its truth)."""
    from pathlib import Path

    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io

    vol, truth = phantoms.grains((33, 64, 64), seed=2)
    return Path(io.write_volume(vol, tmp_path / "ice_01.tif")), truth
