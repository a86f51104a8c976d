"""Long work off the GUI thread: one job at a time, progress and named events as Qt signals.

The window never freezes: actions, macro runs and batches run in a Python thread; the engine's
:class:`~engine.progress.Reporter` calls back from that thread and this object re-emits the calls as
signals, which Qt delivers on the GUI thread. Stop sets the reporter's cancel flag.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from damselfly.engine import Cancelled, DamselflyError
from damselfly.engine.core import progress
from damselfly.engine.core.progress import ProgressEvent, Reporter


def describe_error(e: BaseException) -> str:
    """The message a user sees: ours name the file and line; anything else is an internal error."""
    if isinstance(e, DamselflyError):
        return str(e)
    return f"internal error: {type(e).__name__}: {e}\n\n{''.join(traceback.format_exception(e, limit=4))}"


class Worker(QObject):
    """Runs one job at a time in a thread. Signals: ``progress(message, done, total)`` (total -1 when
    unknown), ``named(name, data)`` (e.g. training epochs), ``done(label, result)``,
    ``failed(label, message)``, ``stopped(label, message)``, ``busy_changed(bool)``."""

    progress = Signal(str, int, int)
    named = Signal(str, dict)
    done = Signal(str, object)
    failed = Signal(str, str)
    stopped = Signal(str, str)
    busy_changed = Signal(bool)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.reporter = Reporter(self._on_progress, interval=0.1, on_event=self._on_named)
        self._thread: threading.Thread | None = None
        self._running = False

    @property
    def busy(self) -> bool:
        return self._running

    def _on_progress(self, ev: ProgressEvent) -> None:
        self.progress.emit(ev.message, int(ev.done), -1 if ev.total is None else int(ev.total))

    def _on_named(self, name: str, data: dict) -> None:
        self.named.emit(name, dict(data))

    def start(self, label: str, fn: Callable[[], object]) -> bool:
        """Run ``fn()`` in a thread; ``False`` (and nothing runs) when a job is already running."""
        if self.busy:
            return False
        self.reporter.reset()
        self._running = True
        self.busy_changed.emit(True)

        def body():
            try:
                with progress.reporting(self.reporter):  # library code reports and honours Stop here too
                    result = fn()
            except Cancelled as e:
                self.stopped.emit(label, str(e) or "stopped")
            except BaseException as e:  # shown as a message, never a crash
                self.failed.emit(label, describe_error(e))
            else:
                self.done.emit(label, result)
            finally:
                self._running = False
                self.busy_changed.emit(False)

        self._thread = threading.Thread(target=body, name=f"damselfly: {label}", daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Ask the running job to stop at its next check (training keeps its best model)."""
        self.reporter.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (tests and shutdown); ``True`` if it did."""
        t = self._thread
        if t is not None:
            t.join(timeout)
            return not t.is_alive()
        return True
