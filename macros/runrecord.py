"""Run records (``run.json``), the output-folder lock, and the rule for when a scan is done.

A run into an output folder:

1. takes the folder's lock (:class:`FolderLock`); a second run into the same folder gets a clear error;
2. removes what interrupted writes left there (:func:`engine.io.remove_stale_temporaries`);
3. replaces any old record by one with status ``running`` *before it writes anything*, so a stale
   ``ok`` can never describe a folder that is being rewritten;
4. adds each output (with its SHA-256) to the record as soon as the action that wrote it returns;
5. ends with status ``ok``, ``failed`` or ``cancelled``.

``--resume`` skips a scan only when :func:`done_reason` finds nothing wrong: status ``ok``, the same
macro text (SHA-256), the same params, every input with the size and modification time it had
(``size`` + ``mtime_ns``: re-hashing gigabytes on every resume would cost minutes; a changed file keeps
its size and time only if someone sets them back on purpose), and every output present with the
SHA-256 recorded.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from pathlib import Path

from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.io import _files as io
from damselfly.engine.report._run import RUN_RECORD, read_record  # noqa: F401 (read_record: for workers)

LOCK_FILE = ".damselfly.lock"


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def macro_sha256(source: str) -> str:
    """The hash a run record keeps of the macro text (and ``--resume`` compares)."""
    return hashlib.sha256(source.encode()).hexdigest()


def record_params(params: dict) -> dict:
    """Params as the run record keeps them (and ``--resume`` compares): JSON values, paths as strings."""
    return json.loads(json.dumps(params, default=str))


def file_state(path: str | os.PathLike) -> dict | None:
    """Size and modification time of a file, or over the files of a folder; ``None`` if missing."""
    p = Path(path)
    try:
        if p.is_dir():
            stats = [q.stat() for q in sorted(p.rglob("*")) if q.is_file()]
            return {"size": sum(s.st_size for s in stats), "mtime_ns": max((s.st_mtime_ns for s in stats), default=0),
                    "files": len(stats)}
        s = p.stat()
    except OSError:
        return None
    return {"size": s.st_size, "mtime_ns": s.st_mtime_ns}


def input_record(path: str) -> dict | None:
    """What the run record keeps of an input: size, modification time and SHA-256."""
    state = file_state(path)
    return None if state is None else {**state, "sha256": io.file_sha256(path)}


def same_input(path: str, earlier: dict | None) -> dict | None:
    """The input's record at the end of a run: the one made when it was first read while its size and
    modification time are unchanged (no second hash of a big scan), else a new one."""
    state = file_state(path)
    if earlier and state and all(earlier.get(k) == v for k, v in state.items()):
        return earlier
    return input_record(path)


def output_info(ev) -> dict:
    """What a report needs to know of an output beyond its file: the action that wrote it, and the type,
    name, unit and kind of measurement (``metadata["measure"]``) of the object saved."""
    obj = next((v for v in ev.args.values() if hasattr(v, "metadata")), None)
    info = {"action": ev.action}
    if obj is not None:
        info.update(type=type(obj).__name__, name=getattr(obj, "name", ""),
                    unit=getattr(obj, "unit", None) or obj.metadata.get("unit", ""))
        if obj.metadata.get("measure"):
            info["measure"] = obj.metadata["measure"]
    return info


def statement_times(timings: list) -> list[dict]:
    """The run record's per-statement timings (line, action, result name, seconds)."""
    return [{"line": t.line, "action": t.action, "target": t.target, "seconds": round(t.seconds, 3)} for t in timings]


def write_record(out_dir: str | os.PathLike, record: dict) -> None:
    io.write_text(Path(out_dir) / RUN_RECORD, json.dumps(record, indent=2, default=str) + "\n")


def done_reason(out_dir: str | os.PathLike, macro_sha256: str, params: dict) -> str | None:
    """``None`` if ``out_dir`` holds a finished run of this macro with these params whose inputs and
    outputs are unchanged (the module docstring's rule); otherwise why the scan must run again."""
    rec = read_record(out_dir)
    if rec is None:
        return "no run record"
    if rec.get("status") != "ok":
        return f"the last run ended '{rec.get('status')}'"
    if rec.get("macro_sha256") != macro_sha256:
        return "the macro changed"
    if record_params(params) != rec.get("params"):
        return "the params changed"
    for path, was in (rec.get("inputs") or {}).items():
        state = file_state(path)
        if not isinstance(was, dict) or state is None:
            return f"input {path} is missing"
        if (state["size"], state["mtime_ns"]) != (was.get("size"), was.get("mtime_ns")):
            return f"input {path} changed"
    for path, sha in (rec.get("output_sha256") or {}).items():
        if not Path(path).exists():
            return f"output {path} is missing"
        if io.file_sha256(path) != sha:
            return f"output {path} changed"
    return None


def unfinished_outputs(out_dir: str | os.PathLike) -> frozenset[str]:
    """Outputs an unfinished run (status other than ``ok``) wrote or was writing into ``out_dir``: a
    resumed run may replace them even with overwriting off."""
    rec = read_record(out_dir)
    if rec is None or rec.get("status") == "ok":
        return frozenset()
    paths = list(rec.get("outputs") or []) + list(rec.get("pending") or [])
    return frozenset(str(Path(p).resolve()) for p in paths if isinstance(p, str))


class FolderLock:
    """An exclusive lock on an output folder for the length of a run (``with FolderLock(out):``).

    The lock is an OS file lock on ``<folder>/.damselfly.lock``: it is released when the process
    ends, however it ends, so a killed run never leaves the folder locked. Where the OS has no
    ``fcntl`` (Windows), runs are not locked against each other.

    Raises
    ------
    DamselflyError
        Another run holds the folder.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._fd: int | None = None

    def __enter__(self) -> FolderLock:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        path = self.folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise DamselflyError(f"{self.folder}: cannot write the run's lock file into this folder "
                                 f"({e.strerror or e}); choose another output folder or make it writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise DamselflyError(f"{self.folder}: another Damselfly run is writing into this folder ({holder}); "
                                 "wait for it to finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} since {now()}".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the lock
            self._fd = None
