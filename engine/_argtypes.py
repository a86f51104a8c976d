"""The types of action parameters as the macro language sees them: names for messages, matching of
values (or of :class:`StaticObject` stand-ins, before anything runs) against annotations, allowed
values, path kinds, and the canonical text of literals.

Examples
--------
>>> from typing import Literal
>>> type_name(list[float] | None)
'list[float] | none'
>>> matches(Literal["otsu", "multiotsu"], "otsu"), matches(float, 2), matches(int, 2.5)
(True, True, False)
>>> format_literal([1, 0.5, "a", None, True])
'[1, 0.5, "a", none, true]'
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, Union

from .core.data import Grid, Labels, Table, Volume
from .segmentation._model import Model


class InputPath(str):
    """A file or folder an action reads. Relative paths are resolved against the macro's folder."""


class OutputPath(str):
    """A file an action writes. Relative paths are resolved against the run's output folder."""


#: Objects that macros pass around by name (the "type flow" of the checker).
OBJECT_TYPES: dict[str, type] = {"Volume": Volume, "Labels": Labels, "Table": Table, "Model": Model}

_REQUIRED = inspect.Parameter.empty


@dataclass(frozen=True)
class StaticObject:
    """Stands for "some object of type ``cls``" when values are checked before anything runs."""

    cls: type


def _args(ann) -> tuple:
    return typing.get_args(ann)


def _is_union(ann) -> bool:
    return typing.get_origin(ann) in (Union, types.UnionType)


def type_name(ann) -> str:
    """Human/macro name of an annotation: ``float``, ``list[float]``, ``Volume | none``, ``"a" | "b"``."""
    if ann is type(None) or ann is None:
        return "none"
    if isinstance(ann, TypeVar):
        return type_name(ann.__bound__) if ann.__bound__ else "any"
    if _is_union(ann):
        return " | ".join(type_name(a) for a in _args(ann))
    origin = typing.get_origin(ann)
    if origin is Literal:
        return " | ".join(f'"{a}"' if isinstance(a, str) else repr(a) for a in _args(ann))
    if origin in (list, tuple, typing.Sequence):
        inner = _args(ann)
        return f"list[{type_name(inner[0])}]" if inner else "list"
    if ann in (InputPath, OutputPath):
        return "path"
    if ann is Any:
        return "any"
    return getattr(ann, "__name__", str(ann))


def value_type_name(v) -> str:
    """Macro name of a value's type, for error messages."""
    if isinstance(v, StaticObject):
        return v.cls.__name__
    if v is None:
        return "none"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, (Grid, Table, Model)):
        return type(v).__name__
    return type(v).__name__


def matches(ann, v) -> bool:
    """Whether value ``v`` (or a :class:`StaticObject`) fits annotation ``ann``."""
    if ann is Any or ann is _REQUIRED:
        return True
    if ann is type(None) or ann is None:
        return v is None
    if isinstance(ann, TypeVar):
        return matches(ann.__bound__ or Any, v)
    if _is_union(ann):
        return any(matches(a, v) for a in _args(ann))
    origin = typing.get_origin(ann)
    if origin is Literal:
        return any(type(v) is type(a) and v == a for a in _args(ann))
    if origin in (list, tuple, typing.Sequence):
        inner = _args(ann)
        if not isinstance(v, (list, tuple)):
            return False
        return not inner or all(matches(inner[0], x) for x in v)
    if isinstance(v, StaticObject):
        return isinstance(ann, type) and issubclass(v.cls, ann)
    if ann is float:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if ann is int:
        return isinstance(v, int) and not isinstance(v, bool)
    if ann in (str, InputPath, OutputPath):
        return isinstance(v, str)
    if isinstance(ann, type):
        return isinstance(v, ann)
    return True


def choices(ann) -> list | None:
    """Allowed values of a ``Literal`` annotation (also inside ``Optional``), else ``None``."""
    if typing.get_origin(ann) is Literal:
        return list(_args(ann))
    if _is_union(ann):
        for a in _args(ann):
            c = choices(a)
            if c is not None:
                return c
    return None


def path_kind(ann) -> str | None:
    """``"input"``/``"output"`` if the annotation is (or contains) a path type."""
    if ann is InputPath:
        return "input"
    if ann is OutputPath:
        return "output"
    if _is_union(ann) or typing.get_origin(ann) in (list, tuple):
        for a in _args(ann):
            k = path_kind(a)
            if k:
                return k
    return None


def object_classes(ann) -> tuple[type, ...]:
    """The object types (Volume, Labels, Table) an annotation admits."""
    if isinstance(ann, TypeVar):
        return object_classes(ann.__bound__) if ann.__bound__ else ()
    if _is_union(ann):
        return tuple(c for a in _args(ann) for c in object_classes(a))
    if isinstance(ann, type) and ann in OBJECT_TYPES.values():
        return (ann,)
    return ()


def takes_object_list(ann) -> bool:
    """Whether an annotation admits a list of objects (``Volume | list[Volume]``: several images as
    channels), so a dialog may offer more than one.

    >>> takes_object_list(Volume | list[Volume]), takes_object_list(Volume)
    (True, False)
    """
    if _is_union(ann):
        return any(takes_object_list(a) for a in _args(ann))
    return typing.get_origin(ann) is list and any(object_classes(a) for a in _args(ann))


def format_literal(x) -> str:
    """Canonical macro text of a literal value: ``none``, ``true``, ints, shortest-repr floats, JSON-escaped
    strings, and lists of these. The macro formatter and the signatures shown to users both use it."""
    if x is None:
        return "none"
    if x is True:
        return "true"
    if x is False:
        return "false"
    if isinstance(x, int):
        return str(x)
    if isinstance(x, float):
        if not math.isfinite(x):
            raise ValueError(f"{x} cannot be written in a macro")
        return repr(x)
    if isinstance(x, str):
        return json.dumps(x, ensure_ascii=False)
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(format_literal(v) for v in x) + "]"
    raise TypeError(f"cannot write a {type(x).__name__} in a macro")
