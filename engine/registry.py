"""The action registry: every user-visible operation, described from its signature.

An action is a plain typed function with a numpydoc docstring::

    @action("calibrate", result="cal", category="Process")
    def calibrate(volume: Volume, method: Literal["percentile", "two_point", "match"] = "percentile",
                  low: float = 0.5, high: float = 99.5, ...) -> Volume:
        '''Map grey values to a common scale. ...'''

The registry reads the parameters, their types, defaults and allowed values (``Literal``) and the return
type from the signature, so the macro checker, the command line (``damselfly actions``) and the app's
parameter dialogs need nothing else. Parameters whose Python name ends in ``_`` (``class_``) are
exposed without it (``class``). Paths are typed :class:`InputPath` (read; resolved against the macro's
folder) or :class:`OutputPath` (written; resolved against the run's output folder).
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ._argtypes import (  # noqa: F401 (the types of action parameters, re-exported for action modules)
    _REQUIRED,
    OBJECT_TYPES,
    InputPath,
    OutputPath,
    StaticObject,
    choices,
    format_literal,
    matches,
    object_classes,
    path_kind,
    takes_object_list,
    type_name,
    value_type_name,
)
from .core.context import RunContext
from .core.data import Grid, suggest
from .core.errors import ParameterError


@dataclass
class Param:
    """One parameter of an action."""

    name: str            # as written in macros
    pyname: str          # as the Python function names it
    annotation: Any
    default: Any = _REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def choices(self) -> list | None:
        return choices(self.annotation)

    @property
    def path_kind(self) -> str | None:
        return path_kind(self.annotation)

    @property
    def type_name(self) -> str:
        return type_name(self.annotation)


#: Roles an argument can play in the app, beyond its type: how a person gives it.
ROLES = {
    "box": "a box drawn on a slice with the box tool: [z0, y0, x0, z1, y1, x1]",
    "boxes": "the last two boxes drawn with the box tool",
    "shown_labels": "the label layer shown in the viewer (pre-filled even where optional)",
    "camera": "an angle or zoom of the 3-D view's camera (azimuth, elevation, zoom), pre-filled from it",
    "newest": "pre-filled with the newest result of the right type (what was just made)",
}


@dataclass(frozen=True)
class Presentation:
    """How the app shows an action: data, not code (napari's app-model keeps actions the same way).

    Parameters
    ----------
    menu : str
        The menu it appears in (``File``, ``Process``, ``Segment``, ``Measure``, ``Render`` or a new one).
    title : str
        The menu text; ``"<name>…"`` when empty.
    toolbar : int, optional
        Its position on the toolbar; not on the toolbar when ``None``.
    roles : dict of str to str
        Parameter name to role (:data:`ROLES`), e.g. ``{"box": "box"}``.
    monitor : str, optional
        A live view the app opens while it runs: ``"training"`` (loss curves, preview, Stop).
    basic : tuple of str
        When given, the optional parameters a dialog shows at once; the others go under "Advanced".
    when : dict of str to (str, tuple)
        Parameter -> (choice parameter, its values for which it applies); a dialog hides it otherwise
        (calibrate's ``regions`` only for ``method="two_point"``).
    """

    menu: str = "Process"
    title: str = ""
    toolbar: int | None = None
    roles: dict[str, str] = field(default_factory=dict)
    monitor: str | None = None
    basic: tuple[str, ...] = ()
    when: dict[str, tuple[str, tuple]] = field(default_factory=dict)


@dataclass
class ActionSpec:
    """What the registry knows about one action."""

    name: str
    func: Callable
    params: list[Param]
    returns: Any
    doc: str
    result_name: str = "result"
    presentation: Presentation = field(default_factory=lambda: Presentation())
    context_param: str | None = None  # the keyword-only RunContext parameter the session fills, if any
    _by_name: dict[str, Param] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        self._by_name = {p.name: p for p in self.params}
        look = self.presentation
        named = set(look.roles) | set(look.basic) | set(look.when) | {c for c, _ in look.when.values()}
        unknown = named - set(self._by_name)
        if unknown:
            raise TypeError(f"action {self.name}: the presentation names no parameter {sorted(unknown)}")
        bad = {r for r in self.presentation.roles.values() if r not in ROLES}
        if bad:
            raise TypeError(f"action {self.name}: unknown roles {sorted(bad)} (known: {', '.join(ROLES)})")

    @property
    def category(self) -> str:
        """The menu the app puts the action in."""
        return self.presentation.menu

    @property
    def title(self) -> str:
        """The menu text: the presentation's title, or the name followed by an ellipsis."""
        return self.presentation.title or f"{self.name}…"

    def role(self, param: str) -> str | None:
        """The role of a parameter (see :data:`ROLES`), or ``None``."""
        return self.presentation.roles.get(param)

    @property
    def summary(self) -> str:
        return self.doc.strip().split("\n\n")[0].replace("\n", " ") if self.doc else ""

    def param(self, name: str) -> Param:
        try:
            return self._by_name[name]
        except KeyError:
            raise ParameterError(self._no_parameter(name)) from None

    def _no_parameter(self, name: str) -> str:
        """The error for a keyword the action does not take: the closest parameter, or all of them."""
        return f"{self.name}() has no parameter '{name}'" + (
            suggest(name, self._by_name) or f"; its parameters: {', '.join(self._by_name) or 'none'}")

    def has_param(self, name: str) -> bool:
        return name in self._by_name

    @property
    def returns_value(self) -> bool:
        return self.returns not in (None, type(None))

    def return_class(self, arg_classes: dict[str, type] | None = None) -> type | None:
        """The object type this action returns; a ``TypeVar`` return takes the type of its argument."""
        r = self.returns
        if isinstance(r, TypeVar) and arg_classes:
            for p in self.params:
                if p.annotation is r and p.name in arg_classes:
                    return arg_classes[p.name]
            return r.__bound__
        classes = object_classes(r)
        return classes[0] if classes else None

    def signature(self) -> str:
        parts = []
        for p in self.params:
            s = f"{p.name}: {p.type_name}"
            if not p.required:
                s += f" = {format_literal(p.default)}"
            parts.append(s)
        ret = f" -> {type_name(self.returns)}" if self.returns_value else ""
        return f"{self.name}({', '.join(parts)}){ret}"

    def bind_each(self, names: Sequence[str | None]) -> tuple[dict[str, int], list[tuple[int | None, str]]]:
        """Match arguments, given in call order by keyword (or ``None`` when positional), to parameters.

        The one binder of the language: the session (through :meth:`bind`) and the checker use it.

        Returns
        -------
        where : dict
            Parameter name to the index of the argument that gives it.
        problems : list of (int or None, str)
            Every problem, with the index of the argument it is about (``None``: the whole call).
        """
        where: dict[str, int] = {}
        problems: list[tuple[int | None, str]] = []
        seen_kw = False
        for i, name in enumerate(names):
            if name is None:
                if seen_kw:
                    problems.append((i, "positional argument after a keyword argument"))
                    continue
                if i >= len(self.params):
                    problems.append((i, f"{self.name}() takes at most {len(self.params)} positional arguments"))
                    continue
                pname = self.params[i].name
            else:
                seen_kw = True
                if name not in self._by_name:
                    problems.append((i, self._no_parameter(name)))
                    continue
                pname = name
            if pname in where:
                problems.append((i, f"{self.name}() got '{pname}' twice"))
                continue
            where[pname] = i
        missing = [p.name for p in self.params if p.required and p.name not in where]
        if missing:
            problems.append((None, f"{self.name}() is missing required argument(s): {', '.join(missing)}"))
        return where, problems

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any]:
        """Map positional and keyword arguments (macro names) to parameters (:meth:`bind_each`); raise a
        :class:`ParameterError` with the first problem."""
        values = list(args) + list(kwargs.values())
        where, problems = self.bind_each([None] * len(args) + list(kwargs))
        if problems:
            raise ParameterError(problems[0][1])
        return {name: values[i] for name, i in sorted(where.items(), key=lambda kv: kv[1])}

    def check_value(self, name: str, value) -> None:
        """Raise :class:`ParameterError` if ``value`` does not fit parameter ``name``."""
        p = self.param(name)
        if matches(p.annotation, value):
            return
        ch = p.choices
        if ch is not None and isinstance(value, str):
            raise ParameterError(f"{self.name}(): {name}={value!r} is not one of "
                                 f"{', '.join(repr(c) for c in ch)}{suggest(value, [str(c) for c in ch])}")
        raise ParameterError(f"{self.name}(): {name} expects {p.type_name}, got {value_type_name(value)}"
                             + ("" if isinstance(value, (StaticObject, *OBJECT_TYPES.values(), Grid)) else f" {value!r}"))


def _param_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a numpydoc ``Parameters`` section."""
    lines = inspect.cleandoc(doc or "").splitlines()
    out: dict[str, str] = {}
    in_section, cur = False, None
    for i, ln in enumerate(lines):
        is_header = i + 1 < len(lines) and lines[i + 1].strip() and set(lines[i + 1].strip()) == {"-"}
        if is_header:
            in_section, cur = ln.strip() == "Parameters", None
            continue
        if not in_section or set(ln.strip()) == {"-"}:
            continue
        if ln and not ln.startswith(" "):  # "name : type" or "a, b : type"
            cur = [n.strip() for n in ln.split(":")[0].split(",") if n.strip()]
            for n in cur:
                out[n] = ""
        elif cur and ln.strip():
            for n in cur:
                out[n] = (out[n] + " " + ln.strip()).strip()
    return out


def action(name: str | None = None, *, result: str = "result", category: str = "Process", title: str = "",
           toolbar: int | None = None, roles: dict[str, str] | None = None, monitor: str | None = None,
           basic: tuple[str, ...] = (), when: dict[str, tuple[str, tuple]] | None = None):
    """Describe a function as an action (decorator): builds its :class:`ActionSpec` from the signature and
    docstring and attaches it as ``func.action_spec``. Registering is a separate, explicit step
    (:class:`Registry`; the built-in list is ``damselfly.engine.actions.ALL``).

    Parameters
    ----------
    name : str, optional
        The name used in macros; the function name by default.
    result : str
        Default variable name for the result when recorded (``raw``, ``cal``, ``seg`` ...).
    category, title, toolbar, roles, monitor, basic, when
        How the app presents it (:class:`Presentation`; ``category`` is the menu).

    Examples
    --------
    >>> @action("measure_box", result="stats", category="Measure", title="Measure a box…",
    ...         roles={"box": "box"})
    ... def measure_box(volume: Volume, box: list[int]) -> Table:
    ...     '''Statistics inside a box. ...'''                     # doctest: +SKIP
    """

    def deco(func):
        hints = typing.get_type_hints(func)
        sig = inspect.signature(func)
        pdocs = _param_docs(func.__doc__ or "")
        params, context_param = [], None
        for pn, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"action {func.__name__}: *args/**kwargs are not serialisable")
            if hints.get(pn) is RunContext:
                if p.kind != p.KEYWORD_ONLY or p.default is not _REQUIRED:
                    raise TypeError(f"action {func.__name__}: the run context must be keyword-only, no default")
                context_param = pn
                continue
            mname = pn[:-1] if pn.endswith("_") else pn
            params.append(Param(mname, pn, hints.get(pn, Any), p.default, pdocs.get(pn, pdocs.get(mname, ""))))
        look = Presentation(category, title, toolbar, dict(roles or {}), monitor, tuple(basic), dict(when or {}))
        func.action_spec = ActionSpec(name or func.__name__, func, params, hints.get("return", None),
                                      inspect.cleandoc(func.__doc__ or ""), result, look, context_param)
        return func

    return deco


class Registry:
    """A set of actions by name: what a session can run, the checker knows, the app shows.

    Examples
    --------
    >>> from damselfly.engine.actions import ALL
    >>> reg = Registry(ALL)
    >>> reg.get("calibrate").category
    'Process'
    """

    def __init__(self, actions=()):
        self._specs: dict[str, ActionSpec] = {}
        for a in actions:
            self.register(a)

    def register(self, func_or_spec) -> ActionSpec:
        """Add an action (a decorated function or its spec); a different action of the same name is an error."""
        spec = func_or_spec if isinstance(func_or_spec, ActionSpec) else func_or_spec.action_spec
        old = self._specs.get(spec.name)
        if old is not None and old.func is not spec.func:
            raise ValueError(f"action '{spec.name}' registered twice")
        self._specs[spec.name] = spec
        return spec

    def unregister(self, name: str) -> None:
        self._specs.pop(name, None)

    def get(self, name: str) -> ActionSpec:
        """The action called ``name``; a :class:`ParameterError` with did-you-mean if none."""
        try:
            return self._specs[name]
        except KeyError:
            raise ParameterError(f"unknown action '{name}'{suggest(name, self._specs)}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def all(self) -> list[ActionSpec]:
        """Every action, sorted by name."""
        return [self._specs[k] for k in sorted(self._specs)]
