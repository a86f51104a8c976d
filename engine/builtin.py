"""The registry of built-in actions, made from the explicit list :data:`damselfly.engine.actions.ALL`.

This module sits above the actions (it imports them); the registry module below them knows none.
"""

from __future__ import annotations

from .actions import ALL
from .registry import ActionSpec, Registry

#: The built-in actions. A program may make its own :class:`Registry` (with more actions) and give it
#: to a :class:`~damselfly.engine.session.Session`; tests add and remove actions here.
BUILTIN = Registry(ALL)


def get_action(name: str) -> ActionSpec:
    """The built-in action called ``name`` (a :class:`ParameterError` with did-you-mean if none)."""
    return BUILTIN.get(name)


def all_actions() -> list[ActionSpec]:
    """Every built-in action, sorted by name."""
    return BUILTIN.all()
