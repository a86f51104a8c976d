"""The run context: what an action may know about the run it is part of.

Run settings are not part of a macro (the same macro runs on a laptop and a GPU node), so they cannot be
action arguments either. An action that needs one declares a keyword-only parameter typed
:class:`RunContext`; the registry hides it from the macro signature and the session hands it over.
Nothing else is hidden: an action's behaviour is readable from its signature and this object.

Examples
--------
>>> from damselfly.engine.core.context import RunContext
>>> ctx = RunContext(device="cpu", out_dir="/data/out", overwrite=False)
>>> ctx.may_replace("/data/out/seg.tif")
False
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .errors import ParameterError
from .progress import Reporter


def check_device_name(device: str) -> None:
    """Raise :class:`ParameterError` unless ``device`` is ``auto``, ``cpu`` or ``cuda``."""
    if device not in ("auto", "cpu", "cuda"):
        raise ParameterError(f"device must be auto, cpu or cuda, got {device!r}")


@dataclass(frozen=True)
class RunContext:
    """Run settings an action may read.

    Parameters
    ----------
    device : {"auto", "cpu", "cuda"}
        Where networks run; ``auto`` takes a GPU when there is one.
    threads : int, optional
        CPU threads for PyTorch (``None``: the library default).
    out_dir : Path
        The run's output folder (paths arrive resolved; actions put extra files, such as training
        previews, here).
    overwrite : bool
        Whether an action may replace an existing output file.
    replaceable : frozenset of str
        Files an unfinished earlier run wrote: replaceable even when ``overwrite`` is off.
    reporter : Reporter
        Progress and Stop for this run (the session makes it current while the action runs, so
        library code reports through :func:`damselfly.engine.core.progress.task`).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    out_dir: Path = field(default_factory=Path.cwd)
    overwrite: bool = True
    replaceable: frozenset[str] = frozenset()
    reporter: Reporter = field(default_factory=Reporter, compare=False)

    def __post_init__(self):
        check_device_name(self.device)
        object.__setattr__(self, "out_dir", Path(self.out_dir).absolute())

    def may_replace(self, path: str | os.PathLike) -> bool:
        """Whether an action may replace an existing file at ``path``."""
        return self.overwrite or str(Path(path).resolve()) in self.replaceable
