"""Static checks of a macro, before the first action runs.

Finds: syntax errors (in :mod:`macros.parser`), an unsupported ``version``, duplicate params, unknown
actions and keywords, positional arguments after keywords, missing or repeated arguments, argument types
and enumerated values, undefined names, type flow (a ``Table`` where a ``Volume`` is expected), bad
templates, assigning an action that returns nothing, and missing input files. Every problem is a
:class:`~macros.diagnostics.Diagnostic` at its file, line and column, with a did-you-mean where one fits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from damselfly.engine.builtin import BUILTIN
from damselfly.engine.data import suggest
from damselfly.engine.errors import ParameterError
from damselfly.engine.paths import check_path_text, confine_output
from damselfly.engine.registry import Registry, StaticObject

from . import ast
from .diagnostics import Diagnostic, MacroError, at
from .templates import ATTRS, expand, template_names

SUPPORTED_VERSIONS = {1}


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    params: dict = field(default_factory=dict)          # final param values (overrides applied)
    inputs: list[str] = field(default_factory=list)     # resolved input paths, in order

    @property
    def ok(self) -> bool:
        return not any(d.severity == "error" for d in self.diagnostics)


def const_value(v: ast.Expr):
    """Python value of a literal expression (``Const`` or list of them); ``Name`` raises ``TypeError``."""
    if isinstance(v, ast.Const):
        return v.value
    if isinstance(v, ast.ListExpr):
        return [const_value(x) for x in v.items]
    raise TypeError(v)


def check(macro: ast.Macro, overrides: dict | None = None, base_dir: str | os.PathLike | None = None,
          check_files: bool = True, out_dir: str | os.PathLike | None = None, allow_outside: bool = False,
          protected: tuple = (), registry: Registry | None = None) -> CheckResult:
    """Check ``macro`` statically.

    Parameters
    ----------
    macro : Macro
        The parsed macro.
    overrides : dict, optional
        Param values that replace the declared ones (``--set``, a batch item).
    base_dir : path, optional
        Folder that relative input paths are resolved against (default: the macro's folder).
    check_files : bool
        Whether to report input files that do not exist.
    out_dir : path, optional
        The run's output folder (default ``./out``): output paths must stay inside it
        (:func:`engine.paths.confine_output`) unless ``allow_outside``.
    allow_outside : bool
        The run setting that lets outputs leave ``out_dir``.
    protected : tuple of path
        Files no output may replace besides the inputs the macro names (e.g. the macro itself).
    registry : Registry, optional
        The actions the macro may call (default: the built-in ones).
    """
    registry = registry or BUILTIN
    overrides = dict(overrides or {})
    path = macro.path or "<macro>"
    if base_dir is None:
        base_dir = Path(macro.path).resolve().parent if macro.path and not macro.path.startswith("<") else Path.cwd()
    base_dir = Path(base_dir)
    res = CheckResult()
    diag = res.diagnostics

    def err(node, msg, length=None):
        diag.append(at(macro, path, node, msg, length))

    out_dir = Path(out_dir).absolute() if out_dir is not None else Path.cwd() / "out"
    res.inputs.extend(str(p) for p in protected)

    def check_path(kind: str, one, params: dict, inputs: list[str]) -> str | None:
        """The problem with one input or output path argument, or ``None``."""
        if not isinstance(one, str):
            return None
        try:
            text = expand(one, params)
        except KeyError:
            return None
        try:
            if kind == "output":
                confine_output(text, out_dir, allow_outside, inputs)
                return None
            check_path_text(text, "input path")
            full = Path(os.path.expanduser(text))
            full = full if full.is_absolute() else base_dir / full
            inputs.append(str(full))
            if check_files and not full.exists():
                return f"input file '{text}' not found (looked at {full})"
        except ParameterError as e:
            return str(e)
        except OSError as e:
            return f"input file '{text}' cannot be looked at: {e.strerror or e}"
        return None

    params: dict = {}
    objects: dict[str, type | None] = {}  # name -> object class (None: returns nothing)
    seen_version = False
    first_code = True
    declared = {p.name for p in macro.params()}
    for name in overrides:
        if name not in declared:
            diag.append(Diagnostic(path, 0, 0, f"--set {name}: the macro has no param '{name}'"
                                               f"{suggest(name, declared)}"))

    def check_templates(node: ast.Const, known: dict):
        for name, attr, _off in template_names(node.value):
            if name not in known:
                hint = " (templates may name params only)" if name in objects else suggest(name, known)
                err(node, f"template '{{{name}}}' names no param{hint}")
            elif attr is not None and attr not in ATTRS:
                err(node, f"unknown template attribute '.{attr}'{suggest(attr, ATTRS)} "
                          f"(known: {', '.join(ATTRS)})")

    def static_value(v: ast.Expr):
        """The value the checker can know: literal values, param values, or StaticObject for objects."""
        if isinstance(v, ast.Const):
            if isinstance(v.value, str):
                check_templates(v, params)
            return v.value
        if isinstance(v, ast.ListExpr):
            return [static_value(x) for x in v.items]
        if v.id in params:
            return params[v.id]
        if v.id in objects:
            cls = objects[v.id]
            if cls is _Unknown:
                return _SKIP
            return StaticObject(cls) if cls is not None else None
        err(v, f"undefined name '{v.id}'{suggest(v.id, list(params) + list(objects))}")
        raise _Undefined()

    for st in macro.statements:
        if isinstance(st, (ast.Comment, ast.Blank)):
            continue
        if isinstance(st, ast.Version):
            if seen_version:
                err(st, "'version' given twice")
            elif not first_code:
                err(st, "'version' must come before any other statement")
            elif st.number not in SUPPORTED_VERSIONS:
                err(st, f"unsupported macro version {st.number} (this Damselfly reads version "
                        f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})")
            seen_version = True
            first_code = False
            continue
        first_code = False
        if isinstance(st, ast.ParamDecl):
            if st.name in params:
                err(st, f"param '{st.name}' declared twice")
                continue
            if st.name in objects:
                err(st, f"'{st.name}' is already a result name; choose another param name")
                continue
            if st.name in registry:
                err(st, f"'{st.name}' is an action name; choose another param name")
            try:
                value = const_value(st.value)
            except TypeError:
                err(st.value, "a param's value must be a literal (number, string, true/false, none or a list)")
                continue
            if isinstance(st.value, ast.Const) and isinstance(value, str) and template_names(value):
                err(st.value, "a param's value cannot hold templates")
            params[st.name] = overrides.get(st.name, value)
            continue

        call = st.call
        try:
            spec = registry.get(call.action)
        except ParameterError as e:
            err(call, str(e), len(call.action))
            spec = None
        if isinstance(st, ast.Assign):
            if st.target in params:
                err(st, f"'{st.target}' is a param; results need another name")
        values: dict = {}
        seen_kw = False
        for i, arg in enumerate(call.args):
            if arg.name is None and seen_kw:
                err(arg, "positional argument after a keyword argument")
                continue
            seen_kw = seen_kw or arg.name is not None
            if spec is None:
                try:
                    static_value(arg.value)
                except _Undefined:
                    pass
                continue
            if arg.name is None:
                if i >= len(spec.params):
                    err(arg, f"{spec.name}() takes at most {len(spec.params)} positional arguments")
                    continue
                pname = spec.params[i].name
            else:
                if not spec.has_param(arg.name):
                    err(arg, f"{spec.name}() has no parameter '{arg.name}'"
                             f"{suggest(arg.name, [p.name for p in spec.params])}", len(arg.name))
                    try:
                        static_value(arg.value)
                    except _Undefined:
                        pass
                    continue
                pname = arg.name
            if pname in values:
                err(arg, f"{spec.name}() got '{pname}' twice")
                continue
            try:
                value = static_value(arg.value)
            except _Undefined:
                values[pname] = _Undefined
                continue
            values[pname] = value
            if value is _SKIP or (isinstance(value, list) and any(x is _SKIP for x in value)):
                continue
            try:
                spec.check_value(pname, value)
            except ParameterError as e:
                err(arg.value, str(e))
                continue
            p = spec.param(pname)
            if p.path_kind:
                for one in (value if isinstance(value, list) else [value]):
                    problem = check_path(p.path_kind, one, params, res.inputs)
                    if problem:
                        err(arg.value, problem)
        if spec is not None:
            missing = [p.name for p in spec.params if p.required and p.name not in values]
            if missing:
                err(call, f"{spec.name}() is missing required argument(s): {', '.join(missing)}", len(call.action))
        if isinstance(st, ast.Assign):
            if spec is None:
                objects[st.target] = _Unknown
            elif not spec.returns_value:
                err(st, f"{spec.name}() returns nothing; it cannot be assigned to '{st.target}'")
                objects[st.target] = None
            else:
                arg_classes = {k: v.cls for k, v in values.items() if isinstance(v, StaticObject)}
                objects[st.target] = spec.return_class(arg_classes) or _Unknown
    res.params = params
    return res


class _Undefined(Exception):
    pass


class _Unknown:
    """The type of a result whose action is unknown (so later uses do not cascade into errors)."""


_SKIP = object()


def check_or_raise(macro: ast.Macro, **kwargs) -> CheckResult:
    """:func:`check`, raising :class:`MacroError` if there is any error."""
    res = check(macro, **kwargs)
    if not res.ok:
        raise MacroError(res.diagnostics)
    return res
