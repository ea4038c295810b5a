"""Tests of PitchShift."""
from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from clmr_lib.augmentations import PitchShift

SR = 22050


def sine(freq, seconds=1.0, amplitude=0.5):
    t = torch.arange(int(SR * seconds)) / SR
    return amplitude * torch.sin(2 * math.pi * freq * t)


def dominant_hz(signal):
    signal = np.asarray(signal, dtype=np.float64)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    return np.argmax(spectrum) * SR / signal.size


@pytest.mark.parametrize("semitones", [12.0, -5.0, 7.0, -7.0])
def test_sine_moves_to_shifted_frequency_length_and_energy_kept(semitones):
    x = sine(440.0)[None]
    y = PitchShift(SR, min_semitones=semitones, max_semitones=semitones, p=1.0)(x)
    assert y.shape == x.shape
    expected = 440.0 * 2 ** (semitones / 12)
    assert dominant_hz(y[0]) == pytest.approx(expected, rel=0.02)
    energy_ratio = y.pow(2).mean() / x.pow(2).mean()
    assert 0.9 < energy_ratio < 1.1


def test_per_example_shifts_in_one_batch():
    x = sine(440.0)[None].repeat(3, 1)
    y = PitchShift(SR).apply(x, {"semitones": torch.tensor([12.0, 0.0, -5.0])})
    found = [dominant_hz(row) for row in y]
    assert found == pytest.approx([880.0, 440.0, 440.0 * 2 ** (-5 / 12)], rel=0.02)


def test_zero_shift_is_identity():
    x = torch.randn(2, SR, generator=torch.Generator().manual_seed(0)) * 0.1
    y = PitchShift(SR).apply(x, {"semitones": torch.zeros(2)})
    # Interpolation positions are float32 (about 1e-3 samples off on a one-second clip).
    torch.testing.assert_close(y, x, atol=2e-3, rtol=0)
    assert (y - x).pow(2).mean() < 1e-4 * x.pow(2).mean()


@pytest.mark.parametrize("semitones", [5.0, -3.0])
def test_agrees_with_audiomentations(semitones):
    import audiomentations

    x = (sine(330.0) + sine(495.0, amplitude=0.3)).numpy()
    ours = PitchShift(SR).apply(torch.from_numpy(x)[None], {"semitones": torch.tensor([semitones])})
    theirs = audiomentations.PitchShift(min_semitones=semitones, max_semitones=semitones,
                                        p=1.0)(x, sample_rate=SR)
    assert dominant_hz(ours[0]) == pytest.approx(dominant_hz(theirs), rel=0.02)


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs the sox command")
@pytest.mark.parametrize("cents", [500, -300])
def test_agrees_with_the_sox_command(cents, tmp_path):
    import soundfile

    x = (sine(330.0) + sine(495.0, amplitude=0.3)).numpy()
    soundfile.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    subprocess.run(["sox", str(tmp_path / "in.wav"), "-e", "floating-point",
                    str(tmp_path / "out.wav"), "pitch", str(cents)],
                   check=True, capture_output=True)
    theirs, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    ours = PitchShift(SR).apply(torch.from_numpy(x)[None],
                                {"semitones": torch.tensor([cents / 100])})
    assert dominant_hz(ours[0]) == pytest.approx(dominant_hz(theirs), rel=0.01)
    assert ours.pow(2).mean().item() == pytest.approx(float(np.mean(theirs ** 2)), rel=0.1)


def test_no_clicks_on_a_sine():
    x = sine(440.0)[None]
    y = PitchShift(SR).apply(x, {"semitones": torch.tensor([3.0])})[0].numpy()
    spectrum = np.abs(np.fft.rfft(y * np.hanning(y.size))) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / SR)
    near = np.abs(freqs - 440.0 * 2 ** 0.25) < 15
    assert spectrum[near].sum() / spectrum.sum() > 0.999


def test_draws_whole_cents_in_range():
    params = PitchShift(SR, generator=torch.Generator().manual_seed(0)).sample_params(
        1000, torch.device("cpu"))
    cents = params["semitones"] * 100
    torch.testing.assert_close(cents, cents.round())
    assert params["semitones"].min() >= -7 and params["semitones"].max() <= 7


@pytest.mark.parametrize("kwargs, match", [
    ({"min_semitones": 3.0, "max_semitones": -3.0}, "min_semitones"),
    ({"min_semitones": -30.0}, "min_semitones"),
    ({"max_semitones": 25.0}, "max_semitones"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PitchShift(SR, **kwargs)
