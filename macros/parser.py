"""Parse macro text into the AST (:mod:`macros.ast`), with positions and readable syntax errors."""

from __future__ import annotations

import json
import math
import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast
from .diagnostics import Diagnostic, MacroError, source_line

KEYWORDS = {"version", "param", "true", "false", "none"}

_HUMAN = {
    "NAME": "a name", "STRING": "a string", "INT": "a number", "FLOAT": "a number", "COMMENT": "a comment",
    "_NL": "end of line", "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "COMMA": "','",
    "EQUAL": "'='", "TRUE": "true", "FALSE": "false", "NONE": "none", "VERSION": "'version'",
    "PARAM": "'param'", "$END": "end of file",
}


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


def _pos(node_or_token) -> dict:
    if isinstance(node_or_token, Token):
        return {"line": node_or_token.line, "column": node_or_token.column,
                "end_column": node_or_token.end_column or node_or_token.column + len(node_or_token)}
    meta = node_or_token
    return {"line": getattr(meta, "line", 0), "column": getattr(meta, "column", 0),
            "end_column": getattr(meta, "end_column", 0) if getattr(meta, "end_line", None) == getattr(meta, "line", None) else 0}


class _StringError(Exception):
    def __init__(self, token: Token, message: str):
        self.token, self.message = token, message


@v_args(meta=True)
class _ToAST(Transformer):
    def string(self, meta, children):
        tok = children[0]
        try:
            value = json.loads(tok)
        except ValueError as e:
            raise _StringError(tok, f"bad escape in string ({e.msg})") from None
        return ast.Const(value, **_pos(tok))

    def int(self, meta, children):
        tok = children[0]
        digits = tok.lstrip("+-")
        if len(digits) > 19 or not -(2 ** 63) <= int(tok) < 2 ** 63:
            raise _StringError(tok, "whole number out of range (numbers must fit in 64 bits)")
        return ast.Const(int(tok), **_pos(tok))

    def float(self, meta, children):
        tok = children[0]
        value = float(tok)
        if not math.isfinite(value):
            raise _StringError(tok, "number out of range (too large for a 64-bit float)")
        return ast.Const(value, **_pos(tok))

    def true(self, meta, children):
        return ast.Const(True, **_pos(meta))

    def false(self, meta, children):
        return ast.Const(False, **_pos(meta))

    def none(self, meta, children):
        return ast.Const(None, **_pos(meta))

    def name(self, meta, children):
        return ast.Name(str(children[0]), **_pos(children[0]))

    def list(self, meta, children):
        return ast.ListExpr([c for c in children if c is not None], **_pos(meta))

    def kwarg(self, meta, children):
        return ast.Arg(str(children[0]), children[1], **_pos(children[0]))

    def call(self, meta, children):
        name, *args = children
        out = []
        for a in args:
            if a is None:
                continue
            out.append(a if isinstance(a, ast.Arg) else ast.Arg(None, a, line=a.line, column=a.column,
                                                                 end_column=a.end_column))
        return ast.Call(str(name), out, **_pos(name))

    def version(self, meta, children):
        return ast.Version(int(children[0]), **_pos(meta))

    def param(self, meta, children):
        return ast.ParamDecl(str(children[0]), children[1], **_pos(children[0]))

    def assign(self, meta, children):
        return ast.Assign(str(children[0]), children[1], **_pos(children[0]))

    def call_stmt(self, meta, children):
        c = children[0]
        return ast.CallStmt(c, line=c.line, column=c.column, end_column=c.end_column)

    def line(self, meta, children):
        stmt, comment = children
        text = str(comment)[1:].rstrip() if comment is not None else None
        if stmt is None:
            if text is None:
                return ast.Blank(line=meta.line if hasattr(meta, "line") else 0)
            return ast.Comment(comment=text, **_pos(comment))
        stmt.comment = text
        return stmt

    def start(self, meta, children):
        return children


def _expected(tokens) -> str:
    names = sorted({_HUMAN.get(t, t.lower()) for t in tokens})
    return ", ".join(names[:-1]) + (" or " if len(names) > 1 else "") + names[-1] if names else "nothing"


def _keyword_before(text: str, pos: int):
    """``(word, offset)`` if the text just before ``pos`` ends in a keyword, else ``None``."""
    m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)[ \t\f]*$", text[:pos])
    return (m.group(1), m.start(1)) if m and m.group(1) in KEYWORDS else None


def _syntax_error(e: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line, col = e.line, e.column
    if isinstance(e, UnexpectedCharacters):
        ch = text[e.pos_in_stream] if e.pos_in_stream < len(text) else ""
        if ch == '"':
            msg = "unterminated string"
        else:
            msg = f"unexpected character {ch!r}; expected {_expected(e.allowed)}"
    elif isinstance(e, UnexpectedToken):
        tok = e.token
        if tok.type == "$END":
            msg = f"unexpected end of file; expected {_expected(e.expected)}"
        elif tok.type == "_NL":
            msg = f"unexpected end of line; expected {_expected(e.expected)}"
        elif str(tok) in KEYWORDS and "NAME" in e.expected:
            msg = f"'{tok}' is a keyword and cannot be used as a name"
        elif tok.type == "EQUAL" and _keyword_before(text, e.pos_in_stream):
            word, start = _keyword_before(text, e.pos_in_stream)
            col -= e.pos_in_stream - start
            msg = f"'{word}' is a keyword and cannot be used as a name"
        else:
            kind = {"NAME": "name ", "STRING": "string ", "INT": "number ", "FLOAT": "number "}.get(tok.type, "")
            msg = f"unexpected {kind}{str(tok)!r}; expected {_expected(e.expected)}"
    elif isinstance(e, UnexpectedEOF):
        msg = f"unexpected end of file; expected {_expected(e.expected)}"
    else:
        msg = str(e)
    return Diagnostic(path, line or 0, col or 0, msg, source_line(text, line or 0))


#: The deepest nesting of lists a macro may have (deeper is surely a mistake, and would exhaust the
#: transformer's recursion).
MAX_NESTING = 32


def _check_nesting(src: str, path: str) -> None:
    """Raise :class:`MacroError` at the first ``[`` nested deeper than :data:`MAX_NESTING`."""
    if src.count("[") <= MAX_NESTING:
        return
    for n, line in enumerate(src.splitlines(), start=1):
        depth, in_str, esc = 0, False, False
        for col, ch in enumerate(line, start=1):
            if in_str:
                esc, in_str = (False, True) if esc else (ch == "\\", ch != '"')
            elif ch == '"':
                in_str = True
            elif ch == "#":
                break
            elif ch == "[":
                depth += 1
                if depth > MAX_NESTING:
                    raise MacroError([Diagnostic(path, n, col, f"lists nested more than {MAX_NESTING} deep",
                                                 line)])
            elif ch == "]":
                depth -= 1


def parse(text: str, path: str | None = None) -> ast.Macro:
    """Parse macro ``text``; raise :class:`MacroError` (file:line:col) on a syntax error.

    Runs of blank lines collapse to one, and blank lines at the start and end are dropped, so the AST
    of a macro and of its canonical form are equal.
    """
    path = path or "<macro>"
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark, as some editors write
    src = text if text.endswith("\n") else text + "\n"
    _check_nesting(src, path)
    try:
        tree = _parser().parse(src)
        stmts = _ToAST().transform(tree)
    except UnexpectedInput as e:
        raise MacroError([_syntax_error(e, src, path)]) from None
    except VisitError as e:
        if isinstance(e.orig_exc, _StringError):
            tok = e.orig_exc.token
            raise MacroError([Diagnostic(path, tok.line, tok.column, e.orig_exc.message,
                                         source_line(src, tok.line), len(tok))]) from None
        raise
    out: list[ast.Statement] = []
    for s in stmts:
        if isinstance(s, ast.Blank) and (not out or isinstance(out[-1], ast.Blank)):
            continue
        out.append(s)
    while out and isinstance(out[-1], ast.Blank):
        out.pop()
    return ast.Macro(out, path=path, source=text)


def parse_file(path: str | Path) -> ast.Macro:
    """Read and parse a ``.dfm`` file (errors name it)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark (some Windows editors) is dropped
    except FileNotFoundError:
        raise MacroError([Diagnostic(str(path), 0, 0, "no such macro file")]) from None
    except IsADirectoryError:
        raise MacroError([Diagnostic(str(path), 0, 0, "is a folder, not a macro file")]) from None
    except UnicodeDecodeError as e:
        raise MacroError([Diagnostic(str(path), 0, 0, f"not a UTF-8 text file ({e.reason})")]) from None
    except OSError as e:
        raise MacroError([Diagnostic(str(path)[:200], 0, 0, f"cannot read the macro file: {e.strerror or e}")]) \
            from None
    return parse(text, str(path))


def parse_value(text: str):
    """Parse a single literal (as given to ``--set k=v``); return ``None`` if it is not one.

    Returns a :class:`~macros.ast.Const` or :class:`~macros.ast.ListExpr`.
    """
    try:
        m = parse(f"param _ = {text}")
    except MacroError:
        return None
    if len(m.statements) != 1 or m.statements[0].comment is not None:
        return None
    v = m.statements[0].value
    return None if isinstance(v, ast.Name) else v
