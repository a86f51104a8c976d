"""Actions from other installed packages: the entry-point group ``damselfly.actions``.

A package adds an action by naming a function decorated with :func:`damselfly.engine.action` in its
``pyproject.toml``::

    [project.entry-points."damselfly.actions"]
    unsharp_mask = "my_package.filters:unsharp_mask"

Once the package is installed, the action is registered with the built-in ones: macros check and run it,
the recorder writes it, the app shows it in the menu its decorator names, cluster workers (where the
package is installed too) run it, and run records list the package's version. An action whose name is
already taken (by a built-in or by another package) is an error that names both packages, as is an
entry point that does not load or names an undecorated function: a macro must never run a different
action than the one its author meant.

Examples
--------
>>> from damselfly.engine.registry import Registry
>>> reg = Registry()
>>> load_plugins(reg, entry_points=[])   # no plugin installed here
[]
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from .core._provenance import PLUGIN_VERSIONS
from .core.errors import DamselflyError
from .registry import Registry

#: The entry-point group plugins register their actions in.
GROUP = "damselfly.actions"


class PluginError(DamselflyError):
    """An installed plugin that cannot be used as it is (it does not load, or its name is taken)."""


@dataclass(frozen=True)
class Plugin:
    """One action from another package."""

    action: str
    package: str
    version: str
    value: str  # the entry point's ``module:function``


def _package(ep) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    return (dist.name, dist.version) if dist is not None else ("an unknown package", "?")


def load_plugins(registry: Registry, entry_points=None, owners: dict[str, str] | None = None) -> list[Plugin]:
    """Register the actions of the installed plugins in ``registry``.

    Parameters
    ----------
    registry : Registry
        Where the actions go (the built-in registry, usually).
    entry_points : iterable of importlib.metadata.EntryPoint, optional
        The entry points to load (default: the group :data:`GROUP` of every installed distribution).
    owners : dict, optional
        Action name → the package that provides it, for the actions already in ``registry`` (default:
        ``damselfly`` for all of them).

    Returns
    -------
    list of Plugin
        The plugins registered, sorted by package and action name.

    Raises
    ------
    PluginError
        An entry point that does not load or names no decorated action, or an action name that is taken;
        the message names the packages.
    """
    eps = metadata.entry_points(group=GROUP) if entry_points is None else entry_points
    owners = dict(owners or {}) or {spec.name: "damselfly (built in)" for spec in registry.all()}
    loaded = []
    for ep in sorted(eps, key=lambda e: (_package(e)[0], e.name)):
        package, version = _package(ep)
        where = f"the plugin {ep.name!r} of the package {package} {version} ({ep.value})"
        try:
            func = ep.load()
        except Exception as e:  # any failure of third-party code on import
            raise PluginError(f"{where} cannot be loaded: {type(e).__name__}: {e}") from e
        spec = getattr(func, "action_spec", None)
        if spec is None:
            raise PluginError(f"{where} is not an action: decorate it with damselfly.engine.action")
        if spec.name in owners:
            raise PluginError(f"the action {spec.name!r} of the package {package} {version} has the name of an "
                              f"action of {owners[spec.name]}: uninstall one of the two packages, or rename the "
                              "action in its decorator")
        registry.register(spec)
        owners[spec.name] = f"the package {package} {version}"
        PLUGIN_VERSIONS[package] = version
        loaded.append(Plugin(spec.name, package, version, ep.value))
    return loaded
