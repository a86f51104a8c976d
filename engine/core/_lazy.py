"""Modules loaded on first use: the action modules name the deep-learning library (PyTorch) at their top,
but ``import damselfly``, ``damselfly check``, ``fmt`` and ``actions`` never touch it.

Examples
--------
>>> json = lazy_module("json")   # imported when an attribute is first read
>>> json.dumps([1])
'[1]'
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType


class _Lazy:
    """Stands for a module; imports it (the normal way, so import cycles resolve as usual) when one of
    its attributes is first read."""

    def __init__(self, name: str):
        self._name: str = name
        self._module: ModuleType | None = None

    def _load(self) -> ModuleType:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return self._module

    def __getattr__(self, attr: str):
        return getattr(self._load(), attr)

    def __setattr__(self, attr: str, value) -> None:
        if attr in ("_name", "_module"):
            object.__setattr__(self, attr, value)
        else:  # e.g. a test's monkeypatch: on the module itself
            setattr(self._load(), attr, value)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}{' (loaded)' if self._module is not None else ''}>"


def lazy_module(name: str):
    """``name`` as an object that imports the module when one of its attributes is first read."""
    return _Lazy(name)


def lazy_exports(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for a package's face: each of ``names`` (name → module, relative to
    ``package``) is imported from its module when first read, so importing one light module of a package
    does not load its heavy ones (PEP 562; scikit-image's faces do the same with ``lazy_loader``)."""

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(names[name], package), name)
        setattr(sys.modules[package], name, value)  # read once
        return value

    def __dir__() -> list[str]:
        return sorted(set(names) | set(vars(sys.modules[package])))

    return __getattr__, __dir__
