"""The recorder: a session subscriber that turns executed actions into canonical macro text.

- Input paths become params: the first one is ``param scan``; later ones ``param <result>_file``
  (relative to the macro's folder when they are inside it), so the macro replays on other scans.
- Output paths are written relative to the session's output folder, and the scan's file stem inside
  an output name becomes ``{scan.stem}``, so a batch writes one set of outputs per scan.
- Arguments equal to the action's default are left out.
- What the user meant, not every step: an action that re-makes the result it just made (same action,
  same target, nothing used it yet, e.g. dragging a slider) replaces the previous statement.
- Objects made outside actions (painted labels), and labels edited by hand after an action made them
  (a predicted slice corrected with the brush), are saved as files beside the macro (``assets/``) and
  loaded there, each time with the content they had when an action used them.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from damselfly.engine.core.data import Labels, Table
from damselfly.engine.core.errors import DamselflyError
from damselfly.engine.io import _files as io
from damselfly.engine.segmentation import _model as model_io
from damselfly.engine.segmentation._model import Model
from damselfly.engine.session import OBJECT_CLASSES, ActionEvent, Session

from . import ast
from .formatter import format_macro

_COMPARE_DEFAULT = (int, float, str, bool, type(None), list, tuple)


def _const(value) -> ast.Expr:
    if isinstance(value, (list, tuple)):
        return ast.ListExpr([_const(v) for v in value])
    return ast.Const(value)


def _is_default(value, default) -> bool:
    if not isinstance(default, _COMPARE_DEFAULT) or not isinstance(value, _COMPARE_DEFAULT):
        return False
    if isinstance(value, (list, tuple)) and isinstance(default, (list, tuple)):
        return list(value) == list(default)
    return type(value) is type(default) and value == default or (
        isinstance(value, (int, float)) and isinstance(default, float) and not isinstance(value, bool)
        and float(value) == default)


def _names(st: ast.Statement) -> set[str]:
    """The names a statement's arguments use."""
    def walk(v):
        if isinstance(v, ast.Name):
            yield v.id
        elif isinstance(v, ast.ListExpr):
            for x in v.items:
                yield from walk(x)

    if not isinstance(st, (ast.Assign, ast.CallStmt)):
        return set()
    return {n for a in st.call.args for n in walk(a.value)}


def _without_unused(body: list[ast.Statement]) -> list[ast.Statement]:
    """Drop assignments whose result nothing after them uses (repeatedly); calls without a result
    (save, snapshot, ...) are what a macro is for and stay."""
    while True:
        keep = []
        for i, st in enumerate(body):
            if isinstance(st, ast.Assign) and not any(st.target in _names(later) for later in body[i + 1:]):
                continue
            keep.append(st)
        if len(keep) == len(body):
            return keep
        body = keep


def _scores(model: Model) -> str:
    """The held-out Dice of the methods ``train(arch="auto")`` compared, in words."""
    cols = model.config["comparison"]["columns"]
    if not cols.get("method"):
        return model.config["comparison"].get("note") or "not scored"
    dice = [k for k in cols if k.startswith("dice_")]
    n = len(model.config["comparison"]["holdout"])
    scored = model.config["comparison"].get("folds_scored") or [n] * len(cols["method"])

    def row(i: int, m: str) -> str:
        if scored[i] == 0:
            return f"{m} not trained (the forest left it no room)"
        part = "" if scored[i] == n else f" on {scored[i]} of {n} folds (then it could not beat the forest)"
        return f"{m} " + ", ".join(f"{k[5:]} {cols[k][i]:.3f}" for k in dice) + part

    return "; ".join(row(i, m) for i, m in enumerate(cols["method"])) + " (held-out Dice)"


class Recorder:
    """Record the actions run through ``session`` as a macro.

    Parameters
    ----------
    session : Session
        The session to listen to (recording starts at once; call :meth:`stop` to end it).
    macro_dir : path, optional
        Where the macro will be saved: input paths inside it are written relative to it, and hand-made
        objects (painted labels) are saved under ``macro_dir/assets``. Default: the session's
        ``base_dir``.
    comment : str, optional
        A first comment line for the macro.
    """

    def __init__(self, session: Session, macro_dir: str | os.PathLike | None = None, comment: str | None = None):
        self.session = session
        self.macro_dir = Path(macro_dir or session.settings.base_dir).resolve()
        self.header: list[ast.Statement] = [ast.Comment(comment=f" {comment}")] if comment else []
        self.params: list[ast.ParamDecl] = []
        self.body: list[ast.Statement] = []
        self._param_for_path: dict[str, str] = {}
        self._scan_stem: str | None = None
        self._last_target_used = True
        self._content: dict[str, object] = {}  # name bound by the macro -> content key when bound
        self._assets: set[str] = set()
        self.saved_for_new_scans: list[str] = []  # what for_new_scans added save statements for
        self._unsubscribe = session.subscribe(self._on_event)

    # -- public ---------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop listening to the session."""
        self._unsubscribe()

    def macro(self) -> ast.Macro:
        stmts: list[ast.Statement] = list(self.header) + [ast.Version(1)]
        if self.params:
            stmts += [ast.Blank()] + list(self.params)
        if self.body:
            stmts += [ast.Blank()] + list(self.body)
        return ast.Macro(stmts)

    def text(self) -> str:
        """The recorded macro in canonical form."""
        return format_macro(self.macro())

    def unsaved(self) -> list[str]:
        """Results the recording computed that no later statement uses or saves (what a replay would
        compute and throw away)."""
        from .checker import check

        return check(self.macro(), check_files=False, allow_outside=True).unused

    def add_saves(self, names: list[str]) -> None:
        """Append a ``save`` (``save_model`` for models) of each result in ``names`` to the recording:
        ``{scan.stem}_<name>.tif`` for volumes and labels (``.zarr`` for big ones: ``io.asset_suffix``),
        ``.csv`` for tables, ``<name>.dfmodel``."""
        self.body += self._saves(names)

    def _saves(self, names: list[str]) -> list[ast.Statement]:
        stem = "{scan.stem}_" if self._scan_stem else ""
        out = []
        for name in names:
            obj = self.session.objects.get(name)
            if isinstance(obj, Model):
                call = ast.Call("save_model", [ast.Arg(None, ast.Name(name)),
                                               ast.Arg(None, ast.Const(f"{name}{model_io.SUFFIX}"))])
            else:
                ext = ".csv" if isinstance(obj, Table) else io.asset_suffix(obj)
                call = ast.Call("save", [ast.Arg(None, ast.Name(name)), ast.Arg(None, ast.Const(f"{stem}{name}{ext}"))])
            out.append(ast.CallStmt(call))
        return out

    def _unsaved_results(self, body: list[ast.Statement]) -> list[str]:
        """The labels and tables ``body`` computes from the scan (from ``param scan``, through any chain of
        statements; not labels painted or loaded for training) and never saves."""
        saved = {st.call.args[0].value.id for st in body if isinstance(st, ast.CallStmt) and st.call.action == "save"
                 and st.call.args and isinstance(st.call.args[0].value, ast.Name)}
        from_scan, made = {"scan"}, []
        for st in body:
            if isinstance(st, ast.Assign) and _names(st) & from_scan:
                from_scan.add(st.target)
                if not st.call.action.startswith("load") and isinstance(self.session.objects.get(st.target),
                                                                           (Labels, Table)):
                    made.append(st.target)
        return [n for n in dict.fromkeys(made) if n not in saved]

    def for_new_scans(self) -> ast.Macro:
        """The recording as a macro for new scans: every network trained in it is saved as an asset
        (``assets/<name>.dfmodel``) and loaded instead of trained, and what only training needed (the
        painted labels, saving the model again) is left out; everything after training (calibrate,
        infer, measure, save, render) stays, with ``param scan``. A batch of it applies the model trained
        on the recorded scan, rather than training each scan on labels painted on another one. Every
        labels and table computed from the scan (the segmentation at least) is saved, as ``save``
        statements where the recording had none (``saved_for_new_scans`` names them): a batch that
        computes a segmentation and only draws it would keep nothing.
        """
        assets = self.macro_dir / "assets"
        trained: set[str] = set()
        body: list[ast.Statement] = []
        for st in self.body:
            if isinstance(st, ast.Assign) and st.call.action == "train":
                model = self.session.objects.get(st.target)
                if not isinstance(model, Model):
                    raise DamselflyError(f"the model '{st.target}' is no longer in the session; record again")
                fname = f"{st.target}{model_io.SUFFIX}"
                model_io.save_model(model, assets / fname)
                trained.add(st.target)
                st = ast.Assign(st.target, ast.Call("load_model", [ast.Arg(None, ast.Const(f"assets/{fname}"))]))
            elif (isinstance(st, ast.CallStmt) and st.call.action == "save_model" and st.call.args
                  and isinstance(st.call.args[0].value, ast.Name) and st.call.args[0].value.id in trained):
                continue  # the model is an asset now
            body.append(st)
        self.saved_for_new_scans = self._unsaved_results(body)
        body = _without_unused(body + self._saves(self.saved_for_new_scans))
        used = {n for st in body for n in _names(st)}
        params = [p for p in self.params if p.name == "scan" or p.name in used]
        stmts: list[ast.Statement] = list(self.header) + [ast.Version(1)]
        if params:
            stmts += [ast.Blank()] + params
        return ast.Macro(stmts + [ast.Blank()] + body)

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        io.write_text(p, self.text())
        return p

    # -- events ---------------------------------------------------------------------------------
    def _input_param(self, raw: str, resolved: str, target: str | None, pname: str) -> str:
        key = str(Path(resolved).resolve())
        if key in self._param_for_path:
            return self._param_for_path[key]
        if not self._param_for_path:
            name = "scan"
            self._scan_stem = io.stem(key)
        else:
            base = f"{target}_file" if target else f"{pname}_file"
            name, k = base, 2
            taken = {p.name for p in self.params}
            while name in taken:
                name, k = f"{base}{k}", k + 1
        try:
            value = os.path.relpath(key, self.macro_dir)
            if value.startswith(".."):
                value = key
        except ValueError:  # another drive on Windows
            value = key
        self._param_for_path[key] = name
        self.params.append(ast.ParamDecl(name, ast.Const(Path(value).as_posix() if value != key else value)))
        return name

    def _output_value(self, raw: str, resolved: str) -> str:
        out_dir = self.session.settings.out_dir
        p = Path(resolved)
        try:
            text = p.relative_to(out_dir).as_posix()
        except ValueError:
            text = raw
        if self._scan_stem and self._scan_stem in Path(text).name:
            parent = str(Path(text).parent)
            name = Path(text).name.replace(self._scan_stem, "{scan.stem}")
            text = name if parent in ("", ".") else f"{Path(parent).as_posix()}/{name}"
        return text

    @staticmethod
    def _key(obj):
        """What identifies an editable object's content: labels are painted in place in the app."""
        if isinstance(obj, Labels):
            return obj.hash(), tuple(obj.classes)
        return None

    def _name_for(self, obj, name: str | None) -> ast.Name:
        name = name or self.session.name_of(obj)
        if name and name in self._content and self._content[name] == self._key(obj):
            return ast.Name(name)
        return self._object_ref(obj, name)

    def _object_ref(self, obj, name: str | None = None) -> ast.Name:
        """A name for an object no recorded statement made as it is now: loaded from a file before
        recording started (and not edited since), its ``load``; otherwise (painted, or edited after it
        was made) it is saved beside the macro and loaded there."""
        source = self.session.sources.get(obj)
        edited = bool(getattr(obj, "metadata", {}).get("modified"))
        if source is not None and not edited and (name is None or name not in self._content):
            target = self.session.name_of(obj) or name or source.target
            self._on_event(dataclasses.replace(source, target=target, result=obj))
            return ast.Name(target)
        if isinstance(obj, Table):
            raise TypeError("cannot record a table that no action made")
        assets = self.macro_dir / "assets"
        if not (name and self.session.objects.get(name) is obj):
            base = obj.name or ("labels" if isinstance(obj, Labels) else "model" if isinstance(obj, Model)
                                else "volume")
            name = self.session.unique_name("".join(c if c.isalnum() else "_" for c in base) or "obj")
        suffix = model_io.SUFFIX if isinstance(obj, Model) else io.asset_suffix(obj)
        stem, k = name, 2
        while stem in self._assets or (assets / f"{stem}{suffix}").exists():
            stem, k = f"{name}_{k}", k + 1
        self._assets.add(stem)
        fname = f"{stem}{suffix}"
        if isinstance(obj, Model):
            model_io.save_model(obj, assets / fname)
            action = "load_model"
        else:
            io.write_volume(obj, assets / fname)
            action = "load_labels" if isinstance(obj, Labels) else "load"
        args = [ast.Arg(None, ast.Const(f"assets/{fname}"))]
        if not isinstance(obj, Model) and not all(s == 1.0 for s in obj.spacing):
            args.append(ast.Arg("spacing", _const(list(obj.spacing))))
        self.body.append(ast.Assign(name, ast.Call(action, args)))
        self.session.objects[name] = obj
        self._content[name] = self._key(obj)
        return ast.Name(name)

    def _kept_model(self, ev: ActionEvent) -> bool:
        """A training whose model a replay would not give again is recorded as that model, loaded from
        an asset with a comment saying why: Stop or a time budget ended it, or ``arch="auto"`` kept a
        network trained within a time budget. (The forest kept by ``auto`` is deterministic: its
        statement is recorded with ``arch="forest"`` instead, see :meth:`_on_event`.)"""
        model = ev.result
        if ev.action != "train" or not isinstance(model, Model) or not ev.target:
            return False
        tr, auto = model.config.get("training", {}), model.config.get("comparison", {}).get("auto")
        why = {"cancelled": "Stop ended it", "budget": "its time budget ended it"}.get(tr.get("stopped"))
        if why:
            why = f"train stopped at epoch {tr.get('epochs_run')} of {tr.get('epochs')} ({why})"
        elif auto and model.config.get("arch") != "forest":
            why = f'train(arch="auto") kept a {model.config.get("arch")} trained within a time budget'
        else:
            return False
        self.body.append(ast.Comment(comment=f" {why}: the model it kept is an asset, so a replay gives it"))
        self._object_ref(model, ev.target)
        return True

    def _on_event(self, ev: ActionEvent) -> None:
        if self._kept_model(ev):
            return
        spec = self.session.registry.get(ev.action)
        args: list[ast.Arg] = []
        used_names: set[str] = set()
        for p in spec.params:
            if p.name not in ev.args:
                continue
            value = ev.args[p.name]
            if not p.required and _is_default(value, p.default):
                continue
            if isinstance(value, OBJECT_CLASSES):
                expr = self._name_for(value, ev.arg_names.get(p.name))
                used_names.add(expr.id)
            elif isinstance(value, (list, tuple)) and value and all(isinstance(v, OBJECT_CLASSES) for v in value):
                expr = ast.ListExpr([self._name_for(v, None) for v in value])
                used_names.update(e.id for e in expr.items)
            elif p.path_kind == "input" and isinstance(value, str):
                expr = ast.Name(self._input_param(value, ev.resolved[p.name], ev.target, p.name))
            elif p.path_kind == "output" and isinstance(value, str):
                expr = ast.Const(self._output_value(value, ev.resolved[p.name]))
            else:
                expr = _const(value)
            args.append(ast.Arg(None if p.required else p.name, expr))
        if isinstance(ev.result, Model) and ev.result.config.get("comparison", {}).get("auto"):
            # train(arch="auto") kept the forest: record that choice (the same model, in seconds)
            args = [a for a in args if a.name != "arch"]
            at = next((i for i, a in enumerate(args) if a.name is not None), len(args))
            args.insert(at, ast.Arg("arch", ast.Const(ev.result.config["arch"])))
            self.body.append(ast.Comment(comment=f' train(arch="auto") kept the forest: {_scores(ev.result)}'))
        call = ast.Call(spec.name, args)
        stmt = ast.Assign(ev.target, call) if ev.target else ast.CallStmt(call)
        last = self.body[-1] if self.body else None
        if (ev.target and isinstance(last, ast.Assign) and last.target == ev.target
                and last.call.action == ev.action and ev.target not in used_names):
            self.body[-1] = stmt  # the user adjusted what they just made: keep the final version
        else:
            self.body.append(stmt)
        if ev.target:
            self._content[ev.target] = self._key(ev.result)
