"""The registry of built-in actions, made from the explicit list :data:`damselfly.engine.actions.ALL`,
and the actions of installed plugins (:mod:`~damselfly.engine.plugins`).

This module sits above the actions (it imports them); the registry module below them knows none.
"""

from __future__ import annotations

from .actions import ALL
from .plugins import Plugin, load_plugins
from .registry import ActionSpec, Registry

#: The built-in actions. A program may make its own :class:`Registry` (with more actions) and give it
#: to a :class:`~damselfly.engine.session.Session`; tests add and remove actions here.
BUILTIN = Registry(ALL)
#: The plugins whose actions are in :data:`BUILTIN` (loaded by :func:`load_installed_plugins`).
PLUGINS: list[Plugin] = []


def load_installed_plugins() -> list[Plugin]:
    """Register the actions of the installed plugins in :data:`BUILTIN`, once. ``damselfly.engine`` calls
    this as its last step, since a plugin imports the public names from there."""
    if not PLUGINS:
        PLUGINS.extend(load_plugins(BUILTIN))
    return PLUGINS


def get_action(name: str) -> ActionSpec:
    """The built-in action called ``name`` (a :class:`ParameterError` with did-you-mean if none)."""
    return BUILTIN.get(name)


def all_actions() -> list[ActionSpec]:
    """Every built-in action, sorted by name."""
    return BUILTIN.all()
