"""Print a macro AST in canonical form.

Canonical form: one statement per line; ``name = action(a, b, key=value)`` with one space around the
statement's ``=`` and none around keyword ``=``; strings in double quotes with JSON escapes; floats as
Python's shortest round-tripping ``repr``; a trailing comment two spaces after the code; single blank
lines kept, runs collapsed; a final newline. ``parse(format_macro(m)) == m`` for every macro ``m``.
"""

from __future__ import annotations

from damselfly.engine.registry import format_literal

from . import ast


def format_value(v: ast.Expr) -> str:
    if isinstance(v, ast.Name):
        return v.id
    if isinstance(v, ast.ListExpr):
        return "[" + ", ".join(format_value(x) for x in v.items) + "]"
    return format_const(v.value)


format_const = format_literal


def format_call(c: ast.Call) -> str:
    args = [(f"{a.name}=" if a.name is not None else "") + format_value(a.value) for a in c.args]
    return f"{c.action}({', '.join(args)})"


def format_statement(s: ast.Statement) -> str:
    if isinstance(s, ast.Comment):
        return f"#{s.comment}"
    if isinstance(s, ast.Blank):
        return ""
    if isinstance(s, ast.Version):
        code = f"version {s.number}"
    elif isinstance(s, ast.ParamDecl):
        code = f"param {s.name} = {format_value(s.value)}"
    elif isinstance(s, ast.Assign):
        code = f"{s.target} = {format_call(s.call)}"
    elif isinstance(s, ast.CallStmt):
        code = format_call(s.call)
    else:
        raise TypeError(f"unknown statement {s!r}")
    return code + (f"  #{s.comment}" if s.comment is not None else "")


def format_macro(m: ast.Macro) -> str:
    """The canonical text of ``m``."""
    lines: list[str] = []
    for s in m.statements:
        if isinstance(s, ast.Blank) and (not lines or lines[-1] == ""):
            continue
        lines.append(format_statement(s))
    while lines and lines[-1] == "":
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
