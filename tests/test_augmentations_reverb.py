"""Tests of Reverb."""
from __future__ import annotations

import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from clmr_lib.augmentations import Reverb
from clmr_lib.augmentations.reverb import ALLPASS_LENGTHS, COMB_LENGTHS, sox_feedback

SR = 16000


def freeverb_wet(x, reverberance, damping, room_size, sample_rate=SR):
    """Sample-by-sample freeverb with sox's parameter mapping (mono, no pre-delay)."""
    a = -1 / math.log(1 - 0.3)  # sox 14.4.2: feedback 0.3 at 0 %, 0.98 at 100 %
    b = 100 / (math.log(1 - 0.98) * a + 1)
    feedback = 1 - math.exp((reverberance - b) / (a * b))
    lowpass = 0.2 + 0.3 * damping / 100
    scale = 0.1 + 0.9 * room_size / 100
    ratio = sample_rate / 44100
    combs = [np.zeros(int(scale * ratio * n + 0.5)) for n in COMB_LENGTHS]
    allpasses = [np.zeros(int(ratio * n + 0.5)) for n in ALLPASS_LENGTHS]
    stores = [0.0] * len(combs)
    wet = np.zeros(len(x))
    for t, sample in enumerate(x):
        total = 0.0
        for i, line in enumerate(combs):
            delayed = line[t % line.size]
            stores[i] = delayed + (stores[i] - delayed) * lowpass
            line[t % line.size] = sample + stores[i] * feedback
            total += delayed
        for line in allpasses:
            delayed = line[t % line.size]
            line[t % line.size] = total + 0.5 * delayed
            total = delayed - total
        wet[t] = 0.015 * total
    return wet


def params(reverberance, damping, room_size):
    as_tensor = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    return {"reverberance": as_tensor(reverberance), "damping": as_tensor(damping),
            "room_size": as_tensor(room_size)}


def impulse(n=SR * 2, rows=1):
    x = torch.zeros(rows, n)
    x[:, 0] = 1.0
    return x


def test_sox_parameter_mapping():
    torch.testing.assert_close(sox_feedback(torch.tensor([0.0, 100.0])), torch.tensor([0.3, 0.98]))


@pytest.mark.parametrize("setting", [(0.0, 0.0, 100.0), (50.0, 50.0, 30.0), (100.0, 100.0, 100.0),
                                     (80.0, 20.0, 0.0)])
def test_matches_sample_by_sample_freeverb(setting):
    x = torch.randn(1, 4000, generator=torch.Generator().manual_seed(0)) * 0.1
    y = Reverb(SR).apply(x, params(*[[v] for v in setting]))
    expected = freeverb_wet(x[0].double().numpy(), *setting)
    error = (y[0] - x[0]).double().numpy() - expected
    assert np.sqrt(np.mean(error ** 2)) < 10 ** (-40 / 20) * np.sqrt(np.mean(expected ** 2))


def test_dry_signal_kept_until_first_echo():
    x = torch.randn(2, SR, generator=torch.Generator().manual_seed(1)) * 0.1
    y = Reverb(SR).apply(x, params([0.0, 100.0], [50.0, 50.0], [0.0, 100.0]))
    first_echo = int(0.1 * SR / 44100 * COMB_LENGTHS[0] + 0.5)  # shortest comb, smallest room
    head_error = (y[:, :first_echo] - x[:, :first_echo]).pow(2).mean(dim=1).sqrt()
    wet_level = (y - x).pow(2).mean(dim=1).sqrt()
    # Exactly zero in exact arithmetic; the FFT evaluation leaves about -50 dB of the wet level.
    assert (head_error < 10 ** (-40 / 20) * wet_level).all()


def tail_energy(y, start_s=0.3, end_s=1.0):
    return y[:, int(start_s * SR):int(end_s * SR)].pow(2).sum(dim=1)


def test_more_reverberance_longer_tail():
    y = Reverb(SR).apply(impulse(rows=3), params([0.0, 50.0, 100.0], [50.0] * 3, [100.0] * 3))
    energy = tail_energy(y)
    assert energy[0] < energy[1] < energy[2]
    assert energy[2] > 100 * energy[0]


def test_larger_room_longer_tail():
    y = Reverb(SR).apply(impulse(rows=3), params([70.0] * 3, [50.0] * 3, [0.0, 50.0, 100.0]))
    energy = tail_energy(y)
    assert energy[0] < energy[1] < energy[2]


def test_damping_removes_high_frequencies_from_the_tail():
    y = Reverb(SR).apply(impulse(rows=2), params([80.0] * 2, [0.0, 100.0], [100.0] * 2))
    tail = y[:, int(0.3 * SR):int(1.0 * SR)]
    spectrum = torch.fft.rfft(tail).abs().pow(2)
    freqs = torch.fft.rfftfreq(tail.shape[-1], 1 / SR)
    high_share = spectrum[:, freqs > 3000].sum(dim=1) / spectrum.sum(dim=1)
    assert high_share[1] < 0.3 * high_share[0]


@pytest.mark.skipif(shutil.which("sox") is None, reason="needs the sox command")
@pytest.mark.parametrize("setting", [(0, 0, 100), (50, 50, 50), (100, 100, 100), (80, 20, 0)])
def test_matches_the_sox_command(setting, tmp_path):
    import soundfile

    x = (np.random.default_rng(0).standard_normal(SR) * 0.1).astype(np.float32)
    soundfile.write(tmp_path / "in.wav", x, SR, subtype="FLOAT")
    # Stereo depth 0: one network, mono output.
    subprocess.run(["sox", str(tmp_path / "in.wav"), "-e", "floating-point",
                    str(tmp_path / "out.wav"), "reverb", *map(str, setting), "0"],
                   check=True, capture_output=True)
    theirs, _ = soundfile.read(tmp_path / "out.wav", dtype="float32")
    ours = Reverb(SR).apply(torch.from_numpy(x)[None], params(*[[float(v)] for v in setting]))[0]
    wet = theirs - x
    error = ours.numpy() - theirs
    assert np.sqrt(np.mean(error ** 2)) < 10 ** (-40 / 20) * np.sqrt(np.mean(wet ** 2))


def test_draws_parameters_in_range():
    drawn = Reverb(SR, generator=torch.Generator().manual_seed(0)).sample_params(
        500, torch.device("cpu"))
    for name in ("reverberance", "damping", "room_size"):
        assert drawn[name].min() >= 0 and drawn[name].max() <= 100 and drawn[name].std() > 20


@pytest.mark.parametrize("kwargs, match", [
    ({"min_reverberance": 60.0, "max_reverberance": 40.0}, "min_reverberance"),
    ({"max_damping": 101.0}, "max_damping"),
    ({"min_room_size": -1.0}, "min_room_size"),
])
def test_invalid_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Reverb(SR, **kwargs)
