"""Instrument timbres: band-limited additive, FM and modal voices with per-note envelopes, and their tags."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.signal import lfilter

from clmr_lib.data.synth.oscillators import TWO_PI, Grid, additive, adsr

# Formant centre frequencies (Hz) of five vowels, after Peterson & Barney (1952).
VOWELS = np.array([[800, 1150, 2900], [400, 1700, 2600], [300, 2200, 3000], [450, 800, 2830], [330, 700, 2500]],
                  dtype=np.float64)
FORMANT_GAINS = np.array([1.0, 0.5, 0.3])
FORMANT_WIDTHS = np.array([90.0, 110.0, 160.0])


# Aliasing is avoided by construction: additive partials stop below MAX_PARTIAL_HZ (and 45 % of the
# sample rate) and FM indices are capped by Carson's rule, so every voice is band-limited.


def _normalised(amps: np.ndarray) -> np.ndarray:
    """Scale harmonic amplitudes to unit energy so that bright and dull notes mix alike."""
    amps = np.asarray(amps, dtype=np.float64)
    return (amps / np.sqrt((amps ** 2).sum(axis=-1, keepdims=True) + 1e-12)).astype(np.float32)


def _lowpass(grid: Grid, k: np.ndarray, cutoff, order: int = 2) -> np.ndarray:
    """Magnitude of a Butterworth-like lowpass at harmonics ``k`` of each note, ``(n, K)``."""
    return 1.0 / np.sqrt(1.0 + (k[None, :] * grid.freq / cutoff) ** (2 * order))


def organ(grid: Grid, tb: dict) -> np.ndarray:
    """Drawbar organ: harmonics of the sub-octave, steady envelope, rotary-speaker tremolo."""
    phase = grid.cycles(0.5)
    wave = additive(grid, phase, _normalised(tb["drawbars"]), ratio=0.5)
    tremolo = 1.0 + np.float32(tb["tremolo"]) * np.sin(TWO_PI * np.float32(tb["tremolo_rate"]) * grid.t)
    return wave * tremolo * adsr(grid, 0.006 * tb["attack"], 0.3, 1.0, 0.04)


def pad(grid: Grid, tb: dict) -> np.ndarray:
    """Sine pad: three detuned sines with a soft octave, slow attack and long release."""
    wave = 0.0
    for cents in (-tb["detune"], 0.0, tb["detune"]):
        wave = wave + additive(grid, grid.cycles(2.0 ** (cents / 1200.0)), _normalised([1.0, tb["octave"]]))
    return wave * np.float32(0.6) * adsr(grid, tb["attack_s"], 1.0, 1.0, 0.6)


def strings(grid: Grid, tb: dict) -> np.ndarray:
    """Bowed strings: band-limited sawtooth through a lowpass, delayed vibrato, slow attack."""
    phase = grid.cycles(1.0, tb["vibrato"], tb["vibrato_rate"], 0.12)
    k = np.arange(1, 25)
    amps = _normalised(k ** -1.0 * _lowpass(grid, k, 2200.0 * tb["brightness"]))
    return additive(grid, phase, amps) * adsr(grid, 0.16 * tb["attack"], 0.5, 1.0, 0.3)


def brass(grid: Grid, tb: dict) -> np.ndarray:
    """Brass: band-limited sawtooth whose lowpass opens at the attack and settles (filter envelope)."""
    phase = grid.cycles(1.0, tb["vibrato"], 5.0, 0.25)
    sweep = np.minimum(grid.t / 0.05, 1.0) * (0.4 + 0.6 * np.exp(-grid.t / 0.3))
    inverse_cutoff = (1.0 / (grid.freq * (1.2 + 6.0 * tb["brightness"] * sweep))).astype(np.float32)
    freq = grid.freq.astype(np.float32)

    def gain(k: int) -> np.ndarray:
        ratio = (k * freq) * inverse_cutoff
        ratio *= ratio
        return 1.0 / (1.0 + ratio * ratio)

    k = np.arange(1, 21)
    return additive(grid, phase, _normalised(1.0 / k) * 1.6, gain) * adsr(grid, 0.04 * tb["attack"], 0.3, 0.8, 0.12)


def synth_lead(grid: Grid, tb: dict) -> np.ndarray:
    """Square/pulse lead: band-limited pulse wave (width ``pulse_width``), snappy envelope."""
    phase = grid.cycles(1.0, tb["vibrato"], 5.5, 0.25)
    k = np.arange(1, 41)
    amps = np.sin(np.pi * k * tb["pulse_width"]) / k * _lowpass(grid, k, 3500.0 * tb["brightness"])
    return additive(grid, phase, _normalised(amps)) * adsr(grid, 0.005, 0.15, 0.7, 0.05)


def pluck(grid: Grid, tb: dict) -> np.ndarray:
    """Plucked string: the modal form of Karplus & Strong (1983).

    A Karplus-Strong loop (delay line and two-point average) is a bank of harmonics, each decaying
    at the rate set by the loop filter's gain at its frequency; rendering those harmonics directly
    gives the same sound with exact pitch and vectorises over notes. The random amplitudes and
    signs play the noise burst, ``sin(pi k b)`` the plucking position ``b``.
    """
    phase = grid.cycles()
    k = np.arange(1, tb.get("harmonics", 24) + 1)
    rng = grid.rng
    decay_s = np.clip(tb["sustain"] * np.sqrt(220.0 / grid.freq), 0.25, 4.0)
    loop = -np.log(np.cos(np.pi * np.minimum(k[None, :] * grid.freq, 15000.0) / 32000.0))
    rates = (6.91 / decay_s + tb["damping"] * grid.freq * loop).astype(np.float32)
    position = rng.uniform(0.08, 0.3, size=(grid.n, 1)) * tb["position"]
    # Random magnitudes and signs stand in for the random phases of the noise burst.
    amps = rng.normal(0.0, 1.0, (grid.n, len(k))) * k ** -0.6 * np.abs(np.sin(np.pi * k * position))
    t = grid.t

    def gain(kk: int) -> np.ndarray:
        return np.exp(-rates[:, kk - 1:kk] * t)

    return additive(grid, phase, _normalised(amps) * 1.4, gain) * adsr(grid, 0.002, 1.0, 1.0, 0.08)


def epiano(grid: Grid, tb: dict) -> np.ndarray:
    """Electric piano: 1:1 FM with a decaying index plus a short high 'tine' partial."""
    carrier = TWO_PI * grid.cycles()
    cap = np.clip((0.9 * grid.max_hz - grid.freq) / grid.freq - 2.0, 0.0, None)  # Carson's rule, with margin
    index = (np.minimum(tb["index"], cap) * np.exp(-grid.t / 0.4)).astype(np.float32)
    wave = np.sin(carrier + index * np.sin(carrier))
    tine = np.sin(TWO_PI * grid.cycles(7.0)) * np.exp(-grid.t / 0.03) * grid.partial_mask(7.0) * np.float32(0.3)
    decay = tb["decay"] * np.clip((261.6 / grid.freq) ** 0.4, 0.4, 2.0)
    return (wave + tine) * adsr(grid, 0.002, decay.astype(np.float32), 0.0, 0.15)


def bell(grid: Grid, tb: dict) -> np.ndarray:
    """Bell: FM with an inharmonic modulator ratio, long ringing decay (Chowning 1973)."""
    carrier = TWO_PI * grid.cycles()
    modulator = TWO_PI * grid.cycles(tb["ratio"])
    cap = np.clip((0.9 * grid.max_hz - grid.freq) / (tb["ratio"] * grid.freq) - 2.0, 0.0, None)
    index = (np.minimum(tb["index"], cap) * np.exp(-grid.t / 0.8)).astype(np.float32)
    wave = np.sin(carrier + index * np.sin(modulator))
    return wave * adsr(grid, 0.002, 1.6 * tb["decay"], 0.0, 0.4)


def flute(grid: Grid, tb: dict) -> np.ndarray:
    """Flute: near-sinusoidal tone with vibrato plus breath noise that chiffs at the onset."""
    phase = grid.cycles(1.0, tb["vibrato"], tb["vibrato_rate"], 0.15)
    tone = additive(grid, phase, _normalised([1.0, 0.22 * tb["brightness"], 0.07, 0.03]))
    chiff = np.float32(tb["breath"]) * (0.4 + np.exp(-grid.t / 0.05))
    # Breath noise is mostly below a few kHz: a one-pole lowpass darkens the white noise.
    pole = np.exp(-2 * np.pi * min(2500.0, 0.3 * grid.sr) / grid.sr)
    breath = lfilter([1 - pole], [1, -pole], grid.noise(2.0), axis=1).astype(np.float32)
    breath *= chiff * (0.7 + 0.3 * np.sin(TWO_PI * phase))
    return (tone + breath) * adsr(grid, 0.06 * tb["attack"], 0.2, 0.85, 0.08)


def voice(grid: Grid, tb: dict) -> np.ndarray:
    """Vocal-like lead: harmonic source shaped by vowel formants, strong delayed vibrato."""
    phase = grid.cycles(1.0, tb["vibrato"], tb["vibrato_rate"], 0.18)
    k = np.arange(1, 41)
    formants = VOWELS[grid.rng.integers(len(VOWELS), size=grid.n)] * tb["formant_shift"]
    partials = k[None, :, None] * grid.freq[:, :, None]
    peaks = FORMANT_GAINS / (1.0 + ((partials - formants[:, None, :]) / FORMANT_WIDTHS) ** 2)
    amps = k ** -0.7 * (0.03 + peaks.sum(axis=-1))
    return additive(grid, phase, _normalised(amps) * 1.2) * adsr(grid, 0.07 * tb["attack"], 0.3, 0.9, 0.15)


def bass(grid: Grid, tb: dict) -> np.ndarray:
    """Bass in three variants: filtered-saw ``synth``, sine-like ``round`` and plucked ``upright``."""
    if tb["variant"] == "upright":
        # Partials above ~1.5 kHz of a low string die within milliseconds: 16 are plenty.
        return pluck(grid, {**tb, "harmonics": 16})
    phase = grid.cycles()
    if tb["variant"] == "synth":
        k = np.arange(1, 25)
        amps = k ** -1.0 * _lowpass(grid, k, grid.freq * (2.5 + 4.0 * tb["brightness"]))
        return additive(grid, phase, _normalised(amps)) * adsr(grid, 0.004, 0.25, 0.55, 0.06)
    return additive(grid, phase, _normalised([1.0, 0.4, 0.15, 0.06])) * adsr(grid, 0.004, 0.7, 0.3, 0.08)


@dataclass(frozen=True)
class Instrument:
    """One timbre: its tag, release time, voice and how its per-piece parameters are drawn.

    Args:
        name: Key in :data:`INSTRUMENTS`.
        tag: Tag a piece gets when this instrument is audible in it.
        release: Release time (s) after each note's gate.
        voice: ``voice(grid, timbre) -> (n, samples)``.
        draw: ``draw(rng) -> dict`` of instrument-specific timbre parameters.
    """

    name: str
    tag: str
    release: float
    voice: Callable[[Grid, dict], np.ndarray]
    draw: Callable[[np.random.Generator], dict]


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


INSTRUMENTS = {inst.name: inst for inst in (
    Instrument("organ", "organ", 0.04, organ, lambda r: {
        "drawbars": np.array([0.5, 1.0, 0.5, 0.7, 0.0, 0.35, 0.0, 0.3]) * r.uniform(0.3, 1.0, 8)
        + np.array([0, 0.5, 0, 0, 0, 0, 0, 0]),
        "tremolo": _u(r, 0.0, 0.25), "tremolo_rate": _u(r, 5.5, 7.0)}),
    Instrument("pad", "pad", 0.6, pad, lambda r: {"detune": _u(r, 4, 14), "octave": _u(r, 0.0, 0.35),
                                                   "attack_s": _u(r, 0.25, 0.7)}),
    Instrument("strings", "strings", 0.3, strings, lambda r: {}),
    Instrument("brass", "brass", 0.12, brass, lambda r: {}),
    Instrument("synth_lead", "synth-lead", 0.05, synth_lead, lambda r: {"pulse_width": _u(r, 0.22, 0.5)}),
    Instrument("pluck", "plucked", 0.08, pluck, lambda r: {"sustain": _u(r, 1.2, 2.6), "damping": _u(r, 0.6, 1.6),
                                                           "position": _u(r, 0.8, 1.2)}),
    Instrument("epiano", "electric-piano", 0.15, epiano, lambda r: {"index": _u(r, 0.8, 2.2),
                                                                     "decay": _u(r, 0.9, 1.6)}),
    Instrument("bell", "bells", 0.4, bell, lambda r: {"ratio": _u(r, 2.9, 3.6), "index": _u(r, 1.5, 3.5),
                                                      "decay": _u(r, 0.8, 1.3)}),
    Instrument("flute", "flute", 0.08, flute, lambda r: {"breath": _u(r, 0.03, 0.09)}),
    Instrument("voice", "vocal", 0.15, voice, lambda r: {"formant_shift": _u(r, 0.9, 1.12)}),
    Instrument("bass", "bass", 0.08, bass, lambda r: {"sustain": _u(r, 0.8, 1.6), "damping": _u(r, 1.0, 2.5),
                                                      "position": _u(r, 0.8, 1.2)}),
)}


def draw_timbre(name: str, rng: np.random.Generator, brightness: float = 1.0, vibrato: float = 10.0,
                **fixed) -> dict:
    """Draw the per-piece timbre of instrument ``name`` around a player's habits.

    Args:
        name: Instrument name.
        rng: The piece's random generator.
        brightness: The player's brightness (lowpass cutoff multiplier, ~0.6-1.6).
        vibrato: The player's vibrato depth in cents.
        **fixed: Parameters to set rather than draw (e.g. the bass ``variant``).

    Returns:
        The timbre dict the instrument's voice reads.
    """
    timbre = {"brightness": brightness * float(rng.lognormal(0.0, 0.12)), "attack": float(rng.lognormal(0.0, 0.2)),
              "vibrato": vibrato * _u(rng, 0.6, 1.4), "vibrato_rate": _u(rng, 4.6, 6.2)}
    timbre.update(INSTRUMENTS[name].draw(rng))
    timbre.update(fixed)
    return timbre
