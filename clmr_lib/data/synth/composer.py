"""The composer: draws a piece's tempo, key, instruments, parts and mix from its artist and genre."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from clmr_lib.data.synth import parts
from clmr_lib.data.synth.drums import draw_kit
from clmr_lib.data.synth.instruments import draw_timbre
from clmr_lib.data.synth.styles import GENRES, Artist, Genre
from clmr_lib.data.synth.theory import PROGRESSIONS, chord_pitch_classes, third_quality

# Seconds rendered before the clip starts, so that held notes and reverb tails are already sounding.
PREROLL = 0.5
LEAD_INSTRUMENTS = ("synth_lead", "voice", "flute", "brass", "organ", "epiano", "bell", "pluck", "strings")
# How often a piece borrows its lead from outside its genre's palette: keeps instrument tags from
# being a deterministic function of the genre.
BORROW_RATE = 0.12


@dataclass
class Part:
    """One instrument's notes in seconds, with its mix level and per-piece timbre.

    Args:
        role: ``lead``, ``harmony`` or ``bass``.
        instrument: Key of :data:`~clmr_lib.data.synth.instruments.INSTRUMENTS`.
        onset: Note starts (s, piece time).
        held: Held durations (s) before release.
        pitch: MIDI pitches (fractional: tuning and intonation).
        velocity: Linear note gains.
        level: Linear mix gain of the part.
        timbre: The instrument's per-piece parameters.
        gate: Articulation (held fraction of each note's slot).
    """

    role: str
    instrument: str
    onset: np.ndarray
    held: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    level: float
    timbre: dict
    gate: float = 1.0


@dataclass
class Score:
    """Everything needed to render a piece and to label it."""

    genre: str
    artist: str
    tempo: float
    tonic: int
    mode: str
    meter: int
    swing: float
    start: float
    parts: list
    drums: Optional[dict]
    kit: dict
    drum_level: float
    reverb: float
    tilt: float
    swell: float
    loudness_db: float

    @property
    def third(self) -> str:
        """``major`` or ``minor``: the quality of the mode's third."""
        return third_quality(self.mode)


def _pick(rng: np.random.Generator, weights: dict, bias: Optional[dict] = None, exclude=()):
    """Draw a key of ``weights`` (multiplied by ``bias``), leaving out ``exclude``."""
    keys = [k for k in weights if k not in exclude]
    w = np.array([weights[k] * (bias or {}).get(k, 1.0) for k in keys], dtype=np.float64)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def _db(rng: np.random.Generator, low: float, high: float) -> float:
    return float(10.0 ** (rng.uniform(low, high) / 20.0))


def _chords(rng: np.random.Generator, genre: Genre, tonic: int, mode: str, meter: int, bars: int) -> list:
    """The chord timeline: a progression of the genre's family, one or two chords per bar."""
    family = PROGRESSIONS[genre.progressions][third_quality(mode)]
    progression = family[rng.integers(len(family))]
    per_bar = 2 if genre.progressions == "jazz" and meter == 4 and rng.random() < 0.5 else 1
    size = 4 if rng.random() < genre.sevenths else 3
    steps_per_bar, length = 4 * meter, 4 * meter // per_bar
    return [parts.Chord(i * length, length, progression[i % len(progression)],
                        chord_pitch_classes(tonic, mode, progression[i % len(progression)], size))
            for i in range(bars * per_bar) if i * length < bars * steps_per_bar]


def _to_seconds(steps: np.ndarray, step_seconds: float, swing: float, rng: np.random.Generator,
                jitter: float) -> np.ndarray:
    """Onset times of (fractional) steps with swung off-beats and human timing jitter."""
    whole = np.floor(steps).astype(int)
    delay = np.where(whole % 4 == 2, swing, np.where(whole % 2 == 1, swing / 2, 0.0))
    return (steps + delay) * step_seconds + rng.normal(0.0, jitter, size=len(steps))


def compose(rng: np.random.Generator, artist: Artist, seconds: float) -> Score:
    """Compose one piece by ``artist``: at least ``PREROLL + seconds`` of music after its start.

    Args:
        rng: The piece's own random generator (seeded from the dataset seed and piece index).
        artist: The persona playing it.
        seconds: Length of the clip that will be kept.

    Returns:
        The score.
    """
    genre = GENRES[artist.genre]
    # Rounded as written in metadata.csv, so that the tempo tag and the column always agree.
    tempo = round(float(np.clip(rng.uniform(*genre.tempo) + artist.tempo_offset + rng.normal(0, 3), 50, 190)), 1)
    tonic = int(rng.choice(artist.keys)) if rng.random() < 0.6 else int(rng.integers(12))
    mode = _pick(rng, genre.modes, artist.mode_bias)
    meter = int(_pick(rng, genre.meters, artist.meter_bias))
    swing = float(np.clip(rng.uniform(*genre.swing) + artist.swing, 0.0, 0.7))
    step_seconds = 60.0 / tempo / 4
    bar_seconds = step_seconds * 4 * meter
    start = PREROLL + float(rng.uniform(0, bar_seconds))
    bars = int(np.ceil((start + seconds) / bar_seconds)) + 1
    chords = _chords(rng, genre, tonic, mode, meter, bars)
    tuning = rng.uniform(-30, 30) / 100.0
    gate = float(np.clip(artist.gate + rng.normal(0, 0.08), 0.25, 1.0))

    def timbre(name: str, **fixed) -> dict:
        return draw_timbre(name, rng, brightness=artist.brightness, vibrato=artist.vibrato, **fixed)

    def part(role: str, name: str, line: parts.Line, level: float, articulation: float, jitter: float,
             **fixed) -> Part:
        onset = _to_seconds(line.onset, step_seconds, swing, rng, jitter)
        held = np.maximum(line.held * step_seconds * articulation, 0.03)
        pitch = line.pitch + tuning + rng.normal(0, 0.03, size=len(line.pitch))
        return Part(role, name, onset, held, pitch, line.velocity, level, timbre(name, **fixed), articulation)

    if rng.random() < BORROW_RATE:
        lead = str(rng.choice(LEAD_INSTRUMENTS))
    else:
        lead = _pick(rng, genre.lead, artist.favourites)
    register = genre.register + int(rng.integers(-3, 4))
    melody = parts.melody(rng, chords, 4 * meter, genre.density * rng.uniform(0.75, 1.25), register, tonic, mode,
                          artist.motif, artist.motif_rate, genre.dynamics)
    score_parts = [part("lead", lead, melody, _db(rng, -4, 0), gate, 0.006)]
    comp = _pick(rng, genre.harmony, artist.favourites, exclude=(lead,))
    layers = [comp]
    if rng.random() < genre.layers:
        layers.append(_pick(rng, genre.harmony, artist.favourites, exclude=(lead, comp)))
    for i, name in enumerate(layers):
        style = parts.comping_style(name, genre.comping)
        line = parts.accompaniment(rng, chords, style, 60 + rng.uniform(-3, 4), step_seconds, genre.dynamics)
        articulation = 1.0 if style in ("sustain", "arpeggio") else float(np.clip(gate + 0.15, 0.3, 1.0))
        score_parts.append(part("harmony", name, line, _db(rng, -10, -3) if i == 0 else _db(rng, -13, -6),
                                articulation, 0.004))
    if rng.random() < genre.bass:
        line = parts.bass_line(rng, chords, _pick(rng, genre.bass_styles), 4 * meter, genre.dynamics)
        score_parts.append(part("bass", "bass", line, _db(rng, -8, -2), float(np.clip(gate + 0.1, 0.4, 1.0)),
                                0.004, variant=_pick(rng, genre.bass_variant)))
    drums = None
    if rng.random() < genre.drums:
        pattern = _pick(rng, genre.drum_patterns, artist.drum_bias)
        hits = parts.drum_hits(rng, pattern, 4 * meter, bars)
        drums = {kind: (_to_seconds(steps, step_seconds, swing, rng, 0.003), vel)
                 for kind, (steps, vel) in hits.items()}
    reverb = float(np.clip(rng.uniform(*genre.reverb) + artist.reverb + rng.normal(0, 0.05), 0.0, 1.0))
    return Score(genre=genre.name, artist=artist.slug, tempo=tempo, tonic=tonic, mode=mode, meter=meter, swing=swing,
                 start=start, parts=score_parts, drums=drums, kit=draw_kit(rng, genre.kit), drum_level=_db(rng, -7, -1),
                 reverb=reverb, tilt=float(rng.uniform(-0.5, 0.5)), swell=float(rng.uniform(-0.3, 0.3)),
                 loudness_db=float(rng.uniform(-26, -14)))
