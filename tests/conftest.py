import numpy as np
import pytest

from damselfly.engine import phantoms


@pytest.fixture(scope="session")
def casting_small():
    """A small casting phantom (volume, truth), generated once."""
    return phantoms.casting((40, 48, 48), seed=3)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
