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
