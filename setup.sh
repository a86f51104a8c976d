#!/usr/bin/env bash
# Set Damselfly up in ./.venv, then do one job:
#   bash setup.sh demo    set up, then run `damselfly demo` on the bundled example
#   bash setup.sh test    set up with the developer tools, then lint and run the test suite
#   bash setup.sh         set up only
# Safe to run again: it only installs what changed.
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-}"
PY="${PYTHON:-python3}"

if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
VPY=.venv/bin/python

# PyTorch first, pinned to the CPU build (an unpinned torch pulls several GB of CUDA packages).
if ! "$VPY" -c "import torch" 2>/dev/null; then
    "$VPY" -m pip install -q "torch==2.13.0" || "$VPY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi

extras="[app]"                         # the desktop app's Qt libraries; the headless core needs none
[ "$job" = "test" ] && extras="[app,dev]"
stamp=".venv/.setup-stamp$extras"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    "$VPY" -m pip install -q -e ".$extras"
    echo "$want" > "$stamp"
fi
# the tests exercise the example plugin (examples/plugin): an action from another installed package
if [ "$job" = "test" ] && ! "$VPY" -c "import damselfly_unsharp" 2>/dev/null; then
    "$VPY" -m pip install -q --no-deps -e examples/plugin
fi

case "$job" in
    demo)
        exec .venv/bin/damselfly demo "${@:2}"
        ;;
    test)
        # GUI tests need a real X server (Qt's offscreen platform cannot give VTK an OpenGL context) and
        # the X libraries Qt's xcb platform plugin loads; install what is missing (Debian/Ubuntu, as root).
        qtlibs="xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
                libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libxcb-xfixes0
                libdbus-1-3 libfontconfig1 libegl1 libgl1"
        if command -v dpkg-query >/dev/null && ! dpkg-query -W $qtlibs >/dev/null 2>&1; then
            if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
                (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $qtlibs) >/dev/null
            else
                echo "error: the GUI tests need: sudo apt-get install $(echo $qtlibs)" >&2; exit 1
            fi
        fi
        # the reports are tested in headless Chromium; where it cannot be installed those tests skip, saying so
        browser="chromium chromium-driver"
        if command -v dpkg-query >/dev/null && ! dpkg-query -W $browser >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
                && command -v apt-get >/dev/null; then
            (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $browser) >/dev/null 2>&1 \
                || echo "warning: could not install $browser: the browser tests of the reports will skip" >&2
        fi
        .venv/bin/ruff check engine macros app tests benchmarks examples
        run=(.venv/bin/python -m pytest -q "${@:2}")
        if command -v xvfb-run >/dev/null 2>&1; then
            exec xvfb-run -a "${run[@]}"
        fi
        exec "${run[@]}"
        ;;
    "") echo "set up in .venv (run: .venv/bin/damselfly --help)" ;;
    *) echo "usage: bash setup.sh [demo|test]" >&2; exit 2 ;;
esac
