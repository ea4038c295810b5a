"""Tests of Delay."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from clmr_lib.augmentations import Delay


def test_impulse_response_is_exact():
    x = torch.zeros(1, 1000)
    x[0, 0] = 1.0
    y = Delay(1000, min_delay_ms=200, max_delay_ms=200, p=1.0)(x)
    expected = torch.zeros(1, 1000)
    expected[0, 0] = 0.5  # (x + 0.5 x[n - d]) / 2
    expected[0, 200] = 0.25
    assert torch.equal(y, expected)


def test_matches_torchaudio_augmentations_mixing_per_example():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 500)).astype(np.float32)
    delays = [7, 100, 499]
    y = Delay(1000).apply(torch.from_numpy(x), {"delay_samples": torch.tensor(delays)})
    for row, d in zip(range(3), delays):
        delayed = np.concatenate([np.zeros(d, np.float32), x[row, :-d]])
        np.testing.assert_allclose(y[row].numpy(), (x[row] + 0.5 * delayed) / 2, rtol=1e-6)


def test_clmr_delay_grid():
    delay = Delay(22050)
    assert delay.delays_samples == [int(ms * 22050 / 1000) for ms in range(200, 500, 50)]
    params = Delay(22050, generator=torch.Generator().manual_seed(0)).sample_params(
        600, torch.device("cpu"))
    assert sorted(params["delay_samples"].unique().tolist()) == delay.delays_samples


def test_delay_longer_than_clip_keeps_clip_only():
    x = torch.ones(1, 50)
    y = Delay(1000).apply(x, {"delay_samples": torch.tensor([200])})
    assert torch.equal(y, torch.full((1, 50), 0.5))


@pytest.mark.parametrize("kwargs, match", [
    ({"min_delay_ms": 300, "max_delay_ms": 200}, "min_delay_ms"),
    ({"delay_step_ms": 0}, "delay_step_ms"),
    ({"volume": -1}, "volume"),
    ({"min_delay_ms": -10}, "min_delay_ms"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Delay(22050, **kwargs)
