"""Tests of Noise."""
from __future__ import annotations

import math

import pytest
import torch

from clmr_lib.augmentations import Noise


def test_apply_scales_noise_by_clip_std():
    x = torch.tensor([[1.0, -1.0, 1.0, -1.0], [0.0, 0.0, 2.0, 2.0]])
    noise = torch.tensor([[1.0, 0.0, 0.0, -2.0], [0.5, 0.5, 0.5, 0.5]])
    y = Noise().apply(x, {"relative_std": torch.tensor([0.5, 0.1]), "noise": noise})
    std = [math.sqrt(4 / 3), math.sqrt(4 / 3)]  # sample std (Bessel-corrected)
    expected = x + torch.tensor([[0.5 * std[0]], [0.1 * std[1]]]) * noise
    torch.testing.assert_close(y, expected)


def test_noise_level_relative_to_signal():
    x = torch.randn(4, 50_000, generator=torch.Generator().manual_seed(0)) * torch.tensor(
        [[0.01], [0.1], [1.0], [3.0]])
    y = Noise(min_relative_std=0.01, max_relative_std=0.01, p=1.0)(x)
    ratio = (y - x).std(dim=1) / x.std(dim=1)
    torch.testing.assert_close(ratio, torch.full((4,), 0.01), rtol=0.03, atol=0)


def test_clmr_defaults():
    noise = Noise()
    assert (noise.min_relative_std, noise.max_relative_std, noise.p) == (0.0001, 0.01, 0.01)


@pytest.mark.parametrize("low, high", [(0.1, 0.01), (-0.1, 0.1)])
def test_invalid_range_raises(low, high):
    with pytest.raises(ValueError, match="relative_std"):
        Noise(min_relative_std=low, max_relative_std=high)
