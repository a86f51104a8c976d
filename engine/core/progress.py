"""Progress reporting and cancellation for long work.

One small interface serves the command line (a text progress bar) and the app (a progress bar with a
Stop button). Long-running engine code asks for a task and advances it::

    from damselfly.engine import progress

    task = progress.task("Calibrating", total=n_slices)
    for z in range(n_slices):
        ...                      # work
        task.advance()           # reports, and raises Cancelled if Stop was pressed

Code that runs outside any reporter (plain library use) gets a silent task, so engine functions never
need a ``progress=`` parameter and action signatures stay serialisable.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .errors import Cancelled


@dataclass
class ProgressEvent:
    """One report: ``done`` of ``total`` units of the task named ``message``."""

    message: str
    done: int
    total: int | None
    elapsed: float
    finished: bool = False


class Reporter:
    """Receives progress events and owns the cancellation flag.

    Parameters
    ----------
    callback : callable, optional
        Called with a :class:`ProgressEvent` at most every ``interval`` seconds per task, and always for
        the first and last event of a task.
    on_event : callable, optional
        Called with ``(name, data)`` for named events of long work, e.g. ``("epoch", history_row)``
        after every training epoch (the app plots them live).
    interval : float
        Minimum seconds between two reports of the same task.
    """

    def __init__(self, callback: Callable[[ProgressEvent], None] | None = None, interval: float = 0.1,
                 on_event: Callable[[str, dict], None] | None = None):
        self.callback = callback
        self.on_event = on_event
        self.interval = interval
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the running work to stop at its next check (thread-safe: call it from a Stop button)."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def reset(self) -> None:
        self._cancel.clear()

    def emit(self, event: ProgressEvent) -> None:
        if self.callback is not None:
            self.callback(event)


class Task:
    """A unit of long work; see :func:`task`."""

    def __init__(self, reporter: Reporter | None, message: str, total: int | None):
        self.reporter = reporter
        self.message = message
        self.total = total
        self.done = 0
        self._t0 = time.perf_counter()
        self._last = -1e9
        self._report(force=True)

    def _report(self, force: bool = False, finished: bool = False) -> None:
        if self.reporter is None:
            return
        now = time.perf_counter()
        if force or finished or now - self._last >= self.reporter.interval:
            self._last = now
            self.reporter.emit(ProgressEvent(self.message, self.done, self.total, now - self._t0, finished))

    def check(self) -> None:
        """Raise :class:`~engine.errors.Cancelled` if the user asked to stop."""
        if self.reporter is not None and self.reporter.cancelled:
            raise Cancelled()

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more units done, report, and check for cancellation."""
        self.done += n
        self._report()
        self.check()

    def finish(self) -> None:
        if self.total is not None:
            self.done = self.total
        self._report(finished=True)


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("damselfly_reporter", default=None)


def task(message: str, total: int | None = None) -> Task:
    """Start a task reported to the active reporter (silent when there is none)."""
    return Task(_current.get(), message, total)


def check() -> None:
    """Raise :class:`~engine.errors.Cancelled` if the active reporter was cancelled."""
    rep = _current.get()
    if rep is not None and rep.cancelled:
        raise Cancelled()


def event(name: str, **data) -> None:
    """Tell the active reporter's ``on_event`` about a named event (nothing happens without one)."""
    rep = _current.get()
    if rep is not None and rep.on_event is not None:
        rep.on_event(name, data)


@contextlib.contextmanager
def reporting(reporter: Reporter | None):
    """Make ``reporter`` the active one inside the ``with`` block."""
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)
