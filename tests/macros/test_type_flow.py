"""Type flow is a promise of the language: every wrong-type argument, for every action, is a positioned
checker error before anything runs (issue: one step of architecture)."""

import pytest

from damselfly.engine import Labels, Table, Volume, all_actions
from damselfly.engine.registry import choices, object_classes
from damselfly.engine.segmentation._model import Model
from damselfly.macros.checker import check
from damselfly.macros.parser import parse

PRELUDE = ('version 1\nvol = load("v.tif")\nlab = load_labels("l.tif")\nmod = load_model("m.dfmodel")\n'
           'tab = training_history(mod)\n')
OBJECTS = {"vol": Volume, "lab": Labels, "mod": Model, "tab": Table}


def diagnostics(call: str):
    return check(parse(PRELUDE + call + "\n", "t.dfm"), check_files=False).diagnostics


def test_calibrate_of_a_segmentation_is_a_check_error():
    d = [x for x in diagnostics("cal = calibrate(lab)") if x.severity == "error"]
    assert [(x.line, x.column) for x in d] == [(6, 17)]
    assert "calibrate(): volume expects Volume, got Labels" in d[0].message


def _wrong_values(p):
    """Values of every kind that the parameter's annotation does not admit (as macro text)."""
    admitted = set(object_classes(p.annotation))
    out = [name for name, cls in OBJECTS.items() if cls not in admitted]
    tn = p.type_name
    if choices(p.annotation) is None and "str" not in tn and "path" not in tn:
        out.append('"text"')
    if not any(t in tn for t in ("int", "float", "any")) and choices(p.annotation) is None:
        out.append("7")
    return out


CASES = [(spec.name, p.name, wrong) for spec in all_actions() for p in spec.params for wrong in _wrong_values(p)]


@pytest.mark.parametrize("action, param, wrong", CASES, ids=[f"{a}-{p}-{w}" for a, p, w in CASES])
def test_every_wrong_type_argument_is_caught(action, param, wrong):
    call = f"{action}({param}={wrong})"
    d = diagnostics(call)
    col = len(f"{action}({param}=") + 1
    hits = [x for x in d if x.line == 6 and x.column == col]
    assert hits, f"{call}: no error at the argument; got {[x.format() for x in d]}"
    assert param in hits[0].message and "expects" in hits[0].message


def test_the_cases_cover_every_action_and_object_type():
    assert {a for a, _, _ in CASES} == {s.name for s in all_actions()}
    assert {w for _, _, w in CASES} >= set(OBJECTS) | {'"text"', "7"}
    assert len(CASES) > 150
