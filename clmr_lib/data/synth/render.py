"""Rendering a score: instrument stems, drums, room reverb, mastering; and the tags it earns."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, lfilter

from clmr_lib.data.synth.composer import PREROLL, Score
from clmr_lib.data.synth.drums import render_drums
from clmr_lib.data.synth.instruments import INSTRUMENTS
from clmr_lib.data.synth.oscillators import render_notes
from clmr_lib.data.synth.styles import REVERB_TAG_FROM, STACCATO_BELOW, tempo_class
from clmr_lib.data.synth.theory import midi_to_hz

PEAK_DBFS = -1.0
# A stem is "present" (and tagged) when its RMS in the clip reaches this fraction of the dry mix's.
AUDIBLE = 0.08
_FADE_SECONDS = 0.01


@dataclass
class Rendered:
    """A rendered clip and what is audible in it.

    Args:
        audio: float32 clip, peak at most ``PEAK_DBFS``.
        stem_rms: RMS over the clip of each tag-bearing stem (instrument tags and ``drums``), dry.
        mix_rms: RMS over the clip of the dry mix.
    """

    audio: np.ndarray
    stem_rms: dict
    mix_rms: float


def one_pole_lowpass(x: np.ndarray, cutoff: float, sample_rate: int) -> np.ndarray:
    """A gentle (6 dB/octave) lowpass."""
    pole = np.exp(-2 * np.pi * cutoff / sample_rate)
    return lfilter([1 - pole], [1, -pole], x)


def room_reverb(dry: np.ndarray, amount: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Wet signal of a synthetic room: exponentially decaying, darkening noise tail after a pre-delay.

    Args:
        dry: The dry mix.
        amount: Room amount in [0, 1]: RT60 from 0.3 to 2.5 s and wet gain from 0.1 to 0.7.
        sample_rate: Sample rate in Hz.
        rng: The piece's random generator.
    """
    rt60 = 0.3 + 2.2 * amount
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60)
    tail = one_pole_lowpass(tail, min(4000.0, 0.4 * sample_rate), sample_rate)
    ir = np.concatenate([np.zeros(int(rng.uniform(0.01, 0.03) * sample_rate)), tail])
    ir *= (0.1 + 0.6 * amount) / np.sqrt((ir ** 2).sum())
    # float32 halves the cost of the longest convolution of the pipeline; the tail is noise anyway.
    return fftconvolve(dry.astype(np.float32), ir.astype(np.float32))[:len(dry)].astype(np.float64)


def render_score(score: Score, seconds: float, sample_rate: int, rng: np.random.Generator) -> Rendered:
    """Render the ``seconds``-long clip of ``score`` that starts at ``score.start``.

    Args:
        score: The composed piece.
        seconds: Clip length.
        sample_rate: Sample rate in Hz.
        rng: The piece's random generator (noise and phases; drawn after composition, so the
            score does not depend on the sample rate).

    Returns:
        The mastered clip and its stem levels.
    """
    clip = int(round(seconds * sample_rate))
    pre = int(round(PREROLL * sample_rate))
    origin = score.start - PREROLL
    total = pre + clip
    stems = {}
    for part in score.parts:
        inst = INSTRUMENTS[part.instrument]
        onset = np.round((part.onset - origin) * sample_rate).astype(np.int64)
        keep = (onset < total) & (onset + (part.held + inst.release) * sample_rate > 0)
        stem = render_notes(inst.voice, inst.release, onset[keep], part.held[keep], midi_to_hz(part.pitch[keep]),
                            part.velocity[keep], total, sample_rate, rng, part.timbre) * np.float32(part.level)
        stems[inst.tag] = stems.get(inst.tag, 0.0) + stem
    if score.drums is not None:
        hits = {kind: (np.round((onset - origin) * sample_rate).astype(np.int64), velocity)
                for kind, (onset, velocity) in score.drums.items()}
        stems["drums"] = render_drums(hits, score.kit, total, sample_rate, rng) * np.float32(score.drum_level)
    dry = np.sum(list(stems.values()), axis=0).astype(np.float64)
    stem_rms = {name: float(np.sqrt(np.mean(np.square(s[pre:], dtype=np.float64)))) for name, s in stems.items()}
    mix_rms = float(np.sqrt(np.mean(dry[pre:] ** 2)))
    wet = room_reverb(dry, score.reverb, sample_rate, rng)
    return Rendered(master(dry + wet, score, pre, sample_rate), stem_rms, mix_rms)


def master(mix: np.ndarray, score: Score, pre: int, sample_rate: int) -> np.ndarray:
    """Tilt EQ, a slow swell, short fades, then loudness to the piece's target under a -1 dBFS peak."""
    lowpass = one_pole_lowpass(mix, 1500.0, sample_rate)
    mix = (mix + score.tilt * (mix - lowpass))[pre:]
    mix *= 1.0 + score.swell * np.linspace(-1.0, 1.0, len(mix))
    fade = min(int(_FADE_SECONDS * sample_rate), len(mix) // 2)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    mix[:fade] *= ramp
    mix[len(mix) - fade:] *= ramp[::-1]
    rms, peak = np.sqrt(np.mean(mix ** 2)), np.abs(mix).max()
    if peak == 0:
        return mix.astype(np.float32)
    gain = min(10.0 ** (score.loudness_db / 20.0) / max(rms, 1e-12), 10.0 ** (PEAK_DBFS / 20.0) / peak)
    return (mix * gain).astype(np.float32)


def derive_tags(score: Score, rendered: Rendered) -> list:
    """Tags of what was really rendered: audible instruments and drums, tempo class, mode quality,
    a large room (``reverberant``) and a short-held audible lead (``staccato``)."""
    audible = {name for name, rms in rendered.stem_rms.items() if rms >= AUDIBLE * rendered.mix_rms}
    tags = audible | {tempo_class(score.tempo), score.third}
    if score.reverb >= REVERB_TAG_FROM:
        tags.add("reverberant")
    lead = next(p for p in score.parts if p.role == "lead")
    if lead.gate < STACCATO_BELOW and INSTRUMENTS[lead.instrument].tag in audible:
        tags.add("staccato")
    return sorted(tags)
