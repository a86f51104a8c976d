import threading
from typing import Literal

import numpy as np
import pytest

from damselfly.engine import Cancelled, ParameterError, Session, Settings, Volume
from damselfly.engine.builtin import BUILTIN, get_action
from damselfly.engine.core import progress
from damselfly.engine.registry import StaticObject, action


@pytest.fixture
def toy_action():
    @action("toy_scale", result="scaled")
    def toy_scale(volume: Volume, factor: float = 2.0, mode: Literal["mul", "add"] = "mul",
                  class_: str = "x") -> Volume:
        """Scale a volume.

        Parameters
        ----------
        volume : Volume
            Input.
        factor : float
            How much.
        """
        task = progress.task("scaling", total=volume.shape[0])
        out = np.empty(volume.data.shape, np.float32)
        for z in range(volume.shape[0]):
            out[z] = volume.data[z] * factor if mode == "mul" else volume.data[z] + factor
            task.advance()
        return volume.with_data(out)

    yield BUILTIN.register(toy_scale)
    BUILTIN.unregister("toy_scale")


def test_spec_reads_signature_types_defaults_choices_and_docs(toy_action):
    spec = toy_action
    assert [p.name for p in spec.params] == ["volume", "factor", "mode", "class"]
    assert spec.param("class").pyname == "class_"
    assert spec.param("mode").choices == ["mul", "add"]
    assert spec.param("factor").default == 2.0 and spec.param("factor").doc == "How much."
    assert spec.signature() == ('toy_scale(volume: Volume, factor: float = 2.0, mode: "mul" | "add" = "mul", '
                                'class: str = "x") -> Volume')
    assert spec.return_class() is Volume
    spec.check_value("factor", 3)  # ints are fine where floats are expected
    with pytest.raises(ParameterError, match=r"mode='mull' is not one of 'mul', 'add'; did you mean 'mul'\?"):
        spec.check_value("mode", "mull")
    with pytest.raises(ParameterError, match="volume expects Volume, got Table"):
        from damselfly.engine import Table
        spec.check_value("volume", StaticObject(Table))


def test_unknown_action_suggests_the_nearest():
    with pytest.raises(ParameterError, match=r"unknown action 'calibrat'; did you mean 'calibrate'\?"):
        get_action("calibrat")


def test_crop_returns_the_type_it_was_given():
    from damselfly.engine import Labels

    assert get_action("crop").return_class({"volume": Labels}) is Labels


def test_session_runs_binds_and_emits_events(toy_action):
    s = Session()
    events = []
    s.subscribe(events.append)
    v = Volume(np.ones((3, 4, 4)))
    s.add("raw", v)
    out = s.run("toy_scale", v, factor=3, **{"class": "y"})
    assert s.objects["scaled"] is out and np.all(out.data == 3)
    ev = events[-1]
    assert ev.action == "toy_scale" and ev.target == "scaled"
    assert ev.args == {"volume": v, "factor": 3, "class": "y"} and ev.arg_names == {"volume": "raw"}
    s.run("toy_scale", v)
    assert "scaled2" in s.objects
    with pytest.raises(ParameterError, match="no parameter 'factr'; did you mean 'factor'"):
        s.run("toy_scale", v, factr=2)
    with pytest.raises(ParameterError, match="missing required"):
        s.run("toy_scale")


def test_progress_reports_and_stop_cancels(toy_action):
    seen = []
    rep = progress.Reporter(seen.append, interval=0)
    s = Session(reporter=rep)
    s.run("toy_scale", Volume(np.ones((5, 2, 2))))
    assert seen[0].done == 0 and seen[-1].done == 5 and seen[-1].total == 5

    def cancel_on_third(ev):
        if ev.done == 3:
            rep.cancel()

    rep.callback = cancel_on_third
    with pytest.raises(Cancelled):
        s.run("toy_scale", Volume(np.ones((10, 2, 2))), target="never")
    assert "never" not in s.objects


def test_cancel_from_another_thread():
    rep = progress.Reporter()
    started = threading.Event()

    def work():
        with progress.reporting(rep):
            t = progress.task("spin", total=None)
            started.set()
            while True:
                t.advance()

    errors = []

    def run():
        try:
            work()
        except Cancelled as e:
            errors.append(e)

    th = threading.Thread(target=run)
    th.start()
    started.wait(5)
    rep.cancel()
    th.join(5)
    assert not th.is_alive() and errors


def test_settings_validate_device():
    with pytest.raises(ParameterError, match="device"):
        Settings(device="gpu")


def test_threads_setting_reaches_torch(toy_action):
    """Set from a count torch does not already use, so the test fails if the setting is ignored."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        Session(Settings(threads=1)).run("toy_scale", Volume(np.ones((2, 2, 2))))
        assert torch.get_num_threads() == 1
        Session(Settings(threads=2)).run("toy_scale", Volume(np.ones((2, 2, 2))))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("spec", __import__("damselfly.engine").engine.all_actions(), ids=lambda s: s.name)
def test_every_action_is_typed_and_documented(spec):
    """The registry contract: a typed function with a numpydoc docstring documenting every parameter."""
    import typing

    assert spec.summary, f"{spec.name} has no docstring summary"
    for p in spec.params:
        assert p.annotation is not typing.Any, f"{spec.name}({p.name}) has no type hint"
        assert p.doc, f"{spec.name}({p.name}) is not documented in the Parameters section"
