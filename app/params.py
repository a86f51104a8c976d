"""A parameter dialog built from an action's signature, so every registered action has one and new
engine actions appear in the app without app code: session objects of the right type in a list (ticked
in order where the action takes several, e.g. images as channels), allowed values (``Literal``) in a
list, booleans as check boxes, paths with a file picker, everything else as a macro literal (``0.5``,
``[1, 2]``, ``"text"``, empty for none) checked as it is typed.
"""

from __future__ import annotations

import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from damselfly.engine import ParameterError
from damselfly.engine.registry import ActionSpec, Param, format_literal, object_classes, takes_object_list
from damselfly.macros.checker import const_value
from damselfly.macros.parser import parse_value

_UNSET = object()
_MARKUP = re.compile(r"``([^`]*)``|:[a-z]+:`~?([^`]*)`")


def plain(doc: str) -> str:
    """A docstring's text without reStructuredText markup (``x`` and :func:`x` become x)."""
    return _MARKUP.sub(lambda m: m.group(1) if m.group(1) is not None else m.group(2).split(".")[-1], doc)


class ObjectChecklist(QListWidget):
    """Session objects to tick, one or several; ``names`` are the ticked ones in the order they were
    ticked (the order of the channels)."""

    def __init__(self, names: list[str]):
        super().__init__()
        self.names: list[str] = []
        for n in names:
            item = QListWidgetItem(n)
            item.setFlags(item.flags() | Qt.ItemIsUserCheckable)
            item.setCheckState(Qt.Unchecked)
            self.addItem(item)
        self.itemChanged.connect(self._changed)
        self.setFixedHeight(22 * min(max(len(names), 2), 5) + 6)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Fixed)  # spare room stays below the form

    def _changed(self, item: QListWidgetItem) -> None:
        n, on = item.text(), item.checkState() == Qt.Checked
        if on and n not in self.names:
            self.names.append(n)
        elif not on and n in self.names:
            self.names.remove(n)

    def tick(self, names: list[str]) -> None:
        """Tick exactly ``names``, in this order."""
        for i in range(self.count()):
            self.item(i).setCheckState(Qt.Unchecked)
        for n in names:
            self.findItems(n, Qt.MatchExactly)[0].setCheckState(Qt.Checked)


class ParamDialog(QDialog):
    """Collects the arguments of ``spec`` (macro names -> values) and the result's name.

    ``values()`` gives the arguments that differ from the defaults (what the recorder would write
    anyway); ``set_value(name, value)`` fills a field as a user would (tests, the box tool)."""

    def __init__(self, spec: ActionSpec, objects: dict, preset: dict | None = None, result_name: str | None = None,
                 boxes: list[list[int]] | None = None, parent=None):
        super().__init__(parent)
        self.spec = spec
        self.objects = objects
        self.boxes = boxes or []
        self.setWindowTitle(spec.name)
        self.fields: dict[str, QWidget] = {}
        outer = QVBoxLayout(self)
        self.about = QLabel(plain(spec.summary))  # the action's summary, without markup
        self.about.setWordWrap(True)
        if spec.summary:
            outer.addWidget(self.about)
        form_host = QWidget()
        host_lay = QVBoxLayout(form_host)
        form = QFormLayout()
        host_lay.addLayout(form)
        self.result_edit = None
        if spec.returns_value:
            self.result_edit = QLineEdit(result_name or spec.result_name)
            form.addRow("result name", self.result_edit)
        look = spec.presentation
        self.advanced = QGroupBox("Advanced")
        self.advanced.setCheckable(True)
        self.advanced.setChecked(False)  # folded: shown when ticked
        adv_form = QFormLayout(self.advanced)
        self.advanced.toggled.connect(self._toggle_advanced)
        self._rows: dict[str, tuple[QFormLayout, QLabel]] = {}
        for p in spec.params:
            w = self._field(p)
            self.fields[p.name] = w
            label = QLabel(p.name + ("" if not p.required else " *"))
            help_text = f"{p.type_name}\n{plain(p.doc)}"
            label.setToolTip(help_text)
            w.setToolTip(help_text)
            target = adv_form if look.basic and not p.required and p.name not in look.basic else form
            target.addRow(label, self._with_buttons(p, w))
            self._rows[p.name] = (target, label)
        if adv_form.rowCount():
            host_lay.addWidget(self.advanced)
            self._toggle_advanced(False)
        for controller in {c for c, _ in look.when.values()}:
            box = self.fields[controller]
            if isinstance(box, QComboBox):
                box.currentIndexChanged.connect(lambda _i: self._apply_when())
        self._apply_when()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(form_host)
        outer.addWidget(scroll)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #d33")
        self.error.setWordWrap(True)
        outer.addWidget(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._try_accept)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)
        self.resize(520, min(720, 140 + 34 * len(spec.params)))
        for k, v in (preset or {}).items():
            self.set_value(k, v)

    def shown(self, name: str) -> bool:
        """Whether the field of parameter ``name`` is on show (not folded away, and it applies)."""
        lay, label = self._rows[name]
        return lay.isRowVisible(label)

    def _toggle_advanced(self, on: bool) -> None:
        lay = self.advanced.layout()
        for i in range(lay.rowCount()):
            lay.setRowVisible(i, on)
        self._apply_when()

    def _apply_when(self) -> None:
        """Show only the fields that apply to the chosen values (``Presentation.when``)."""
        for name, (controller, values) in self.spec.presentation.when.items():
            lay, label = self._rows[name]
            box = self.fields[controller]
            applies = not isinstance(box, QComboBox) or box.currentData() in values
            if lay is not self.advanced.layout() or self.advanced.isChecked():
                lay.setRowVisible(label, applies)

    # -- fields ---------------------------------------------------------------------------------
    def _field(self, p: Param) -> QWidget:
        classes = object_classes(p.annotation)
        if classes and takes_object_list(p.annotation):  # one or several, ticked; the first to start with
            names = [n for n, obj in self.objects.items() if isinstance(obj, classes)]
            ticks = ObjectChecklist(names)
            if p.required and names:
                ticks.tick(names[:1])
            ticks.setProperty("kind", "objects")
            ticks.itemChanged.connect(lambda _i, name=p.name: self._check_one(name))
            return ticks
        if classes:  # session objects of the right type
            box = QComboBox()
            if not p.required:
                box.addItem("(none)", None)
            for name, obj in self.objects.items():
                if isinstance(obj, classes):
                    box.addItem(name, name)
            box.setProperty("kind", "object")
            return box
        ch = p.choices
        if ch is not None:
            box = QComboBox()
            if not p.required and p.default is None:
                box.addItem("(none)", None)
            for c in ch:
                box.addItem(str(c), c)
            if not p.required:
                box.setCurrentIndex(max(0, box.findData(p.default)))
            box.setProperty("kind", "choice")
            return box
        if p.annotation is bool:
            cb = QCheckBox()
            cb.setChecked(bool(p.default) if not p.required else False)
            cb.setProperty("kind", "bool")
            return cb
        edit = QLineEdit()
        if p.path_kind is None:
            if not p.required and p.default is not None:
                edit.setText(format_literal(list(p.default) if isinstance(p.default, tuple) else p.default))
            edit.setPlaceholderText("none" if not p.required else "text" if p.type_name == "str" else p.type_name)
            edit.setProperty("kind", "literal")
        else:
            edit.setPlaceholderText("none" if not p.required else "file")
            edit.setProperty("kind", "path")
        edit.textChanged.connect(lambda _t, name=p.name: self._check_one(name))
        return edit

    def _with_buttons(self, p: Param, w: QWidget) -> QWidget:
        extra = []
        if p.path_kind is not None:
            b = QPushButton("…")
            b.setFixedWidth(32)
            b.clicked.connect(lambda _c=False, name=p.name: self._pick_path(name))
            extra.append(b)
        role = self.spec.role(p.name)
        if role in ("box", "boxes"):
            b = QPushButton("drawn box" + ("es" if role == "boxes" else ""))
            b.setToolTip("Use the box(es) drawn with the box tool on the slice view")
            b.clicked.connect(lambda _c=False, name=p.name: self.use_boxes(name))
            extra.append(b)
        if not extra:
            return w
        host = QWidget()
        lay = QHBoxLayout(host)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(w, 1)
        for b in extra:
            lay.addWidget(b)
        return host

    def _pick_path(self, name: str) -> None:
        p = self.spec.param(name)
        if p.path_kind == "input":
            path, _ = QFileDialog.getOpenFileName(self, f"{self.spec.name}: {name}")
        else:
            path, _ = QFileDialog.getSaveFileName(self, f"{self.spec.name}: {name}")
        if path:
            self.fields[name].setText(path)

    def use_boxes(self, name: str) -> None:
        if not self.boxes:
            self.error.setText("draw a box on the slice view first (box tool)")
            return
        two = self.spec.role(name) == "boxes"
        value = self.boxes[-2:] if two else self.boxes[-1]
        if two and len(value) < 2:
            self.error.setText(f"{self.spec.name}: {name} needs two boxes: draw one more")
            return
        self.set_value(name, value)

    # -- values ---------------------------------------------------------------------------------
    def set_value(self, name: str, value) -> None:
        w = self.fields[self.spec.param(name).name]
        kind = w.property("kind")
        if kind == "objects":
            names = [value] if isinstance(value, str) else list(value or [])
            missing = [n for n in names if not w.findItems(n, Qt.MatchExactly)]
            if missing:
                raise ParameterError(f"{self.spec.name}: {missing[0]!r} is not offered for '{name}'")
            w.tick(names)
        elif kind in ("object", "choice"):
            i = w.findData(value)
            if i < 0:
                raise ParameterError(f"{self.spec.name}: {value!r} is not offered for '{name}'")
            w.setCurrentIndex(i)
        elif kind == "bool":
            w.setChecked(bool(value))
        elif kind == "path":
            w.setText("" if value is None else str(value))
        else:
            w.setText("" if value is None else format_literal(value))

    def _raw(self, name: str):
        w = self.fields[name]
        kind = w.property("kind")
        if kind == "object":
            key = w.currentData()
            return None if key is None else self.objects[key]
        if kind == "objects":
            chosen = [self.objects[n] for n in w.names]
            if not chosen:
                return _UNSET if self.spec.param(name).required else None
            return chosen[0] if len(chosen) == 1 else chosen
        if kind == "choice":
            return w.currentData()
        if kind == "bool":
            return w.isChecked()
        text = w.text().strip()
        if not text:
            return _UNSET
        if kind == "path":
            return text
        expr = parse_value(text)
        if expr is None:
            type_name = self.spec.param(name).type_name
            if "list[str]" in type_name:  # bare words, comma-separated, where a list of names is expected
                return [w.strip() for w in text.split(",") if w.strip()]
            if "str" in type_name:
                return text  # a bare word where a string is expected
            raise ParameterError(f"'{name}': {text!r} is not a value (numbers, \"text\", [lists], true/false, none)")
        return const_value(expr)

    def _check_one(self, name: str) -> bool:
        try:
            v = self._raw(name)
            if v is not _UNSET:
                self.spec.check_value(name, v)
        except ParameterError as e:
            self.error.setText(str(e))
            return False
        self.error.setText("")
        return True

    def values(self) -> dict:
        """The arguments to call the action with (macro names); raises ``ParameterError``."""
        out = {}
        for p in self.spec.params:
            v = self._raw(p.name)
            if v is _UNSET:
                if p.required:
                    raise ParameterError(f"{self.spec.name}: '{p.name}' is required")
                continue
            if not p.required and v == p.default and type(v) is type(p.default):
                continue
            if not p.required and p.default is None and v is None:
                continue
            self.spec.check_value(p.name, v)
            out[p.name] = v
        return out

    def result_name(self) -> str | None:
        if self.result_edit is None:
            return None
        name = self.result_edit.text().strip()
        if not name.isidentifier():
            raise ParameterError(f"the result name must be a name (letters, digits, _), got {name!r}")
        return name

    def _try_accept(self) -> None:
        try:
            self.values()
            self.result_name()
        except ParameterError as e:
            self.error.setText(str(e))
            return
        self.accept()
