"""What a run shows on a terminal: a progress bar and a line per statement (the CLI and the demo)."""

from __future__ import annotations

import sys

from damselfly.engine.core.progress import ProgressEvent


class TextProgress:
    """A one-line progress bar on stderr (only when stderr is a terminal)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def __call__(self, ev: ProgressEvent) -> None:
        if not self.tty:
            return
        if ev.total:
            frac = min(1.0, ev.done / ev.total)
            bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
            line = f"\r  [{bar}] {100 * frac:5.1f}%  {ev.message}  {ev.elapsed:6.1f}s"
        else:
            line = f"\r  {ev.message} ... {ev.done}  {ev.elapsed:6.1f}s"
        self.stream.write(line + "\x1b[K" + ("\n" if ev.finished else ""))
        self.stream.flush()


def print_statement(st, i, n):
    """``[i/n] line L: target = action(...)`` on stderr, before each statement runs."""
    target = f"{st.target} = " if hasattr(st, "target") else ""
    print(f"[{i + 1}/{n}] line {st.line}: {target}{st.call.action}(...)", file=sys.stderr, flush=True)
