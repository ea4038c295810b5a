"""Drum kit: kick, snare and hi-hat/ride synthesised from pitched decays and filtered noise."""
from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

from clmr_lib.data.synth.oscillators import overlap_add

DRUMS = ("kick", "snare", "hat")
# Length of each hit sound (s): long enough for its decay to reach about -60 dB.
_LENGTH = {"kick": 0.6, "snare": 0.5, "hat": 0.4, "ride": 1.2}


def draw_kit(rng: np.random.Generator, style: str) -> dict:
    """Per-piece drum kit parameters for a kit ``style`` (``acoustic``, ``electronic`` or ``jazz``)."""
    return {
        "style": style,
        "kick_hz": float(rng.uniform(42, 62)),
        "kick_sweep": float(rng.uniform(2.0, 4.5 if style == "electronic" else 3.0)),
        "kick_decay": float(rng.uniform(0.25, 0.5) if style == "electronic" else rng.uniform(0.12, 0.3)),
        "snare_hz": float(rng.uniform(160, 240)),
        "snare_decay": float(rng.uniform(0.08, 0.2)),
        "snare_tone": float(rng.uniform(0.2, 0.6)),
        "hat_decay": float(rng.uniform(0.02, 0.07)),
        "hat_cutoff": float(rng.uniform(5000, 8000)),
    }


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def _filter(x: np.ndarray, kind: str, cutoff, sample_rate: int) -> np.ndarray:
    """Second-order lowpass, highpass or bandpass (Bristow-Johnson's cookbook biquads), with
    cut-offs clipped below Nyquist so that low test sample rates work too."""
    nyquist = sample_rate / 2
    if kind == "bandpass":
        low, high = np.clip(cutoff, 20.0, 0.9 * nyquist)
        if high < low * 1.2:
            kind, cutoff = "highpass", low
        else:
            centre = np.sqrt(low * high)
            w0, q = 2 * np.pi * centre / sample_rate, centre / (high - low)
    if kind != "bandpass":
        w0, q = 2 * np.pi * float(np.clip(cutoff, 20.0, 0.9 * nyquist)) / sample_rate, np.sqrt(0.5)
    cos, alpha = np.cos(w0), np.sin(w0) / (2 * q)
    b = {"lowpass": [(1 - cos) / 2, 1 - cos, (1 - cos) / 2], "highpass": [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2],
         "bandpass": [alpha, 0.0, -alpha]}[kind]
    a = [1 + alpha, -2 * cos, 1 - alpha]
    return lfilter(np.array(b) / a[0], np.array(a) / a[0], x)


def hit(kind: str, kit: dict, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One drum hit of ``kind`` (peak about 1) from the kit's parameters."""
    length = _LENGTH["ride" if kind == "hat" and kit["style"] == "jazz" else kind]
    t = np.arange(int(length * sample_rate)) / sample_rate
    if kind == "kick":
        freq = kit["kick_hz"] * (1.0 + kit["kick_sweep"] * np.exp(-t / 0.035))
        body = np.sin(2 * np.pi * np.cumsum(freq) / sample_rate) * np.exp(-t / kit["kick_decay"])
        click = _filter(_noise(rng, len(t)), "highpass", 1500, sample_rate) * np.exp(-t / 0.003) * 0.4
        return body + click
    if kind == "snare":
        if kit["style"] == "jazz":
            brush = _filter(_noise(rng, len(t)), "bandpass", (800, 5000), sample_rate)
            return 0.5 * brush * np.minimum(t / 0.012, 1.0) * np.exp(-t / 0.18)
        tone = (np.sin(2 * np.pi * kit["snare_hz"] * t) + 0.5 * np.sin(2 * np.pi * 1.6 * kit["snare_hz"] * t))
        rattle = _filter(_noise(rng, len(t)), "bandpass", (1200, 7000), sample_rate)
        return (kit["snare_tone"] * tone * np.exp(-t / 0.06) + 0.8 * rattle * np.exp(-t / kit["snare_decay"]))
    hiss = _filter(_noise(rng, len(t)), "highpass", kit["hat_cutoff"] * 0.8, sample_rate)
    if kit["style"] == "jazz":
        # A ride cymbal: longer hiss plus inharmonic partials kept below Nyquist.
        partials = np.array([3170.0, 4730.0, 5890.0])
        partials = partials[partials < 0.45 * sample_rate]
        ring = np.sin(2 * np.pi * partials[:, None] * t[None, :]).sum(axis=0) * 0.15
        return (0.4 * hiss + ring) * np.exp(-t / 0.2)
    return 0.7 * hiss * np.exp(-t / kit["hat_decay"])


def render_drums(hits: dict, kit: dict, total: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Render drum hits into a mono stem of ``total`` samples.

    Each drum kind gets two slightly different hit sounds, assigned to hits at random and added
    at their onsets scaled by their velocities.

    Args:
        hits: ``kind -> (onsets in samples, velocities)``.
        kit: Parameters from :func:`draw_kit`.
        total: Stem length in samples.
        sample_rate: Sample rate in Hz.
        rng: The piece's random generator.

    Returns:
        float32 stem.
    """
    out = np.zeros(total)
    for kind in DRUMS:
        onsets, velocity = hits.get(kind, (np.zeros(0, dtype=np.int64), np.zeros(0)))
        keep = (onsets > -_LENGTH["ride"] * sample_rate) & (onsets < total)
        onsets, velocity = onsets[keep], velocity[keep]
        variant = rng.integers(2, size=len(onsets))
        for v in range(2):
            chosen = variant == v
            if not chosen.any():
                continue
            sound = hit(kind, kit, sample_rate, rng)
            overlap_add(out, velocity[chosen, None] * sound[None, :], onsets[chosen],
                        np.full(chosen.sum(), len(sound)))
    return out.astype(np.float32)
