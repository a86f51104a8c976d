import numpy as np
import pytest

from damselfly.engine.core import phantoms


@pytest.fixture(scope="session")
def casting_small():
    """A small casting phantom (volume, truth), generated once."""
    return phantoms.casting((40, 48, 48), seed=3)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _private_config(tmp_path_factory):
    """The app's preferences (recent files, theme) go to a temporary folder, not the user's."""
    import os

    os.environ["DAMSELFLY_CONFIG_DIR"] = str(tmp_path_factory.mktemp("config"))
