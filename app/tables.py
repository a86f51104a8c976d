"""A dock that shows a :class:`~damselfly.engine.core.data.Table` (measurements, a method comparison): the
newest table an action made, or the one chosen in the data panel."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QDockWidget, QLabel, QMenu, QScrollArea, QTableWidget, QTableWidgetItem

from damselfly.engine import Table
from damselfly.engine.segmentation._model import Model


def table_of(obj) -> Table | None:
    """The table to show for a session object: a Table itself, or the comparison kept in a model made by
    ``compare_methods``; else None."""
    if isinstance(obj, Table):
        return obj
    if isinstance(obj, Model) and obj.config.get("comparison"):
        from damselfly.engine.actions.compare import comparison

        return comparison(obj)
    return None


def _text(v) -> str:
    if isinstance(v, bool):
        return "✔" if v else ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


class _Item(QTableWidgetItem):
    """A cell that sorts by its value (numbers as numbers), not by its text."""

    def __init__(self, value, row: int):
        super().__init__(_text(value))
        self.value, self.row = value, row

    def __lt__(self, other) -> bool:
        a, b = self.value, getattr(other, "value", None)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


class TableDock(QDockWidget):
    """Shows one table at a time, sortable by any column (click its header); the title names it. A click
    on a row emits ``row_chosen(dict)`` with that row (an object's row: the window goes to the object); the
    header's context menu offers a numeric column's histogram: ``histogram_requested(table name, column)``."""

    row_chosen = Signal(dict)
    histogram_requested = Signal(str, str)

    def __init__(self, parent=None):
        super().__init__("Table", parent)
        self.setObjectName("table")
        self.view = QTableWidget(0, 0)
        self.view.setEditTriggers(QTableWidget.NoEditTriggers)
        self.view.setSelectionBehavior(QTableWidget.SelectRows)
        self.view.cellClicked.connect(self._clicked)
        header = self.view.horizontalHeader()
        header.setContextMenuPolicy(Qt.CustomContextMenu)
        header.customContextMenuRequested.connect(self._header_menu)
        self.setWidget(self.view)
        self.shown: Table | None = None
        self.shown_name = ""

    def numeric(self, column: str) -> bool:
        v = self.shown[column] if self.shown is not None and column in self.shown.columns else []
        return bool(v) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v[:100])

    def header_menu(self, column: str) -> QMenu:
        """The context menu of a column's header (a menu of its own, so tests can trigger its entries)."""
        menu = QMenu(self)
        act = menu.addAction(f"Histogram of {column}…")
        act.setEnabled(self.numeric(column))
        act.triggered.connect(lambda: self.histogram_requested.emit(self.shown_name, column))
        return menu

    def _header_menu(self, pos: QPoint) -> None:
        c = self.view.horizontalHeader().logicalIndexAt(pos)
        if self.shown is not None and c >= 0:
            self.header_menu(list(self.shown.columns)[c]).popup(self.view.horizontalHeader().mapToGlobal(pos))

    def _clicked(self, r: int, _c: int) -> None:
        item = self.view.item(r, 0)
        if self.shown is not None and isinstance(item, _Item):
            self.row_chosen.emit(self.shown.rows()[item.row])

    def show_table(self, table: Table, name: str) -> None:
        """Fill the view with ``table`` (its columns as headers) and show the dock."""
        self.shown, self.shown_name = table, name
        cols = list(table.columns)
        self.view.setSortingEnabled(False)  # while filling: rows would move under the loop
        self.view.clear()
        self.view.setColumnCount(len(cols))
        self.view.setRowCount(len(table))
        self.view.setHorizontalHeaderLabels(cols)
        for r, row in enumerate(table.rows()):
            for c, key in enumerate(cols):
                item = _Item(row[key], r)
                item.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter if not isinstance(row[key], str)
                                      else Qt.AlignLeft | Qt.AlignVCenter)
                self.view.setItem(r, c, item)
        self.view.setSortingEnabled(True)
        self.view.resizeColumnsToContents()
        self.setWindowTitle(f"Table: {name}")
        self.show()
        self.raise_()


class PlotDock(QDockWidget):
    """Shows a plot an action wrote (a PNG: e.g. ``histogram``'s bar chart), scrollable, never a dialog."""

    def __init__(self, parent=None):
        super().__init__("Plot", parent)
        self.setObjectName("plot")
        self.label = QLabel()
        self.label.setAlignment(Qt.AlignCenter)
        area = QScrollArea()
        area.setWidget(self.label)
        area.setWidgetResizable(True)
        self.setWidget(area)
        self.path = ""

    def show_png(self, path: str) -> None:
        self.path = str(path)
        self.label.setPixmap(QPixmap(self.path))
        self.setWindowTitle(f"Plot: {path}")
        self.show()
        self.raise_()
