"""Tests of PolarityInversion."""
from __future__ import annotations

import torch

from clmr_lib.augmentations import PolarityInversion


def test_negates_literal_samples():
    x = torch.tensor([[1.0, -0.5, 0.25, 0.0], [0.1, 0.2, -0.3, 0.4]])
    expected = torch.tensor([[-1.0, 0.5, -0.25, 0.0], [-0.1, -0.2, 0.3, -0.4]])
    assert torch.equal(PolarityInversion(p=1.0)(x), expected)
    assert torch.equal(PolarityInversion().apply(x, {}), expected)


def test_default_probability_is_clmr():
    assert PolarityInversion().p == 0.8
