"""Make docs/app_screenshot.png: the app under Xvfb with the bundled casting, its painted slices, a
recorded macro, the window/level histogram, the layer panel, the linked cursor and the 3-D view, as a
user would have it after a few minutes.

    xvfb-run -a .venv/bin/python docs/screenshot.py
"""

from pathlib import Path

from PySide6.QtWidgets import QApplication

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    app = QApplication([])
    from damselfly.app.window import MainWindow

    data = ROOT / "examples" / "data"
    w = MainWindow(base_dir=data, out_dir=Path("/tmp/damselfly-screenshot"), device="cpu")
    w.resize(1600, 980)
    w.ask = lambda question: False  # no modal questions in a script
    w.ask_save = lambda question: "discard"
    w.show()

    def wait():
        while w.worker.busy:
            app.processEvents()
        for _ in range(5):
            app.processEvents()

    w.open_files([str(data / "casting.tif")])
    wait()
    w.set_recording(True)  # after loading: the scan is still recorded as param scan
    w.run_action("calibrate", w.session["raw"], target="cal", low=0.5, high=99.5)
    wait()
    w.run_action("load_labels", str(data / "casting_painted.tif"), target="painted")
    wait()
    w.select("cal")
    w.select("painted")
    w.set_slice(64)
    w.canvas.set_cursor((70, 58))  # the linked cursor's crosshair
    w.set_tool("brush")
    w.update_3d()
    if w.view3d is not None:
        w.view3d.preset("iso")
    w.centralWidget().setSizes([620, 520])
    for _ in range(20):
        app.processEvents()
    out = ROOT / "docs" / "app_screenshot.png"
    w.grab().save(str(out))
    print(out)
    w.close()


if __name__ == "__main__":
    main()
