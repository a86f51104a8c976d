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
from damselfly.engine.core._paths import check_path_text, confine_output
from damselfly.engine.core.data import listed, suggest
from damselfly.engine.core.errors import ParameterError
from damselfly.engine.registry import Registry, StaticObject

from . import ast, classflow
from .diagnostics import Diagnostic, MacroError, at
from .templates import ATTRS, expand, template_names

SUPPORTED_VERSIONS = {1}


@dataclass
class CheckResult:
    diagnostics: list[Diagnostic] = field(default_factory=list)
    params: dict = field(default_factory=dict)          # final param values (overrides applied)
    inputs: list[str] = field(default_factory=list)     # resolved input paths, in order
    unused: list[str] = field(default_factory=list)     # results computed but never used or saved

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
          protected: tuple = (), registry: Registry | None = None, batch_param: str | None = None) -> CheckResult:
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
    batch_param : str, optional
        The param a batch sets per scan: training on labels that do not change with it is a warning.

    Examples
    --------
    >>> from damselfly.macros.parser import parse
    >>> text = chr(10).join(["version 1", 'raw = load("s.tif")', "cal = calibrat(raw)"])
    >>> res = check(parse(text, "m.dfm"), check_files=False)
    >>> print(res.diagnostics[0].format().splitlines()[0])
    m.dfm:3:7: error: unknown action 'calibrat'; did you mean 'calibrate'?
    """
    if base_dir is None:
        base_dir = Path(macro.path).resolve().parent if macro.path and not macro.path.startswith("<") else Path.cwd()
    out = Path(out_dir).absolute() if out_dir is not None else Path.cwd() / "out"
    checker = _Checker(macro, registry or BUILTIN, dict(overrides or {}), Path(base_dir), out, allow_outside,
                       check_files)
    checker.res.inputs.extend(str(p) for p in protected)
    checker.batch_param = batch_param
    return checker.run()


class _Checker:
    """One pass over the statements, one method per statement kind; names and their types as it goes."""

    def __init__(self, macro, registry, overrides, base_dir, out_dir, allow_outside, check_files):
        self.macro, self.registry, self.overrides = macro, registry, overrides
        self.base_dir, self.out_dir, self.allow_outside, self.check_files = base_dir, out_dir, allow_outside, check_files
        self.path = macro.path or "<macro>"
        self.res = CheckResult()
        self.params: dict = {}
        self.objects: dict[str, type | None] = {}  # name -> object class (None: returns nothing)
        self.classes: dict[str, list[str] | None] = {}  # name -> its class names where known before running
        self.seen_version = False
        self.first_code = True
        self.unused: dict[str, ast.Assign] = {}  # results not used (or saved) by a later statement yet
        self.batch_param: str | None = None
        self.fixed: set[str] = set()  # results made from files that do not change with the batch param

    def err(self, node, msg, length=None):
        self.res.diagnostics.append(at(self.macro, self.path, node, msg, length))

    def run(self) -> CheckResult:
        declared = {p.name for p in self.macro.params()}
        for name in self.overrides:
            if name not in declared:
                self.res.diagnostics.append(Diagnostic(self.path, 0, 0, f"--set {name}: the macro has no param "
                                                                        f"'{name}'{suggest(name, declared)}"))
        for st in self.macro.statements:
            if isinstance(st, ast.Version):
                self.version(st)
            elif isinstance(st, ast.ParamDecl):
                self.param(st)
            elif isinstance(st, (ast.Assign, ast.CallStmt)):
                self.call(st)
            if not isinstance(st, (ast.Comment, ast.Blank)):
                self.first_code = False
        for name, st in self.unused.items():
            self.warn_unused(name, st)
        self.res.diagnostics.sort(key=lambda d: (d.line, d.column))
        self.res.params = self.params
        return self.res

    # -- statements ------------------------------------------------------------------------------
    def version(self, st: ast.Version) -> None:
        if self.seen_version:
            self.err(st, "'version' given twice")
        elif not self.first_code:
            self.err(st, "'version' must come before any other statement")
        elif st.number not in SUPPORTED_VERSIONS:
            self.err(st, f"unsupported macro version {st.number} (this Damselfly reads version "
                         f"{', '.join(map(str, sorted(SUPPORTED_VERSIONS)))})")
        self.seen_version = True

    def param(self, st: ast.ParamDecl) -> None:
        if st.name in self.params:
            return self.err(st, f"param '{st.name}' declared twice")
        if st.name in self.objects:
            return self.err(st, f"'{st.name}' is already a result name; choose another param name")
        if st.name in self.registry:
            self.err(st, f"'{st.name}' is an action name; choose another param name")
        try:
            value = const_value(st.value)
        except TypeError:
            return self.err(st.value, "a param's value must be a literal (number, string, true/false, none or a list)")
        if isinstance(st.value, ast.Const) and isinstance(value, str) and template_names(value):
            self.err(st.value, "a param's value cannot hold templates")
        self.params[st.name] = self.overrides.get(st.name, value)

    def call(self, st: ast.Assign | ast.CallStmt) -> None:
        call = st.call
        try:
            spec = self.registry.get(call.action)
        except ParameterError as e:
            self.err(call, str(e), len(call.action))
            spec = None
        target = st.target if isinstance(st, ast.Assign) else None
        if target is not None and target in self.params:
            self.err(st, f"'{target}' is a param; results need another name")
        values, where = self.arguments(spec, call) if spec is not None else self.unknown_action_arguments(call)
        if spec is not None:
            self.check_classes(spec, call, values, where, target)
        if self.batch_param and spec is not None:
            self.batch_labels(spec, call, target, where)
        if target is None:
            return
        if target in self.unused:  # made again before anything used the first one
            self.warn_unused(target, self.unused.pop(target))
        self.unused[target] = st
        if spec is None:
            self.objects[target] = _Unknown
        elif not spec.returns_value:
            self.err(st, f"{spec.name}() returns nothing; it cannot be assigned to '{target}'")
            self.objects[target] = None
        else:
            arg_classes = {k: v.cls for k, v in values.items() if isinstance(v, StaticObject)}
            self.objects[target] = spec.return_class(arg_classes) or _Unknown

    def check_classes(self, spec, call: ast.Call, values: dict, where: dict[str, int], target: str | None) -> None:
        """Class arguments against the classes known statically (:mod:`.classflow`); the result's classes."""
        known = {p: self.classes.get(call.args[i].value.id) for p, i in where.items()
                 if isinstance(call.args[i].value, ast.Name)}
        for pname, i in where.items():
            found = classflow.unknown_classes(pname, values.get(pname), known)
            if found:
                arg, bad = found
                name = call.args[where[arg]].value.id
                self.err(call.args[i].value, f"unknown class{'es' if len(bad) > 1 else ''} "
                         f"{', '.join(repr(b) for b in bad)} ('{name}' has the classes {', '.join(known[arg])})"
                         f"{suggest(bad[0], known[arg])}")
        seg, truth = known.get("seg"), known.get("truth")
        if spec.name == "evaluate" and seg and truth and not set(seg) & set(truth):
            self.err(call.args[where["truth"]].value, f"'{call.args[where['truth']].value.id}' shares no class name "
                     f"with '{call.args[where['seg']].value.id}' ({listed(truth)} against {listed(seg)}): name its classes with load_labels(..., classes=[...]) or "
                     f"merge them with merge_classes")
        if target is None:
            return
        result = None
        if spec.name in ("load_model", "load_labels") and isinstance(values.get("path"), str):
            try:
                result = classflow.file_classes(spec.name, self.input_path(expand(values["path"], self.params)),
                                                values)
            except (KeyError, ValueError):  # an unknown param's template, a bad path: reported elsewhere
                result = None
        elif spec.name in classflow.PASSES_ON:
            result = known.get(classflow.PASSES_ON[spec.name])
        elif spec.name == "merge_classes":
            result = classflow.merged(values, known.get("labels"))
        elif spec.name == "threshold" and isinstance(values.get("names"), list):
            result = [str(n) for n in values["names"]]
        self.classes[target] = result

    def batch_labels(self, spec, call: ast.Call, target: str | None, where: dict[str, int]) -> None:
        """In a batch, training on labels from a file that is the same for every scan (painted on one
        scan) trains every scan on another scan's labels: warn at the argument. ``where`` is the binding
        :meth:`arguments` made (parameter -> argument index)."""
        names = {a.value.id for a in call.args if isinstance(a.value, ast.Name)}
        if spec.name == "train":
            arg = call.args[where["labels"]] if "labels" in where else None
            if arg is not None and isinstance(arg.value, ast.Name) and arg.value.id in self.fixed:
                d = at(self.macro, self.path, arg.value,
                       f"in a batch, every scan is trained on '{arg.value.id}', labels painted on one scan; "
                       "train once, save the model and apply it (Macro > Save as macro for new scans)")
                d.severity = "warning"
                self.res.diagnostics.append(d)
            return
        if target is None:
            return
        reads_fixed_file = (any(spec.param(n).path_kind == "input" for n in where)
                            and not self.mentions_batch_param(call))
        if reads_fixed_file or (names & self.fixed):
            self.fixed.add(target)
        else:
            self.fixed.discard(target)

    def mentions_batch_param(self, call: ast.Call) -> bool:
        """Whether an argument names the batch param, directly or in a template (``{scan.stem}``)."""
        def mentions(v) -> bool:
            if isinstance(v, ast.Name):
                return v.id == self.batch_param
            if isinstance(v, ast.ListExpr):
                return any(mentions(x) for x in v.items)
            return isinstance(v.value, str) and any(n == self.batch_param for n, _a, _o in template_names(v.value))
        return any(mentions(a.value) for a in call.args)

    def warn_unused(self, name: str, st: ast.Assign) -> None:
        if self.objects.get(name) in (None, _Unknown):
            return
        d = at(self.macro, self.path, st, f"'{name}' is computed but never used or saved "
                                          f"(add: save({name}, \"...\"))", len(name))
        d.severity, d.code = "warning", "unused"
        self.res.diagnostics.append(d)
        self.res.unused.append(name)

    # -- arguments -------------------------------------------------------------------------------
    def arguments(self, spec, call: ast.Call) -> tuple[dict, dict[str, int]]:
        """Bind the call's arguments with the registry's binder, then check each value; the values found
        and the binding (parameter -> argument index)."""
        where, problems = spec.bind_each([a.name for a in call.args])
        about = {i: msg for i, msg in problems if i is not None}
        values: dict = {}
        for i, arg in enumerate(call.args):
            if i in about:
                unknown_kw = arg.name is not None and not spec.has_param(arg.name)
                self.err(arg, about[i], len(arg.name) if unknown_kw else None)
                if unknown_kw:
                    self.value_or_none(arg.value)  # still report undefined names inside it
                continue
            pname = arg.name or spec.params[i].name
            value = values[pname] = self.value_or_none(arg.value, _Undefined)
            if value is _Undefined or value is _SKIP or (isinstance(value, list) and _SKIP in value):
                continue
            try:
                spec.check_value(pname, value)
            except ParameterError as e:
                self.err(arg.value, str(e))
                continue
            kind = spec.param(pname).path_kind
            for one in (value if kind and isinstance(value, list) else [value] if kind else []):
                problem = self.path_problem(kind, one)
                if problem:
                    self.err(arg.value, problem)
        for i, msg in problems:
            if i is None:
                self.err(call, msg, len(call.action))
        return values, where

    def unknown_action_arguments(self, call: ast.Call) -> tuple[dict, dict[str, int]]:
        for arg in call.args:
            self.value_or_none(arg.value)
        return {}, {}

    def value_or_none(self, v: ast.Expr, undefined=None):
        try:
            return self.static_value(v)
        except _Undefined:
            return undefined

    def static_value(self, v: ast.Expr):
        """The value the checker can know: literal values, param values, or StaticObject for objects."""
        if isinstance(v, ast.Const):
            if isinstance(v.value, str):
                self.templates(v)
            return v.value
        if isinstance(v, ast.ListExpr):
            return [self.static_value(x) for x in v.items]
        if v.id in self.params:
            return self.params[v.id]
        if v.id in self.objects:
            self.unused.pop(v.id, None)
            cls = self.objects[v.id]
            if cls is _Unknown:
                return _SKIP
            return StaticObject(cls) if cls is not None else None
        self.err(v, f"undefined name '{v.id}'{suggest(v.id, list(self.params) + list(self.objects))}")
        raise _Undefined()

    def templates(self, node: ast.Const) -> None:
        for name, attr, _off in template_names(node.value):
            if name not in self.params:
                hint = " (templates may name params only)" if name in self.objects else suggest(name, self.params)
                self.err(node, f"template '{{{name}}}' names no param{hint}")
            elif attr is not None and attr not in ATTRS:
                self.err(node, f"unknown template attribute '.{attr}'{suggest(attr, ATTRS)} "
                               f"(known: {', '.join(ATTRS)})")

    def input_path(self, text: str) -> Path:
        """An input path as a run resolves it: ``~`` expanded, relative to the macro's folder."""
        full = Path(os.path.expanduser(text))
        return full if full.is_absolute() else self.base_dir / full

    def path_problem(self, kind: str, one) -> str | None:
        """The problem with one input or output path argument, or ``None``."""
        if not isinstance(one, str):
            return None
        try:
            text = expand(one, self.params)
        except KeyError:
            return None
        inputs = self.res.inputs
        try:
            if kind == "output":
                confine_output(text, self.out_dir, self.allow_outside, inputs)
                return None
            check_path_text(text, "input path")
            full = self.input_path(text)
            inputs.append(str(full))
            if self.check_files and not full.exists():
                return f"input file '{text}' not found (looked at {full})"
        except ParameterError as e:
            return str(e)
        except OSError as e:
            return f"input file '{text}' cannot be looked at: {e.strerror or e}"
        return None


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
