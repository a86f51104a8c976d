"""The macro AST. Every node keeps the line and column (1-based) it came from.

Positions are not part of equality, so ``parse(format(m)) == m`` compares meaning and comments only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


@dataclass
class Node:
    line: int = field(default=0, compare=False, kw_only=True)
    column: int = field(default=0, compare=False, kw_only=True)
    end_column: int = field(default=0, compare=False, kw_only=True)


@dataclass
class Const(Node):
    """A literal: int, float, str, bool or None. Equality also compares the Python type (1 != 1.0)."""

    value: Union[int, float, str, bool, None]

    def __eq__(self, other):
        return isinstance(other, Const) and type(self.value) is type(other.value) and self.value == other.value

    __hash__ = None


@dataclass
class ListExpr(Node):
    items: list[Expr]


@dataclass
class Name(Node):
    id: str


Expr = Union[Const, ListExpr, Name]


@dataclass
class Arg(Node):
    name: str | None  # None for a positional argument
    value: Expr


@dataclass
class Call(Node):
    action: str
    args: list[Arg]


@dataclass
class Statement(Node):
    comment: str | None = field(default=None, kw_only=True)  # trailing comment, text after '#'


@dataclass
class Version(Statement):
    number: int


@dataclass
class ParamDecl(Statement):
    name: str
    value: Expr


@dataclass
class Assign(Statement):
    target: str
    call: Call


@dataclass
class CallStmt(Statement):
    call: Call


@dataclass
class Comment(Statement):
    """A line holding only a comment (``comment`` is its text after '#')."""


@dataclass
class Blank(Statement):
    """An empty line between statements (runs of them collapse to one)."""


@dataclass
class Macro:
    statements: list[Statement]
    path: str | None = field(default=None, compare=False)
    source: str = field(default="", compare=False, repr=False)

    def params(self) -> list[ParamDecl]:
        return [s for s in self.statements if isinstance(s, ParamDecl)]

    def calls(self) -> list[Assign | CallStmt]:
        return [s for s in self.statements if isinstance(s, (Assign, CallStmt))]
