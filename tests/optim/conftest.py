"""Fixtures of the optimizer tests."""

import numpy as np
import pytest


@pytest.fixture
def random_grads() -> np.ndarray:
    """100 steps of standard-normal float32 gradients of a (4, 3) parameter."""
    return np.random.default_rng(0).standard_normal((100, 4, 3)).astype(np.float32)
