"""Where a run may write: output paths confined to the output folder, never onto an input.

The rules (the README's "What Damselfly promises about your data"):

- An output path is relative to the run's output folder and stays inside it: absolute paths, ``~``,
  ``..`` that climbs out, and symbolic links that lead out are refused, unless the run allows outputs
  anywhere (a run setting, ``--allow-outside-out``, never a macro statement).
- An output never is the output folder itself, never replaces an input of the run, never lies inside
  an input folder and never is a folder that holds an input.
- Path text that no file system can hold (NUL, lone surrogates, a name over 255 bytes, a path over
  4096 bytes) is refused with a message saying so, before anything is written.

The same functions serve the checker (before anything runs) and the session (when an action writes).

Examples
--------
>>> from pathlib import Path
>>> confine_output("seg/scan_seg.tif", Path("/data/out")).as_posix()
'/data/out/seg/scan_seg.tif'
>>> confine_output("../x.tif", Path("/data/out"))
Traceback (most recent call last):
...
engine.errors.ParameterError: output '../x.tif' leaves the output folder /data/out (outputs stay inside it; \
the run setting --allow-outside-out lifts this)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from .errors import ParameterError

#: Longest file name (one path component) and whole path, in bytes, that common file systems hold.
NAME_MAX = 255
PATH_MAX = 4096


def check_path_text(text: str, what: str = "path") -> None:
    """Raise :class:`ParameterError` if ``text`` cannot name a file on any common file system."""
    shown = text if len(text) <= 60 else text[:40] + "..." + text[-12:]
    if text == "":
        raise ParameterError(f"{what} is empty")
    if "\x00" in text:
        raise ParameterError(f"{what} {shown!r} holds a NUL character")
    try:
        raw = os.fsencode(text)
    except UnicodeError:
        raise ParameterError(f"{what} {shown!r} holds characters that are not valid Unicode "
                             "(lone surrogates)") from None
    if len(raw) > PATH_MAX:
        raise ParameterError(f"{what} is {len(raw)} bytes long; paths can be at most {PATH_MAX}")
    for part in raw.split(b"/"):
        if len(part) > NAME_MAX:
            raise ParameterError(f"{what} {shown!r} has a name of {len(part)} bytes; file names can be at "
                                 f"most {NAME_MAX}")


def _real(p: Path) -> Path:
    """``p`` with symbolic links of its existing part resolved (it need not exist)."""
    try:
        return Path(os.path.realpath(p))
    except (OSError, ValueError):
        return p.absolute()


def _within(p: Path, folder: Path) -> bool:
    return p == folder or folder in p.parents


def confine_output(path: str, out_dir: Path, allow_outside: bool = False,
                   inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """The absolute path an output ``path`` names, after checking the rules in the module docstring.

    Parameters
    ----------
    path : str
        The output path as the macro gives it (templates already expanded).
    out_dir : Path
        The run's output folder.
    allow_outside : bool
        The run setting that lets outputs go anywhere (the input rules still hold).
    inputs : iterable of path
        The run's inputs (files and folders) that no output may replace.

    Raises
    ------
    ParameterError
        What rule ``path`` breaks, naming it.
    """
    check_path_text(path, "output path")
    out_dir = Path(os.path.normpath(Path(out_dir).absolute()))
    full = Path(os.path.normpath(out_dir / os.path.expanduser(path)))
    real, real_out = _real(full), _real(out_dir)
    if not allow_outside:
        hint = "(outputs stay inside it; the run setting --allow-outside-out lifts this)"
        if not _within(full, out_dir):
            raise ParameterError(f"output '{path}' leaves the output folder {out_dir} {hint}")
        if not _within(real, real_out):
            raise ParameterError(f"output '{path}' leads out of the output folder through a symbolic link "
                                 f"(to {real}) {hint}")
    if real == real_out:
        raise ParameterError(f"output '{path}' is the output folder itself; name a file inside it")
    for one in inputs:
        src = _real(Path(one))
        if real == src:
            raise ParameterError(f"output '{path}' would replace the run's input {src}")
        if _within(src, real):
            raise ParameterError(f"output '{path}' would replace the folder that holds the run's input {src}")
        if _within(real, src):
            raise ParameterError(f"output '{path}' lies inside the run's input folder {src}")
    return full
