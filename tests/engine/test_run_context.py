"""The run context is explicit: actions that need run settings declare a RunContext; nothing is read from
hidden state (issue: one step of architecture)."""

import ast
import inspect
from pathlib import Path

import numpy as np
import pytest

from damselfly.engine import InputError, Session, Settings, Volume, all_actions
from damselfly.engine.actions.io_actions import save
from damselfly.engine.core.context import RunContext

ROOT = Path(__file__).resolve().parents[2]


def test_no_action_module_reads_hidden_run_state():
    for f in sorted((ROOT / "engine" / "actions").glob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        names = {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in names if m.split(".")[-1] in ("session", "contextvars")}, f.name
    text = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "engine").rglob("*.py"))
    assert "current_settings" not in text and "ContextVar(\"damselfly_settings\"" not in text


@pytest.mark.parametrize("spec", all_actions(), ids=lambda s: s.name)
def test_every_action_called_outside_a_session_needs_no_hidden_default(spec):
    writes = any(p.path_kind == "output" for p in spec.params)
    runs_networks = spec.name in ("train", "infer", "infer_probabilities")
    if writes or runs_networks:
        assert spec.context_param == "ctx", f"{spec.name} writes files or runs networks: it needs ctx"
    if spec.context_param:
        param = inspect.signature(spec.func).parameters["ctx"]
        assert param.kind is param.KEYWORD_ONLY and param.default is param.empty
        assert "ctx" not in [p.name for p in spec.params]  # hidden from the macro signature
        with pytest.raises(TypeError, match="ctx"):  # a clear error, never a default device or folder
            spec.func(*[None] * sum(p.required for p in spec.params))


def test_the_session_hands_its_settings_over(tmp_path):
    vol = Volume(np.ones((2, 4, 4), np.float32))
    s = Session(Settings(device="cpu", out_dir=tmp_path, overwrite=False))
    assert s.context().device == "cpu" and s.context().out_dir == tmp_path.resolve()
    s.run("save", vol, "a.tif")
    with pytest.raises(InputError, match="overwriting is off"):
        s.run("save", vol, "a.tif")
    # the same action, called as a plain function with its context
    save(vol, str(tmp_path / "b.tif"), ctx=RunContext(overwrite=False))
    with pytest.raises(InputError, match="overwriting is off"):
        save(vol, str(tmp_path / "b.tif"), ctx=RunContext(overwrite=False))
    save(vol, str(tmp_path / "b.tif"), ctx=RunContext(overwrite=True))


def _samples(tmp_path):
    """Arguments for calling each action that needs no run context, outside any session."""
    from damselfly.engine import Labels, make_classes
    from damselfly.engine.core import phantoms
    from damselfly.engine.io import _files as io
    from damselfly.engine.segmentation import _nets as nets
    from damselfly.engine.segmentation._model import Model, save_model

    vol, truth = phantoms.casting((8, 24, 24), seed=0)
    io.write_volume(vol, tmp_path / "v.tif")
    io.write_volume(truth, tmp_path / "l.tif")
    doc = {"arch": "unet", "hparams": {"base": 4, "levels": 2}, "input": "2d", "context": 1,
           "inputs": [{"name": "v", "low": 0.0, "high": 1.0}],
           "classes": [{"name": n, "color": [1, 2, 3, 255]} for n in truth.class_names],
           "history": {"epoch": [1], "loss": [0.5]}}
    model = Model(doc, nets.build("unet", 1, len(truth.classes), doc["hparams"]).state_dict())
    save_model(model, tmp_path / "m.dfmodel")
    mask = Labels(np.asarray(truth.data), classes=make_classes(truth.class_names))
    from damselfly.engine.actions.objects import label_objects

    pores = label_objects(truth, "pore")
    compared = Model(dict(doc, comparison={"holdout": 3, "columns": {"method": ["forest"], "chosen": [True]}}),
                     model.state)
    return {
        "load": (str(tmp_path / "v.tif"),), "load_labels": (str(tmp_path / "l.tif"),),
        "load_model": (str(tmp_path / "m.dfmodel"),), "calibrate": (vol,), "crop": (vol, [0, 0, 0, 4, 8, 8]),
        "threshold": (vol,), "evaluate": (truth, truth), "local_thickness": (mask, "metal"),
        "thickness_stats": (vol.with_data(np.ones(vol.shape, np.float32)),), "training_history": (model,),
        "sparse_labels": (truth, [1, 3]), "merge_classes": (truth, "solid"), "comparison": (compared,),
        "interpolate_labels": (vol, truth.with_data(np.asarray(truth.data) * np.isin(np.arange(8), [1, 5])[:, None, None])),
        "label_objects": (truth, "pore"), "separate_objects": (pores,), "measure_objects": (pores, vol),
        "class_fractions": (truth,), "filter_objects": (pores,),
        "morphology": (truth, "open", "pore"),
        "unsharp_mask": (vol,),  # the example plugin (examples/plugin), installed by the test command
    }


def test_every_action_without_a_context_works_as_a_plain_function(tmp_path):
    samples = _samples(tmp_path)
    plain = {s.name for s in all_actions() if not s.context_param}
    assert plain == set(samples), "add sample arguments for the new action"
    for spec in all_actions():
        if spec.name in samples:
            result = spec.func(*samples[spec.name])
            assert spec.return_class() is None or isinstance(result, spec.return_class()), spec.name
