"""Atomic outputs: every file is written under a temporary name beside its final name and renamed only
when complete; what interrupted writes leave is recognised by its name and removed; a folder is
replaced only if it is a slice folder Damselfly wrote (nothing of the user's is ever deleted).

Examples
--------
>>> from pathlib import Path
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> with atomic_path(folder / "notes.txt") as tmp:
...     _ = tmp.write_text("complete")
>>> (folder / "notes.txt").read_text()
'complete'
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

#: The file that marks a folder of TIFF slices as Damselfly's: it lists the slices it wrote.
SLICE_MARKER = ".damselfly-slices.json"
#: The file that marks a Zarr store as one Damselfly wrote.
ZARR_MARKER = ".damselfly-written"
#: Temporary names of :func:`atomic_path` (``.<name>.<8 random>.partial<suffixes>``) and of a replaced
#: slice folder set aside (``.<name>.old-<pid>``): what :func:`remove_stale_temporaries` may delete.
_TEMP_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.partial(\.[^/]*)?$")
_OLD_NAME = re.compile(r"^\..+\.old-\d+$")


def is_own_folder(path: Path) -> bool:
    """Whether ``path`` is a folder Damselfly wrote (safe to replace): a folder of slices holding nothing
    but its listed slices, or a Zarr store carrying Damselfly's marker."""
    if (path / ZARR_MARKER).is_file():
        return True
    try:
        listed = set(json.loads((path / SLICE_MARKER).read_text(encoding="utf-8"))["files"])
        present = {q.name for q in path.iterdir()} - {SLICE_MARKER}
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return present <= listed and all((path / n).is_file() and not (path / n).is_symlink() for n in present)


def _remove_own_folder(path: Path) -> None:
    """Delete a folder :func:`is_own_folder` accepted: a Zarr store whole; a slice folder by its list."""
    if (path / ZARR_MARKER).is_file():
        shutil.rmtree(path, ignore_errors=True)
        return
    listed = json.loads((path / SLICE_MARKER).read_text(encoding="utf-8"))["files"]
    for n in listed + [SLICE_MARKER]:
        with contextlib.suppress(FileNotFoundError):
            (path / n).unlink()
    with contextlib.suppress(OSError):
        path.rmdir()


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what interrupted writes left in ``folder`` (recursively): :func:`atomic_path` temporaries
    and slice folders set aside for replacement. Call it only while holding the folder's run lock.
    Returns what was removed."""
    removed: list[Path] = []
    for root, dirs, files in os.walk(os.fspath(folder)):
        for name in files:
            if _TEMP_NAME.match(name):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(root, name))
                    removed.append(Path(root, name))
        for name in list(dirs):
            full = Path(root, name)
            if full.is_symlink():
                continue
            if _TEMP_NAME.match(name) or (_OLD_NAME.match(name) and is_own_folder(full)):
                shutil.rmtree(full, ignore_errors=True)
                removed.append(full)
                dirs.remove(name)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` when the block succeeds.

    The temporary name keeps the file's suffixes, so writers that pick a format from the name work.
    On error the temporary file (or folder) is removed and ``path`` is left as it was. An existing
    folder is replaced only if it is a slice folder Damselfly wrote (:func:`is_own_folder`):
    nothing the user put there is ever deleted.
    """
    dest = Path(path)
    exists = dest.exists() or dest.is_symlink()
    if exists and not overwrite:
        raise InputError("exists already (overwriting is off)", dest)
    if dest.is_dir() and not dest.is_symlink() and not is_own_folder(dest):
        raise InputError("is an existing folder that Damselfly did not write; choose another output name "
                         "(nothing was changed)", dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmpname = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial" + "".join(dest.suffixes),
                                       dir=dest.parent)
    except OSError as e:
        raise InputError(f"cannot write here: {e.strerror or e}", dest) from None
    os.close(fd)
    tmp = Path(tmpname)
    tmp.unlink()
    try:
        yield tmp
        if tmp.is_file():  # mkstemp makes 0600 files; give the usual permissions (umask applied)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        if dest.is_dir() and not dest.is_symlink():
            if not tmp.is_dir():
                raise InputError("is a folder; cannot replace it with a file", dest)
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            _remove_own_folder(old)
        else:
            if tmp.is_dir() and exists:
                os.unlink(dest)  # a file (or link) replaced by a folder of slices
            os.replace(tmp, dest)
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
        if is_disk_full(e):
            raise InputError(f"the disk is full (no space left writing it; {free_space(dest.parent)} free on "
                             "that filesystem); the partial file was removed", dest) from None
        if isinstance(e, OSError) and not isinstance(e, InputError):  # e.g. an immutable file in the way
            raise InputError(f"cannot write it: {e.strerror or e}; nothing was replaced", dest) from None
        raise


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the quota) is full, whatever library raised it."""
    import errno

    return isinstance(e, OSError) and (e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left" in str(e)
                                       or "Disk quota exceeded" in str(e))


def free_space(folder: Path) -> str:
    """The free space of ``folder``'s filesystem, in words."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "unknown space"
    for unit, size in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
        if free >= size:
            return f"{free / size:.1f} {unit}"
    return f"{free} bytes"


def check_room(path: Path, nbytes: int) -> None:
    """Refuse a write of up to ``nbytes`` where the filesystem has less free space: for writers that
    crash rather than fail on a full disk (HDF5's library ended the process with a segfault)."""
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return
    if free < nbytes:
        raise InputError(f"needs up to {nbytes / 2 ** 20:.1f} MiB and the disk has {free_space(Path(path).parent)} "
                         "free; nothing was written", path)


def write_text(path: Path, text: str, overwrite: bool = True) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path, overwrite) as tmp:
        tmp.write_text(text, encoding="utf-8")
