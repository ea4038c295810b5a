"""Music theory helpers: note names, scales, diatonic chords and chord progressions."""
from __future__ import annotations

import numpy as np

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
}

# Progressions as 0-based scale degrees of chord roots, one chord each, by harmonic family and by
# whether the mode has a major or a minor third.
PROGRESSIONS = {
    "pop": {
        "major": ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 0, 4)),
        "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 6), (0, 3, 6, 2)),
    },
    "jazz": {
        "major": ((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4), (2, 5, 1, 4)),
        "minor": ((0, 3, 0, 3), (1, 4, 0, 0), (0, 3, 6, 2), (3, 6, 0, 0)),
    },
    "modal": {
        "major": ((0, 3), (0, 4, 3, 0), (0, 1), (0, 5, 3, 3)),
        "minor": ((0, 3), (0, 6), (0, 5, 6, 0), (0, 3, 0, 6)),
    },
    "classical": {
        "major": ((0, 3, 4, 0), (0, 1, 4, 0), (0, 5, 1, 4), (0, 3, 6, 2, 5, 1, 4, 0)),
        "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 6, 2, 5, 1, 4, 0), (0, 6, 5, 4)),
    },
}


def third_quality(mode: str) -> str:
    """``"major"`` or ``"minor"``: the quality of the mode's third, as a listener tags it."""
    return "minor" if SCALES[mode][2] == 3 else "major"


def degree_to_midi(tonic: int, mode: str, degree, octave: int = 4) -> np.ndarray:
    """MIDI pitch of scale degrees (0-based, may exceed 6 or be negative) above ``tonic`` in ``octave``."""
    degree = np.asarray(degree)
    scale = np.asarray(SCALES[mode])
    return 12 * (octave + 1) + tonic + 12 * (degree // 7) + scale[degree % 7]


def chord_pitch_classes(tonic: int, mode: str, root_degree: int, size: int = 3) -> list[int]:
    """Pitch classes of the diatonic chord stacked in thirds on ``root_degree`` (triad or seventh)."""
    degrees = root_degree + 2 * np.arange(size)
    return [int(p) % 12 for p in degree_to_midi(tonic, mode, degrees)]


def nearest_pitch(pitch_class: int, centre: float) -> int:
    """The MIDI pitch with ``pitch_class`` closest to ``centre``."""
    base = int(np.floor(centre)) - 6
    return base + (pitch_class - base) % 12


def midi_to_hz(midi) -> np.ndarray:
    """Equal-tempered frequency (A4 = 440 Hz) of MIDI pitches, fractional pitches allowed."""
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)
