"""Errors raised by the engine.

Every error a user can cause is a :class:`DamselflyError`; its message names the file (or object) and
what is wrong, so the command line and the app can show it as it is, without a traceback.
"""

from __future__ import annotations


class DamselflyError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(DamselflyError):
    """Bad input data: an unreadable or truncated file, a wrong shape, NaNs, an unknown class.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str or Path, optional
        The file the problem is in; it is put in front of the message.
    """

    def __init__(self, message: str, path=None):
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class ParameterError(DamselflyError):
    """An action was called with a value it cannot use (wrong type, out of range, unknown choice)."""


class ResourceError(DamselflyError):
    """The machine lacks room for the work (e.g. scratch disk space); the message says what to change."""


class Cancelled(DamselflyError):
    """Raised inside long work when the user pressed Stop (or Ctrl-C)."""

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)
