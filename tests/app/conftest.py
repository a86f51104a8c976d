import os

import pytest

if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    # The test command runs under xvfb-run; a bare `pytest` without a display gets a clear failure.
    pytest.exit("the app tests need an X server: run them with `bash setup.sh test` (it uses xvfb-run)", 3)
