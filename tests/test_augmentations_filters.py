"""Tests of HighLowPass."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio.functional as AF

from clmr_lib.augmentations import HighLowPass

SR = 22050


def sines(freqs, seconds=1.0):
    t = torch.arange(int(SR * seconds)) / SR
    return torch.stack([torch.sin(2 * math.pi * f * t) for f in freqs])


def steady_gain_db(y, x):
    """Output/input RMS ratio over the middle half (away from edge transients), in dB."""
    n = x.shape[-1]
    mid = slice(n // 4, 3 * n // 4)
    return 20 * torch.log10(y[..., mid].pow(2).mean(-1).sqrt() / x[..., mid].pow(2).mean(-1).sqrt())


def filter_params(lowpass, cutoff, n):
    return {"lowpass": torch.full((n,), lowpass), "cutoff_hz": torch.full((n,), float(cutoff))}


def test_stop_band_attenuated_pass_band_kept():
    x = sines([100.0, 5000.0])
    high = steady_gain_db(HighLowPass(SR).apply(x, filter_params(False, 1000.0, 2)), x)
    assert high[0] < -20 and abs(high[1]) < 0.5
    x = sines([300.0, 8000.0])
    low = steady_gain_db(HighLowPass(SR).apply(x, filter_params(True, 2200.0, 2)), x)
    assert abs(low[0]) < 0.5 and low[1] < -20


def test_minus_3_db_at_cutoff():
    params = {"lowpass": torch.tensor([True, False]), "cutoff_hz": torch.tensor([3000.0, 500.0])}
    gains = HighLowPass(SR).response(SR, params)  # 1 Hz bins
    torch.testing.assert_close(gains[0, 3000], torch.tensor(2 ** -0.5))
    torch.testing.assert_close(gains[1, 500], torch.tensor(2 ** -0.5))
    assert gains[0, 0] == 1.0 and gains[1, 0] == 0.0 and gains[0, -1] == 0.0 and gains[1, -1] == 1.0


@pytest.mark.parametrize("lowpass, cutoff", [(True, 2500.0), (False, 800.0)])
def test_magnitude_matches_torchaudio_biquad(lowpass, cutoff):
    freqs = [100.0, 400.0, 800.0, 1600.0, 2500.0, 4000.0, 7000.0]
    x = sines(freqs)
    ours = HighLowPass(SR, order=2).apply(x, filter_params(lowpass, cutoff, len(freqs)))
    biquad = AF.lowpass_biquad if lowpass else AF.highpass_biquad
    theirs = biquad(x, SR, cutoff, Q=1 / math.sqrt(2))
    ours_db, theirs_db = steady_gain_db(ours, x), steady_gain_db(theirs, x)
    audible = theirs_db > -60  # below that, the measurement is round-off
    torch.testing.assert_close(ours_db[audible], theirs_db[audible], atol=0.1, rtol=0)


@pytest.mark.parametrize("lowpass, cutoff", [(True, 3000.0), (False, 600.0)])
def test_magnitude_matches_audiomentations_24_db_per_octave(lowpass, cutoff):
    import audiomentations

    freqs = [150.0, 300.0, 600.0, 1200.0, 3000.0, 6000.0, 9000.0]
    x = sines(freqs)
    ours = HighLowPass(SR, order=4).apply(x, filter_params(lowpass, cutoff, len(freqs)))
    cls = audiomentations.LowPassFilter if lowpass else audiomentations.HighPassFilter
    theirs_filter = cls(min_cutoff_freq=cutoff, max_cutoff_freq=cutoff, min_rolloff=24,
                        max_rolloff=24, zero_phase=False, p=1.0)
    theirs = torch.from_numpy(np.stack([theirs_filter(row.numpy(), sample_rate=SR) for row in x]))
    ours_db, theirs_db = steady_gain_db(ours, x), steady_gain_db(theirs, x)
    audible = theirs_db > -60
    torch.testing.assert_close(ours_db[audible], theirs_db[audible], atol=0.2, rtol=0)


def test_zero_phase_in_pass_band():
    x = sines([5000.0])
    y = HighLowPass(SR).apply(x, filter_params(False, 300.0, 1))
    mid = slice(SR // 4, 3 * SR // 4)
    torch.testing.assert_close(y[:, mid], x[:, mid], atol=1e-3, rtol=0)


def test_draws_both_kinds_within_their_ranges():
    params = HighLowPass(SR, generator=torch.Generator().manual_seed(0)).sample_params(
        2000, torch.device("cpu"))
    low, cutoff = params["lowpass"], params["cutoff_hz"]
    assert abs(low.float().mean().item() - 0.5) < 0.05
    assert cutoff[low].min() >= 2200 and cutoff[low].max() <= 4000
    assert cutoff[~low].min() >= 200 and cutoff[~low].max() <= 1200


@pytest.mark.parametrize("kwargs, match", [
    ({"min_highpass_hz": 1200.0, "max_highpass_hz": 200.0}, "min_highpass_hz"),
    ({"min_lowpass_hz": 0.0}, "min_lowpass_hz"),
    ({"max_lowpass_hz": 11025.0}, "Nyquist"),
    ({"order": 0}, "order"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        HighLowPass(SR, **kwargs)
