"""Parts of a piece on a sixteenth-note grid: melody, accompaniment, bass line and drum pattern."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clmr_lib.data.synth.theory import SCALES, nearest_pitch

# Parts are returned in steps (sixteenths from the start of the piece); the composer turns steps into
# seconds with the tempo, swing and timing jitter.

# Velocity of each pattern letter: accent, normal, ghost note.
_HIT = {"X": 1.0, "x": 0.7, "o": 0.35}
DRUM_PATTERNS = {
    "four_floor": {"kick": "X...X...X...X...", "snare": "....x.......x...", "hat": "..x...x...x...x."},
    "rock": {"kick": "X.......X.x.....", "snare": "....X.......X...", "hat": "x.x.x.x.x.x.x.x."},
    "halftime": {"kick": "X.........x.....", "snare": "........X.......", "hat": "x.x.x.x.x.x.x.x."},
    "breakbeat": {"kick": "X.....x...x.....", "snare": "....X.......X..o", "hat": "x.xxx.x.x.xxx.x."},
    "swing": {"kick": "x.......o.......", "snare": "......o.......o.", "hat": "X...x.X.X...x.X."},
    "folk": {"kick": "X.......x.......", "snare": "....x.......x...", "hat": "x...x...x...x..."},
}
# Three-beat versions where cutting the four-beat pattern short would sound wrong.
DRUM_PATTERNS_3 = {
    "swing": {"kick": "x...........", "snare": "........o...", "hat": "X...x.X.x.X."},
    "folk": {"kick": "X...........", "snare": "....x...x...", "hat": "x...x...x..."},
    "four_floor": {"kick": "X...X...X...", "snare": "....x.......", "hat": "..x...x...x."},
}
COMP_PATTERNS = ((0, 6), (2, 8, 14), (0, 3, 10), (4, 12), (0, 10), (3, 6, 12))
STRUM_PATTERNS = ((0, 4, 8, 12), (0, 6, 8, 12, 14), (0, 8), (0, 4, 6, 10, 12))
STAB_PATTERNS = ((2, 6, 10, 14), (0, 3, 6, 10, 12), (0, 6, 12), (4, 12))
_DEFAULT_COMPING = {"pad": "sustain", "strings": "sustain", "organ": "sustain", "epiano": "comp",
                    "pluck": "arpeggio", "brass": "stabs", "bell": "arpeggio"}


@dataclass
class Line:
    """Notes of one part: onsets and held lengths in steps, MIDI pitches and velocities."""

    onset: np.ndarray
    held: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray

    @classmethod
    def from_events(cls, events: list) -> "Line":
        """Build from ``(onset, held, pitch, velocity)`` tuples, sorted by onset."""
        events = sorted(events, key=lambda e: (e[0], e[2]))
        columns = np.array(events, dtype=np.float64).reshape(-1, 4).T
        return cls(*columns)


@dataclass
class Chord:
    """A chord of the progression: start and length in steps, root degree, pitch classes."""

    start: int
    length: int
    root_degree: int
    pitch_classes: list


def comping_style(instrument: str, overrides: dict) -> str:
    """The accompaniment pattern an instrument plays in a genre."""
    return overrides.get(instrument, _DEFAULT_COMPING.get(instrument, "sustain"))


def _metric_strength(steps_per_bar: int) -> np.ndarray:
    """How likely a note starts on each sixteenth: downbeat > beats > eighths > sixteenths."""
    step = np.arange(steps_per_bar)
    strength = np.where(step % 4 == 0, 1.0, np.where(step % 2 == 0, 0.55, 0.2))
    strength[0] = 1.6
    return strength


def _velocity(rng: np.random.Generator, steps: np.ndarray, spread: float) -> np.ndarray:
    accent = np.where(np.asarray(steps).astype(int) % 4 == 0, 1.0, 0.85)
    return np.clip(accent * rng.lognormal(0.0, spread, size=np.shape(steps)), 0.2, 1.4)


def _scale_midi(tonic: int, mode: str, degree: int) -> int:
    scale = SCALES[mode]
    return 60 + tonic + 12 * (degree // 7) + scale[degree % 7]


def melody(rng: np.random.Generator, chords: list, steps_per_bar: int, density: float, register: int,
           tonic: int, mode: str, motif: tuple, motif_rate: float, dynamics: float) -> Line:
    """A melody: random walk on the scale, chord tones on strong beats, repeated rhythms, a motif.

    Args:
        rng: The piece's random generator.
        chords: The chord timeline (one or more chords per bar).
        steps_per_bar: Sixteenths per bar.
        density: Mean notes per beat.
        register: MIDI centre of the melody.
        tonic: Pitch class of the key.
        mode: Scale name.
        motif: The artist's signature ``(step, degree offset)`` figure.
        motif_rate: Fraction of bars opening with the motif.
        dynamics: Spread of velocities.

    Returns:
        The melody, held lengths filling each note's slot (the composer applies articulation).
    """
    centre = int(round((register - 60 - tonic) * 7 / 12))
    strength = _metric_strength(steps_per_bar)
    probability = np.clip(strength * density * (steps_per_bar / 4) / strength.sum(), 0.0, 0.95)
    bars = -(-(chords[-1].start + chords[-1].length) // steps_per_bar)
    starts = np.array([c.start for c in chords])
    rhythms, events, degree = [], [], centre
    for bar in range(bars):
        base = bar * steps_per_bar
        chord = chords[int(np.searchsorted(starts, base, side="right")) - 1]
        if bar >= 2 and rng.random() < 0.45:
            steps = rhythms[bar - 2]
        else:
            steps = np.flatnonzero(rng.random(steps_per_bar) < probability)
            if bar % 2 == 1 and rng.random() < 0.3:
                steps = steps[steps < steps_per_bar * 3 // 4]
        rhythms.append(steps)
        fixed = {}
        if motif and rng.random() < motif_rate:
            root = chord.root_degree + 7 * int(round((degree - chord.root_degree) / 7))
            fixed = {s: root + d for s, d in motif if s < steps_per_bar}
            steps = np.union1d([s for s in steps if s > max(fixed)], list(fixed))
        for step in steps:
            chord = chords[int(np.searchsorted(starts, base + step, side="right")) - 1]
            if step in fixed:
                degree = fixed[step]
            else:
                move = rng.choice([-3, -2, -1, 0, 1, 2, 3, 4], p=[0.05, 0.12, 0.28, 0.06, 0.28, 0.12, 0.05, 0.04])
                degree += int(move) - int(np.sign(degree - centre)) * (abs(degree - centre) > 5) * 2
                if strength[step] >= 1.0:
                    tones = [d for d in range(degree - 3, degree + 4) if (d - chord.root_degree) % 7 in (0, 2, 4)]
                    degree = min(tones, key=lambda d: abs(d - degree))
            events.append([base + step, 0.0, _scale_midi(tonic, mode, degree), 1.0])
    line = Line.from_events(events)
    slots = np.diff(np.append(line.onset, line.onset[-1] + 4)) if len(line.onset) else line.onset
    line.held = np.minimum(slots, 8.0)
    line.velocity = _velocity(rng, line.onset, dynamics)
    return line


def accompaniment(rng: np.random.Generator, chords: list, style: str, centre: float, step_seconds: float,
                  dynamics: float) -> Line:
    """Chords played as ``sustain``, ``comp``, ``arpeggio``, ``strum`` or ``stabs``.

    Args:
        rng: The piece's random generator.
        chords: The chord timeline.
        style: Accompaniment pattern.
        centre: MIDI centre of the voicing (close position around it).
        step_seconds: Duration of a sixteenth (strums spread over ~15 ms whatever the tempo).
        dynamics: Spread of velocities.
    """
    events = []
    comp = COMP_PATTERNS[rng.integers(len(COMP_PATTERNS))]
    strum = STRUM_PATTERNS[rng.integers(len(STRUM_PATTERNS))]
    stabs = STAB_PATTERNS[rng.integers(len(STAB_PATTERNS))]
    arp_rate = 2 if step_seconds > 0.09 or rng.random() < 0.5 else 1
    for chord in chords:
        voicing = sorted(nearest_pitch(pc, centre) for pc in chord.pitch_classes)
        if style == "sustain":
            events += [(chord.start, chord.length * 0.98, p, 0.8) for p in voicing]
        elif style == "arpeggio":
            cycle = voicing + [voicing[0] + 12]
            cycle = cycle + cycle[-2:0:-1] if rng.random() < 0.5 else cycle
            for i, step in enumerate(range(0, chord.length, arp_rate)):
                events.append((chord.start + step, arp_rate * 2.0, cycle[i % len(cycle)], 0.75))
        else:
            pattern = {"comp": comp, "strum": strum, "stabs": stabs}[style]
            hits = [s for s in pattern if s < chord.length]
            for j, step in enumerate(hits):
                length = (hits[j + 1] if j + 1 < len(hits) else chord.length) - step
                held = {"comp": min(length, 3.0), "strum": length, "stabs": min(length, 1.5)}[style]
                spread = 0.015 / step_seconds if style == "strum" else 0.0
                events += [(chord.start + step + i * spread, held, p, 0.8) for i, p in enumerate(voicing)]
    line = Line.from_events(events)
    line.velocity = line.velocity * _velocity(rng, line.onset, dynamics)
    return line


def bass_line(rng: np.random.Generator, chords: list, style: str, steps_per_bar: int, dynamics: float) -> Line:
    """A bass line in the E1-E3 range: ``root``, ``root_fifth``, ``eighths``, ``offbeat``, ``syncopated``
    or ``walking`` (quarter notes with a chromatic approach to the next root)."""
    events = []
    for i, chord in enumerate(chords):
        root = nearest_pitch(chord.pitch_classes[0], 40)
        fifth = root + 7 if root < 40 else root - 5
        if style == "root":
            events.append((chord.start, chord.length * 0.95, root, 0.9))
        elif style == "root_fifth":
            beats = (0, 8) if steps_per_bar == 16 else (0, 4, 8)
            events += [(chord.start + b, 3.5 if steps_per_bar == 12 else 7.0, root if j == 0 else fifth, 0.9)
                       for j, b in enumerate(beats) if b < chord.length]
        elif style in ("eighths", "offbeat"):
            steps = range(0 if style == "eighths" else 2, chord.length, 2 if style == "eighths" else 4)
            events += [(chord.start + s, 1.6, root + 12 * (rng.random() < 0.15), 0.85) for s in steps]
        elif style == "syncopated":
            events += [(chord.start + s, 1.8, rng.choice([root, root, fifth, root + 12]), 0.85)
                       for s in (0, 3, 6, 10, 12) if s < chord.length]
        else:
            following = chords[(i + 1) % len(chords)].pitch_classes[0]
            target = nearest_pitch(following, 40)
            tones = [nearest_pitch(pc, root + 4) for pc in chord.pitch_classes]
            beats = list(range(0, chord.length, 4))
            for j, b in enumerate(beats):
                if j == 0:
                    pitch = root
                elif j == len(beats) - 1:
                    pitch = target + rng.choice([-1, 1])
                else:
                    pitch = int(rng.choice(tones))
                events.append((chord.start + b, 3.6, pitch, 0.85))
    line = Line.from_events(events)
    line.velocity = line.velocity * _velocity(rng, line.onset, dynamics)
    return line


def drum_hits(rng: np.random.Generator, pattern: str, steps_per_bar: int, bars: int) -> dict:
    """Drum hits in steps for ``bars`` bars: the pattern with dropped hits, ghost notes and fills.

    Returns:
        ``kind -> (steps, velocities)``.
    """
    grid = DRUM_PATTERNS_3.get(pattern) if steps_per_bar == 12 else None
    grid = grid or {kind: text[:steps_per_bar] for kind, text in DRUM_PATTERNS[pattern].items()}
    hits = {}
    for kind, text in grid.items():
        velocity = np.array([_HIT.get(c, 0.0) for c in text])
        tiled = np.tile(velocity, bars)
        if kind == "hat":
            ghosts = (tiled == 0) & (rng.random(len(tiled)) < 0.08)
            tiled = np.where(ghosts, 0.3, tiled)
        tiled = np.where(rng.random(len(tiled)) < 0.05, 0.0, tiled)
        if kind == "snare":
            for bar in range(3, bars, 4):
                if rng.random() < 0.5:
                    fill = slice((bar + 1) * steps_per_bar - 4, (bar + 1) * steps_per_bar)
                    tiled[fill] = rng.uniform(0.4, 0.9, 4)
        steps = np.flatnonzero(tiled)
        hits[kind] = (steps.astype(np.float64), tiled[steps] * rng.lognormal(0.0, 0.1, len(steps)))
    return hits
