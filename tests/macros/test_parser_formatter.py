from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from damselfly.macros import ast
from damselfly.macros.diagnostics import MacroError
from damselfly.macros.formatter import format_macro
from damselfly.macros.parser import KEYWORDS, parse, parse_value

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_nodes_keep_line_and_column():
    m = parse('version 1\n\nparam scan = "a.tif"\nraw = load(scan, spacing=[1, 2.5, -3e-2])  # hi\n')
    v, blank, p, a = m.statements
    assert isinstance(blank, ast.Blank)
    assert (p.line, p.value.line, p.value.column) == (3, 3, 14)
    assert (a.line, a.column, a.call.line, a.call.column) == (4, 1, 4, 7)
    arg = a.call.args[1]
    assert (arg.name, arg.line, arg.column) == ("spacing", 4, 18)
    assert arg.value.items[2] == ast.Const(-0.03) and arg.value.items[0] == ast.Const(1)
    assert a.comment == " hi"


def test_int_and_float_constants_are_distinct():
    assert ast.Const(1) != ast.Const(1.0) and ast.Const(True) != ast.Const(1)
    assert parse_value("3") == ast.Const(3) and parse_value("3.0") == ast.Const(3.0)
    assert parse_value("foo/bar.tif") is None
    assert parse_value('["a", 1, true, none]') == ast.ListExpr(
        [ast.Const("a"), ast.Const(1), ast.Const(True), ast.Const(None)])


@pytest.mark.parametrize("text, line, col, message", [
    ("raw = load(scan\n", 1, 16, "unexpected end of line"),
    ('x = load("abc)\n', 1, 10, "unterminated string"),
    ("version 1\nx = f(a=)\n", 2, 9, "unexpected ')'"),
    ("x = f(1) y\n", 1, 10, "unexpected name 'y'"),
    ("param = 3\n", 1, 1, "'param' is a keyword"),
    ("x = f(true=1)\n", 1, 7, "'true' is a keyword"),
    ('x = f("\\q")\n', 1, 7, "bad escape"),
    ("x = f(1 $ 2)\n", 1, 9, "unexpected character '$'"),
])
def test_syntax_errors_point_at_line_and_column(text, line, col, message):
    with pytest.raises(MacroError) as e:
        parse(text, "m.dfm")
    d = e.value.diagnostics[0]
    assert (d.path, d.line, d.column) == ("m.dfm", line, col)
    assert message in d.message
    printed = str(e.value).splitlines()
    assert printed[0].startswith(f"m.dfm:{line}:{col}: error: ")
    assert printed[2].index("^") - 4 == col - 1  # caret under the column


def test_format_is_canonical_and_keeps_comments():
    src = ('# head\n\n\nversion   1\nparam  s = "x"#c\n\n\n\nraw=load( s ,spacing = [1,2 ,3] , )\n'
           'save(raw,"o.tif")   #  tail  \n\n')
    out = format_macro(parse(src))
    assert out == ('# head\n\nversion 1\nparam s = "x"  #c\n\nraw = load(s, spacing=[1, 2, 3])\n'
                   'save(raw, "o.tif")  #  tail\n')
    assert parse(out) == parse(src)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.dfm")), ids=lambda p: p.name)
def test_shipped_examples_are_canonical(path):
    text = path.read_text()
    assert format_macro(parse(text)) == text


# -- property test: parse(format(m)) == m and format is idempotent -------------------------------------
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
floats = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.integers(-10**12, 10**12).map(ast.Const), floats.map(ast.Const),
                    st.text(max_size=12).map(ast.Const), st.booleans().map(ast.Const), st.just(ast.Const(None)))
literals = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4).map(ast.ListExpr), max_leaves=8)
values = st.one_of(literals, names.map(ast.Name))
comments = st.one_of(st.none(), st.text(max_size=15).map(lambda s: s.replace("\n", " ").replace("\r", " ").rstrip()))
args = st.lists(st.builds(ast.Arg, st.one_of(st.none(), names), values), max_size=4)
calls = st.builds(ast.Call, names, args)
statements = st.one_of(
    st.builds(ast.Version, st.integers(0, 99), comment=comments),
    st.builds(ast.ParamDecl, names, literals, comment=comments),
    st.builds(ast.Assign, names, calls, comment=comments),
    st.builds(ast.CallStmt, calls, comment=comments),
    comments.filter(lambda c: c is not None).map(lambda c: ast.Comment(comment=c)),
    st.just(ast.Blank()),
)


def normalise(stmts):
    out = []
    for s in stmts:
        if isinstance(s, ast.Blank) and (not out or isinstance(out[-1], ast.Blank)):
            continue
        out.append(s)
    while out and isinstance(out[-1], ast.Blank):
        out.pop()
    return ast.Macro(out)


@settings(max_examples=300, deadline=None)
@given(st.lists(statements, max_size=12).map(normalise))
def test_parse_format_roundtrip(macro):
    text = format_macro(macro)
    again = parse(text)
    assert again == macro
    assert format_macro(again) == text
