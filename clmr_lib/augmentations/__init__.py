"""Batched CLMR audio augmentations: (batch, samples) -> (batch, samples), per-example random."""
from __future__ import annotations

from .base import BatchAugmentation
from .compose import Compose
from .delay import Delay
from .filters import HighLowPass
from .gain import Gain
from .noise import Noise
from .pitch_shift import PitchShift
from .polarity import PolarityInversion
from .reverb import Reverb

__all__ = [
    "BatchAugmentation",
    "Compose",
    "Delay",
    "Gain",
    "HighLowPass",
    "Noise",
    "PitchShift",
    "PolarityInversion",
    "Reverb",
    "build_augmentations",
]


def lowpass_range(sample_rate: int) -> dict:
    """CLMR's low-pass cutoffs (2.2-4 kHz), lowered proportionally where they reach the Nyquist frequency.

    CLMR's range assumes 22,050 Hz; at 8 kHz a 4 kHz low-pass would be no filter at all, so the
    range is scaled to keep the same position relative to Nyquist (4000 / 11025 of it).
    """
    nyquist = sample_rate / 2
    scale = min(1.0, 0.9 * nyquist / 4000.0)
    return {"min_lowpass_hz": 2200.0 * scale, "max_lowpass_hz": 4000.0 * scale}


def build_augmentations(sample_rate: int, polarity: float = 0.8, noise: float = 0.01,
                        gain: float = 0.3, filters: float = 0.8, delay: float = 0.3,
                        pitch: float = 0.6, reverb: float = 0.6) -> Compose:
    """CLMR's augmentation chain (after the random crop), with each transform's probability.

    Order as in CLMR: polarity inversion, noise, gain, high/low-pass filter, delay, pitch
    shift, reverb; the defaults are CLMR's probabilities (Spijkervet & Burgoyne, 2021,
    "Contrastive Learning of Musical Representations"). A probability of 0 leaves that
    transform out of the chain.

    Args:
        sample_rate: Sample rate of the clips in Hz.
        polarity: Probability of polarity inversion.
        noise: Probability of additive Gaussian noise.
        gain: Probability of a random gain.
        filters: Probability of a random high- or low-pass filter.
        delay: Probability of a delayed copy.
        pitch: Probability of a pitch shift.
        reverb: Probability of reverb.

    Returns:
        The chain, an ``nn.Module`` taking ``(batch, samples)`` or ``(batch, 1, samples)``.
    """
    factories = [
        (polarity, lambda p: PolarityInversion(p=p)),
        (noise, lambda p: Noise(p=p)),
        (gain, lambda p: Gain(p=p)),
        (filters, lambda p: HighLowPass(sample_rate, p=p, **lowpass_range(sample_rate))),
        (delay, lambda p: Delay(sample_rate, p=p)),
        (pitch, lambda p: PitchShift(sample_rate, p=p)),
        (reverb, lambda p: Reverb(sample_rate, p=p)),
    ]
    return Compose(make(p) for p, make in factories if p > 0)
