"""Run a checked macro through a :class:`~engine.session.Session` — the same entry point the app uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from damselfly.engine.core.errors import Cancelled, DamselflyError
from damselfly.engine.session import Session

from . import ast
from .diagnostics import MacroError, at
from .templates import expand


@dataclass
class StatementTiming:
    line: int
    action: str
    target: str | None
    seconds: float


def evaluate(v: ast.Expr, params: dict, session: Session):
    """The runtime value of an expression: literals (templates expanded), params, or session objects."""
    if isinstance(v, ast.Const):
        return expand(v.value, params) if isinstance(v.value, str) else v.value
    if isinstance(v, ast.ListExpr):
        return [evaluate(x, params, session) for x in v.items]
    if v.id in params:
        return params[v.id]
    return session.objects[v.id]


def execute(macro: ast.Macro, session: Session, params: dict,
            on_statement: Callable[[ast.Statement, int, int], None] | None = None,
            timings: list[StatementTiming] | None = None) -> list[StatementTiming]:
    """Execute the statements of ``macro`` (already checked) with final ``params``.

    Errors from actions are re-raised as :class:`MacroError` pointing at the statement's line, except
    :class:`~engine.errors.Cancelled`, which propagates as it is.

    Parameters
    ----------
    on_statement : callable, optional
        Called as ``on_statement(statement, index, count)`` before each action.
    timings : list, optional
        Filled with a :class:`StatementTiming` per finished statement (kept when a later one fails).
    """
    calls = macro.calls()
    timings = [] if timings is None else timings
    for i, st in enumerate(calls):
        if on_statement is not None:
            on_statement(st, i, len(calls))
        call = st.call
        args, kwargs = [], {}
        for a in call.args:
            value = evaluate(a.value, params, session)
            if a.name is None:
                args.append(value)
            else:
                kwargs[a.name] = value
        target = st.target if isinstance(st, ast.Assign) else None
        t0 = time.perf_counter()
        try:
            session.run(call.action, *args, target=target, **kwargs)
        except Cancelled:
            raise
        except DamselflyError as e:
            raise MacroError([at(macro, macro.path, call, f"{call.action}: {e}", len(call.action))]) from e
        except Exception as e:  # a bug or an unexpected library error: still point at the line
            raise MacroError([at(macro, macro.path, call,
                                 f"{call.action}: internal error {type(e).__name__}: {e}",
                                 len(call.action))]) from e
        timings.append(StatementTiming(st.line, call.action, target, time.perf_counter() - t0))
    return timings
