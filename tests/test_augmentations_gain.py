"""Tests of Gain."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clmr_lib.augmentations import Gain


def test_fixed_gain_on_literal_samples():
    x = torch.tensor([[1.0, 0.5, -0.25, 0.0, -1.0]])
    y = Gain(min_gain_db=-6.0, max_gain_db=-6.0, p=1.0)(x)
    expected = np.array([[1.0, 0.5, -0.25, 0.0, -1.0]]) * 10 ** (-6.0 / 20)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-6)


def test_apply_uses_each_examples_gain():
    x = torch.ones(3, 4)
    y = Gain().apply(x, {"gain_db": torch.tensor([0.0, -20.0, 6.0])})
    np.testing.assert_allclose(y[:, 0].numpy(), [1.0, 0.1, 10 ** 0.3], rtol=1e-6)


def test_gains_drawn_in_range():
    params = Gain(p=1.0, generator=torch.Generator().manual_seed(0)).sample_params(
        1000, torch.device("cpu"))
    assert params["gain_db"].min() >= -20.0 and params["gain_db"].max() <= -1.0
    assert params["gain_db"].std() > 4.0


def test_not_clamped():
    y = Gain(min_gain_db=6.0, max_gain_db=6.0, p=1.0)(torch.ones(1, 3))
    assert y.max() > 1.9


def test_min_greater_than_max_raises():
    with pytest.raises(ValueError, match="min_gain_db"):
        Gain(min_gain_db=-1.0, max_gain_db=-20.0)
