"""Vectorised note rendering: notes as rows of a (notes, samples) grid, envelopes, additive synthesis."""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

TWO_PI = np.float32(2.0 * np.pi)
# Phases are built from blocks of this many samples so that float32 keeps sub-sample precision.
_BLOCK = 256
# Synthesised partials stop here (or at 45 % of the sample rate) so that nothing aliases and the
# timbres sound alike at 16 kHz and at 22.05 kHz.
MAX_PARTIAL_HZ = 7000.0
# Rows x samples per rendering chunk: big enough to amortise numpy overhead, small enough for cache.
_CHUNK_ELEMENTS = 1 << 16


class Grid:
    """A chunk of notes laid out as rows of a (notes, samples) time grid.

    Args:
        freq: Fundamental frequency of each note (Hz), shape ``(n,)``.
        gate: Seconds each note is held before its release, shape ``(n,)``.
        num_samples: Columns of the grid (at least the longest note with its release).
        sample_rate: Sample rate in Hz.
        rng: The piece's random generator (vibrato phases, noise, per-note variation).
    """

    def __init__(self, freq: np.ndarray, gate: np.ndarray, num_samples: int, sample_rate: int,
                 rng: np.random.Generator):
        self.sr = sample_rate
        self.n = len(freq)
        self.length = -(-num_samples // _BLOCK) * _BLOCK
        self.freq = np.asarray(freq, dtype=np.float64)[:, None]
        self.gate = np.asarray(gate, dtype=np.float32)[:, None]
        self.t = (np.arange(self.length, dtype=np.float32) / np.float32(sample_rate))[None, :]
        self.max_hz = min(0.45 * sample_rate, MAX_PARTIAL_HZ)
        self.rng = rng
        self._vibrato_phase = rng.uniform(0, 2 * np.pi, size=(self.n, 1)).astype(np.float32)

    def cycles(self, ratio: float = 1.0, vibrato_cents: float = 0.0, vibrato_rate: float = 5.0,
               vibrato_delay: float = 0.0) -> np.ndarray:
        """Phase in cycles (float32, about [0, 1)) of a partial at ``ratio`` times each note's frequency.

        The constant-frequency part is computed exactly as ``frac(n * f / sr)`` from a coarse and a
        fine term, each reduced modulo 1 in float64; the vibrato is the closed-form integral of a
        sinusoidal frequency deviation, faded in after ``vibrato_delay`` seconds.
        """
        rate = self.freq[:, 0] * ratio / self.sr
        blocks = self.length // _BLOCK
        coarse = np.mod(rate[:, None] * (np.arange(blocks) * _BLOCK)[None, :], 1.0).astype(np.float32)
        fine = np.mod(rate[:, None] * np.arange(_BLOCK)[None, :], 1.0).astype(np.float32)
        phase = (coarse[:, :, None] + fine[:, None, :]).reshape(self.n, self.length)
        phase -= np.floor(phase)
        if vibrato_cents > 0:
            depth = 2.0 ** (vibrato_cents / 1200.0) - 1.0
            scale = (self.freq * ratio * depth / (2 * np.pi * vibrato_rate)).astype(np.float32)
            swing = np.cos(self._vibrato_phase) - np.cos(TWO_PI * np.float32(vibrato_rate) * self.t
                                                          + self._vibrato_phase)
            fade = np.clip((self.t - vibrato_delay) / 0.2, 0.0, 1.0) if vibrato_delay > 0 else 1.0
            phase += scale * swing * fade
        return phase

    def partial_mask(self, ratio: float) -> np.ndarray:
        """1 for notes whose partial at ``ratio`` times the fundamental stays below the limit, else 0."""
        return (self.freq * ratio < self.max_hz).astype(np.float32)

    def noise(self, scale: float = 1.0) -> np.ndarray:
        """White Gaussian noise over the grid (float32)."""
        return self.rng.standard_normal((self.n, self.length), dtype=np.float32) * np.float32(scale)


def adsr(grid: Grid, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    """Per-note envelope: linear attack, exponential decay to ``sustain``, linear release after the gate.

    Args:
        grid: The notes.
        attack: Attack time (s).
        decay: Time constant (s) of the exponential decay towards the sustain level.
        sustain: Sustain level in [0, 1] (0 gives a percussive decay).
        release: Release time (s) after each note's gate.

    Returns:
        ``(n, samples)`` float32 envelope, zero after gate + release.
    """
    attack = max(attack, 1e-3)
    t = grid.t

    def held(time):
        rise = np.minimum(time / attack, 1.0)
        return rise * (sustain + (1.0 - sustain) * np.exp(-np.maximum(time - attack, 0.0) / decay))

    at_gate = held(grid.gate)
    after = at_gate * np.maximum(0.0, 1.0 - (t - grid.gate) / np.float32(release))
    return np.where(t < grid.gate, held(t), after).astype(np.float32)


def additive(grid: Grid, phase: np.ndarray, amps: np.ndarray, gain: Optional[Callable[[int], np.ndarray]] = None,
             ratio: float = 1.0) -> np.ndarray:
    """Sum of harmonics ``k = 1..K`` of ``phase``; partials above the grid's limit are left out.

    Evaluated with Clenshaw's recurrence (``b_k = a_k + 2 cos(x) b_{k+1} - b_{k+2}``, sum
    ``= b_1 sin(x)``): three array passes per harmonic and no sine per harmonic.

    Args:
        grid: The notes.
        phase: Phase in cycles, ``(n, samples)``, of a base at ``ratio`` times each note's frequency.
        amps: Harmonic amplitudes, ``(K,)`` or ``(n, K)``; negative values flip a partial's phase.
        gain: Optional time-varying gain of harmonic ``k``: a new ``(n, samples)`` array (scaled in place).
        ratio: Frequency of ``phase`` relative to the notes' fundamentals (for the Nyquist guard).

    Returns:
        ``(n, samples)`` float32 waveform.
    """
    amps = np.broadcast_to(np.asarray(amps, dtype=np.float32), (grid.n, np.shape(amps)[-1]))
    harmonics = np.arange(1, amps.shape[1] + 1)
    weights = (amps * (grid.freq * ratio * harmonics < grid.max_hz)).astype(np.float32)
    used = np.flatnonzero(weights.any(axis=0))
    angle = TWO_PI * phase
    if len(used) == 0:
        return np.zeros_like(phase)
    two_cos = 2.0 * np.cos(angle)
    b1, b2, new = np.zeros_like(phase), np.zeros_like(phase), np.empty_like(phase)
    for k in range(used[-1] + 1, 0, -1):
        np.multiply(two_cos, b1, out=new)
        new -= b2
        if gain is not None:
            varying = gain(k)
            varying *= weights[:, k - 1:k]
            new += varying
        elif weights[:, k - 1].any():
            new += weights[:, k - 1:k]
        b2, b1, new = b1, new, b2
    return b1 * np.sin(angle)


def overlap_add(out: np.ndarray, rows: np.ndarray, onsets: np.ndarray, lengths: np.ndarray) -> None:
    """Add each row of ``rows`` (its first ``lengths[i]`` samples) into ``out`` at ``onsets[i]``.

    Onsets may be negative or run past the end: the parts outside ``out`` are dropped.
    """
    total = len(out)
    for row, onset, length in zip(rows, onsets, lengths):
        start, stop = max(onset, 0), min(onset + length, total)
        if stop > start:
            out[start:stop] += row[start - onset:stop - onset]


def render_notes(voice: Callable[[Grid, dict], np.ndarray], release: float, onset: np.ndarray,
                 gate: np.ndarray, freq: np.ndarray, velocity: np.ndarray, total: int, sample_rate: int,
                 rng: np.random.Generator, timbre: dict) -> np.ndarray:
    """Render notes with one instrument voice into a mono signal of ``total`` samples.

    Notes are sorted by length and rendered in chunks so that short notes are not padded to the
    length of the longest one.

    Args:
        voice: ``voice(grid, timbre) -> (n, samples)`` enveloped waveforms.
        release: The voice's release time (s), added to each gate.
        onset: Note starts in samples (int, may be negative).
        gate: Held durations (s).
        freq: Fundamentals (Hz).
        velocity: Linear note gains.
        total: Output length in samples.
        sample_rate: Sample rate in Hz.
        rng: Random generator (per-note phases, noise).
        timbre: The instrument's per-piece timbre parameters.

    Returns:
        float32 signal of ``total`` samples.
    """
    out = np.zeros(total, dtype=np.float32)
    if len(onset) == 0:
        return out
    lengths = np.ceil((np.asarray(gate) + release) * sample_rate).astype(np.int64) + 1
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        stop = start + 1
        while stop < len(order) and (stop - start + 1) * lengths[order[stop]] <= _CHUNK_ELEMENTS:
            stop += 1
        idx = order[start:stop]
        grid = Grid(freq[idx], gate[idx], int(lengths[idx].max()), sample_rate, rng)
        rows = voice(grid, timbre) * np.asarray(velocity, dtype=np.float32)[idx, None]
        overlap_add(out, rows, onset[idx], lengths[idx])
        start = stop
    return out
