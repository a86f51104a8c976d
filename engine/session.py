"""The session: named objects, run settings, and one event per executed action.

The app and the macro interpreter both call actions through :meth:`Session.run`; the recorder is just a
subscriber to the events it emits. Recording and replay are therefore one code path.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .builtin import BUILTIN
from .core import _blocks as blocks
from .core import progress
from .core._paths import check_path_text, confine_output
from .core.context import RunContext, check_device_name
from .core.data import Labels, Volume
from .core.errors import Cancelled, DamselflyError, InputError, ParameterError
from .registry import OBJECT_TYPES, ActionSpec, Registry, object_classes

OBJECT_CLASSES = tuple(OBJECT_TYPES.values())


@dataclass
class Settings:
    """Run settings: not part of a macro, so the same macro runs on a laptop and a GPU node.

    ``device``, ``threads``, ``out_dir``, ``overwrite`` and ``replaceable`` are what actions see, through
    the :class:`~damselfly.engine.core.context.RunContext` that :meth:`Session.context` makes of them. The
    rest is the session's own: ``blocks`` (where block-wise actions run their blocks, made current while
    an action runs, like the progress reporter: :mod:`~damselfly.engine.core._blocks`), ``base_dir``
    (relative input paths are resolved against it: the macro's folder), ``allow_outside`` (outputs may
    leave ``out_dir``: absolute paths, ``..``, ``~``; off by default) and ``protected`` (inputs known before the run starts, such as the macro file and the
    checked inputs, which no output may replace; inputs the actions read are added as the run goes).
    """

    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    out_dir: Path = field(default_factory=Path.cwd)
    overwrite: bool = True
    allow_outside: bool = False
    protected: tuple[str, ...] = ()
    replaceable: frozenset[str] = frozenset()
    blocks: Callable | None = field(default=None, compare=False)

    def __post_init__(self):
        check_device_name(self.device)
        self.base_dir = Path(self.base_dir).resolve()
        self.out_dir = Path(self.out_dir).resolve()


@dataclass
class ActionEvent:
    """Emitted after an action ran.

    Attributes
    ----------
    action : str
        The action's name.
    target : str or None
        The name its result was bound to.
    args : dict
        The arguments as the caller gave them (macro parameter names, in call order), paths unresolved.
    arg_names : dict
        For arguments that were session objects, the name they had when the action was called.
    result : object
        What the action returned.
    resolved : dict
        Path arguments after resolution (absolute paths).
    seconds : float
        Wall time of the action.
    """

    action: str
    target: str | None
    args: dict[str, Any]
    arg_names: dict[str, str]
    result: Any
    resolved: dict[str, str | list]
    seconds: float


#: The readers of the formats the engine loads: an exception raised inside one of them while an action
#: runs is a file that cannot be read (a corrupt chunk found only when its slab is read), not a bug.
READERS = ("zarr", "numcodecs", "h5py", "tifffile", "mrcfile", "nibabel", "nrrd", "pydicom", "imagecodecs")


def corrupt_input(e: Exception, inputs: list) -> InputError | None:
    """An :class:`InputError` naming the input files when ``e`` was raised inside a format reader."""
    import traceback

    parts = {part for frame in traceback.extract_tb(e.__traceback__)
             for part in os.path.normpath(frame.filename).split(os.sep)}
    if not parts & set(READERS) or isinstance(e, MemoryError):
        return None
    files = []
    for x in inputs:
        src = x.metadata.get("source") if isinstance(x, (Volume, Labels)) else str(x)
        if src and src not in files:
            files.append(src)
    where = ", ".join(files) or "an input"
    return InputError(f"cannot read {where}: the data are corrupt or truncated ({type(e).__name__}: {e})")


def _reads_files(spec: ActionSpec) -> bool:
    """Whether an action makes its result from files alone (an input path, no objects): a loader."""
    return (any(p.path_kind == "input" and p.required for p in spec.params)
            and not any(object_classes(p.annotation) for p in spec.params))


class Session:
    """Named objects plus run settings; runs actions and tells subscribers about each one.

    Examples
    --------
    >>> s = Session(Settings(out_dir="out"))                               # doctest: +SKIP
    >>> raw = s.run("load", "scan.tif", target="raw")                      # doctest: +SKIP
    >>> cal = s.run("calibrate", raw, method="percentile", target="cal")   # doctest: +SKIP
    """

    def __init__(self, settings: Settings | None = None, reporter: progress.Reporter | None = None,
                 registry: Registry | None = None):
        self.settings = settings or Settings()
        self.registry = registry or BUILTIN
        self.reporter = reporter or progress.Reporter()
        self.objects: dict[str, Any] = {}
        self.inputs: list[str] = []  # every input path an action was given, resolved, in order
        #: For objects an action read from files (``load``, ``load_labels``, ``load_model``): the event that
        #: made them (without its result), so a recording started later can record where they came from.
        self.sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._subscribers: list[Callable[[ActionEvent], None]] = []
        self._before: list[Callable[[ActionSpec, dict], None]] = []

    # -- events ---------------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[ActionEvent], None]) -> Callable[[], None]:
        """Call ``fn(event)`` after every action; returns a function that unsubscribes."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def before_each(self, fn: Callable[[ActionSpec, dict], None]) -> None:
        """Call ``fn(spec, resolved_paths)`` after an action's paths are resolved, before it runs (the
        runner notes the outputs it is about to write)."""
        self._before.append(fn)

    # -- objects --------------------------------------------------------------------------------
    def __getitem__(self, name: str):
        return self.objects[name]

    def name_of(self, obj) -> str | None:
        """The name ``obj`` is bound to (by identity), or ``None``."""
        for k, v in self.objects.items():
            if v is obj:
                return k
        return None

    def add(self, name: str, obj) -> None:
        """Bind ``obj`` to ``name`` (objects made outside actions, e.g. painted labels in the app)."""
        if not isinstance(obj, OBJECT_CLASSES):
            raise ParameterError(f"cannot hold {type(obj).__name__} in a session")
        self.objects[name] = obj

    def unique_name(self, base: str) -> str:
        if base not in self.objects:
            return base
        i = 2
        while f"{base}{i}" in self.objects:
            i += 1
        return f"{base}{i}"

    # -- paths ----------------------------------------------------------------------------------
    def resolve(self, path: str, kind: str) -> str:
        """Resolve an input path against ``base_dir``, or an output path against ``out_dir`` under the
        rules of :func:`engine.paths.confine_output` (raises :class:`ParameterError` naming the rule)."""
        st = self.settings
        if kind == "output":
            return str(confine_output(str(path), st.out_dir, st.allow_outside, st.protected + tuple(self.inputs)))
        check_path_text(str(path), "input path")
        p = Path(os.path.expanduser(str(path)))
        if not p.is_absolute():
            p = st.base_dir / p
        if str(p) not in self.inputs:
            self.inputs.append(str(p))
        return str(p)

    def context(self) -> RunContext:
        """The :class:`~damselfly.engine.core.context.RunContext` handed to actions that declare one."""
        st = self.settings
        return RunContext(device=st.device, threads=st.threads, out_dir=st.out_dir, overwrite=st.overwrite,
                          replaceable=st.replaceable, reporter=self.reporter)

    # -- running --------------------------------------------------------------------------------
    def _apply_threads(self) -> None:
        """Apply ``settings.threads`` to PyTorch's CPU thread pool (our numpy/scipy actions run on one
        thread, so PyTorch's pool is the one that matters); only when PyTorch is already loaded."""
        n = self.settings.threads
        torch = sys.modules.get("torch")
        if n and torch is not None and torch.get_num_threads() != n:
            torch.set_num_threads(n)

    def run(self, action: str | ActionSpec, *args, target: str | None = None, **kwargs):
        """Run an action by name with macro-style arguments and bind its result.

        Keyword names are the macro names (``**{"class": "metal"}`` for ``class_``). Arguments are
        type-checked against the action's signature; path arguments are resolved; the result (if any)
        is bound to ``target`` (or a fresh name) and an :class:`ActionEvent` is emitted.
        """
        spec = action if isinstance(action, ActionSpec) else self.registry.get(action)
        bound = spec.bind(args, kwargs)
        call: dict[str, Any] = {}
        resolved: dict[str, str | list] = {}
        arg_names: dict[str, str] = {}
        for name, value in bound.items():
            spec.check_value(name, value)
            p = spec.param(name)
            kind = p.path_kind
            if kind and isinstance(value, str):
                value = resolved[name] = self.resolve(value, kind)
            elif kind and isinstance(value, (list, tuple)):
                value = [self.resolve(v, kind) if isinstance(v, str) else v for v in value]
                resolved[name] = value
            n = self.name_of(value) if isinstance(value, OBJECT_CLASSES) else None
            if n is not None:
                arg_names[name] = n
            call[p.pyname] = value
        for fn in list(self._before):
            fn(spec, resolved)
        if spec.context_param:
            call[spec.context_param] = self.context()
        self._apply_threads()
        t0 = time.perf_counter()
        with progress.reporting(self.reporter), blocks.running(self.settings.blocks):
            self.reporter.reset()
            try:
                result = spec.func(**call)
            except DamselflyError:
                raise
            except Exception as e:
                failed = corrupt_input(e, [v for v in call.values() if isinstance(v, (Volume, Labels))]
                                       + [resolved[k] for k in resolved if spec.param(k).path_kind == "input"])
                if failed is None:
                    raise
                raise failed from e
        seconds = time.perf_counter() - t0
        if spec.returns_value:
            if target is None:
                target = self.unique_name(spec.result_name)
            self.objects[target] = result
        else:
            target = None
        event = ActionEvent(spec.name, target, dict(bound), arg_names, result, resolved, seconds)
        if _reads_files(spec) and result is not None:
            self.sources[result] = dataclasses.replace(event, result=None)
        for notify in list(self._subscribers):
            notify(event)
        if self.reporter.cancelled:
            # The action stopped early but returned what it had (training keeps its best model): the
            # result is bound and recorded above, and the run still stops here.
            raise Cancelled(f"stopped during '{spec.name}'; its result so far was kept as '{target}'")
        return result
