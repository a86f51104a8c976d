import numpy as np
import pytest

from damselfly.engine.core import phantoms


@pytest.fixture(scope="session")
def casting_small():
    """A small casting phantom (volume, truth), generated once."""
    return phantoms.casting((40, 48, 48), seed=3)


@pytest.fixture(scope="session")
def casting_scans(casting_small):
    """The small phantom four ways: as it is, as uint16 grey values, mirrored (a second input), and its
    truth painted on three slices."""
    from damselfly.engine.actions.segmentation import sparse_labels

    vol, truth = casting_small  # (40, 48, 48)
    lab = sparse_labels(truth, slices=[8, 20, 31])
    raw = vol.with_data((np.clip(np.asarray(vol.data), 0, None) * 4000).astype(np.uint16), name="raw")
    second = vol.with_data(np.asarray(vol.data)[:, ::-1].copy(), name="flipped")
    return vol, raw, second, lab


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(autouse=True, scope="session")
def _private_config(tmp_path_factory):
    """The app's preferences (recent files, theme) go to a temporary folder, not the user's."""
    import os

    os.environ["DAMSELFLY_CONFIG_DIR"] = str(tmp_path_factory.mktemp("config"))
