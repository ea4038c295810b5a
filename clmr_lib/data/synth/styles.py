"""Genres, artist personas and the tag vocabulary of the synthetic dataset."""
from __future__ import annotations

from dataclasses import dataclass, field

from clmr_lib.data.synth.instruments import INSTRUMENTS

# Tempo classes (lower bound inclusive, upper exclusive, BPM) used for the tempo tags.
TEMPO_CLASSES = (("slow", 0.0, 90.0), ("medium", 90.0, 120.0), ("fast", 120.0, float("inf")))
# A piece is tagged "reverberant" from this room amount (0-1) up, "staccato" when its lead holds
# notes for less than this fraction of their slots.
REVERB_TAG_FROM = 0.55
STACCATO_BELOW = 0.55

TAGS = tuple(sorted({inst.tag for inst in INSTRUMENTS.values()}
                    | {"drums", "major", "minor", "reverberant", "staccato"}
                    | {name for name, _, _ in TEMPO_CLASSES}))


@dataclass(frozen=True)
class Genre:
    """A style: distributions the composer draws a piece's parameters from.

    Args:
        name: Genre label.
        tempo: Range of tempi (BPM).
        modes: Weights of ``major``, ``minor`` and ``dorian``.
        meters: Weights of beats per bar (4 or 3).
        lead: Weights of lead instruments.
        harmony: Weights of accompanying instruments.
        comping: Accompaniment pattern per instrument (``sustain``, ``comp``, ``arpeggio``,
            ``strum``, ``stabs``) where the genre differs from the instrument's default.
        bass: Probability of a bass line.
        bass_variant: Weights of bass timbres (``synth``, ``round``, ``upright``).
        bass_styles: Weights of bass patterns (``root``, ``root_fifth``, ``eighths``, ``offbeat``,
            ``walking``, ``syncopated``).
        drums: Probability of drums.
        drum_patterns: Weights of drum patterns (see :data:`~clmr_lib.data.synth.parts.DRUM_PATTERNS`).
        kit: Drum kit style (``acoustic``, ``electronic`` or ``jazz``).
        density: Mean lead notes per beat.
        swing: Range of swing (fraction of a sixteenth the off-beats are delayed by, times two).
        register: MIDI centre of the lead.
        progressions: Harmonic family (key of :data:`~clmr_lib.data.synth.theory.PROGRESSIONS`).
        sevenths: Probability of seventh chords.
        reverb: Range of room amount (0-1).
        dynamics: Spread of note velocities.
        layers: Probability of a second accompanying instrument.
    """

    name: str
    tempo: tuple
    modes: dict
    meters: dict
    lead: dict
    harmony: dict
    comping: dict
    bass: float
    bass_variant: dict
    bass_styles: dict
    drums: float
    drum_patterns: dict
    kit: str
    density: float
    swing: tuple
    register: int
    progressions: str
    sevenths: float
    reverb: tuple
    dynamics: float
    layers: float


@dataclass(frozen=True)
class Artist:
    """A persona within one genre: habits that make its pieces recognisable, not identical.

    Args:
        name: Display name.
        slug: Folder name under ``audio/`` and the ``artist`` label.
        genre: Name of the artist's genre.
        favourites: Multipliers of the genre's instrument weights.
        keys: Favoured tonics (pitch classes), used for about 60 % of pieces.
        mode_bias: Multipliers of the genre's mode weights.
        tempo_offset: BPM added to the genre's tempo.
        motif: Signature figure: (sixteenth step, scale-degree offset from the chord root) pairs,
            opening some bars of the melody.
        motif_rate: Fraction of bars opening with the motif.
        gate: Articulation: fraction of each note's slot that is held (staccato < 0.55 < legato).
        reverb: Added to the genre's room amount.
        brightness: Lowpass cutoff multiplier of the artist's instruments.
        vibrato: Vibrato depth (cents) of sustained instruments.
        meter_bias: Multipliers of the genre's meter weights.
        swing: Added to the genre's swing.
        drum_bias: Multipliers of the genre's drum-pattern weights.
    """

    name: str
    slug: str
    genre: str
    favourites: dict
    keys: tuple
    mode_bias: dict
    tempo_offset: float
    motif: tuple
    motif_rate: float
    gate: float
    reverb: float
    brightness: float
    vibrato: float
    meter_bias: dict = field(default_factory=dict)
    swing: float = 0.0
    drum_bias: dict = field(default_factory=dict)


GENRES = {g.name: g for g in (
    Genre("ambient", tempo=(58, 86), modes={"major": 0.4, "minor": 0.3, "dorian": 0.3}, meters={4: 0.7, 3: 0.3},
          lead={"bell": 0.3, "flute": 0.25, "voice": 0.2, "epiano": 0.15, "strings": 0.1},
          harmony={"pad": 0.5, "strings": 0.3, "organ": 0.1, "bell": 0.1}, comping={"bell": "arpeggio"},
          bass=0.4, bass_variant={"round": 0.7, "synth": 0.3}, bass_styles={"root": 1.0},
          drums=0.15, drum_patterns={"halftime": 1.0}, kit="electronic", density=0.55, swing=(0.0, 0.1),
          register=74, progressions="modal", sevenths=0.4, reverb=(0.45, 0.95), dynamics=0.15, layers=0.4),
    Genre("electronic", tempo=(116, 136), modes={"major": 0.2, "minor": 0.55, "dorian": 0.25}, meters={4: 1.0},
          lead={"synth_lead": 0.45, "voice": 0.2, "bell": 0.15, "pluck": 0.1, "brass": 0.1},
          harmony={"pad": 0.45, "pluck": 0.25, "brass": 0.15, "organ": 0.15},
          comping={"pluck": "arpeggio", "organ": "stabs"}, bass=0.95, bass_variant={"synth": 0.85, "round": 0.15},
          bass_styles={"offbeat": 0.5, "eighths": 0.3, "syncopated": 0.2},
          drums=0.95, drum_patterns={"four_floor": 0.75, "breakbeat": 0.25}, kit="electronic", density=1.1,
          swing=(0.0, 0.12), register=72, progressions="pop", sevenths=0.2, reverb=(0.15, 0.55), dynamics=0.1,
          layers=0.35),
    Genre("rock", tempo=(96, 152), modes={"major": 0.5, "minor": 0.4, "dorian": 0.1}, meters={4: 1.0},
          lead={"synth_lead": 0.3, "voice": 0.3, "organ": 0.2, "brass": 0.2},
          harmony={"pluck": 0.45, "organ": 0.3, "brass": 0.15, "strings": 0.1},
          comping={"pluck": "strum", "brass": "stabs"}, bass=0.95, bass_variant={"synth": 0.6, "round": 0.4},
          bass_styles={"eighths": 0.6, "root_fifth": 0.2, "syncopated": 0.2},
          drums=0.95, drum_patterns={"rock": 0.6, "halftime": 0.2, "breakbeat": 0.2}, kit="acoustic", density=0.9,
          swing=(0.0, 0.06), register=69, progressions="pop", sevenths=0.05, reverb=(0.1, 0.5), dynamics=0.15,
          layers=0.3),
    Genre("jazz", tempo=(78, 172), modes={"major": 0.4, "minor": 0.2, "dorian": 0.4}, meters={4: 0.85, 3: 0.15},
          lead={"brass": 0.35, "epiano": 0.2, "voice": 0.15, "flute": 0.15, "organ": 0.15},
          harmony={"epiano": 0.55, "organ": 0.25, "pluck": 0.2}, comping={"organ": "comp", "pluck": "comp"},
          bass=0.95, bass_variant={"upright": 0.8, "round": 0.2}, bass_styles={"walking": 1.0},
          drums=0.8, drum_patterns={"swing": 1.0}, kit="jazz", density=1.15, swing=(0.45, 0.66), register=70,
          progressions="jazz", sevenths=0.9, reverb=(0.15, 0.5), dynamics=0.25, layers=0.2),
    Genre("folk", tempo=(74, 130), modes={"major": 0.6, "minor": 0.25, "dorian": 0.15}, meters={4: 0.6, 3: 0.4},
          lead={"flute": 0.3, "voice": 0.35, "strings": 0.2, "pluck": 0.15},
          harmony={"pluck": 0.7, "strings": 0.15, "organ": 0.15}, comping={"pluck": "strum"},
          bass=0.6, bass_variant={"upright": 0.6, "round": 0.4}, bass_styles={"root_fifth": 0.8, "root": 0.2},
          drums=0.4, drum_patterns={"folk": 1.0}, kit="acoustic", density=0.85, swing=(0.0, 0.2), register=72,
          progressions="pop", sevenths=0.05, reverb=(0.15, 0.55), dynamics=0.2, layers=0.3),
    Genre("classical", tempo=(58, 140), modes={"major": 0.5, "minor": 0.5}, meters={4: 0.6, 3: 0.4},
          lead={"strings": 0.3, "flute": 0.3, "brass": 0.15, "organ": 0.15, "bell": 0.1},
          harmony={"strings": 0.55, "organ": 0.25, "pluck": 0.2}, comping={"pluck": "arpeggio"},
          bass=0.5, bass_variant={"round": 0.5, "upright": 0.5}, bass_styles={"root": 0.7, "root_fifth": 0.3},
          drums=0.0, drum_patterns={"folk": 1.0}, kit="acoustic", density=0.9, swing=(0.0, 0.04), register=74,
          progressions="classical", sevenths=0.15, reverb=(0.4, 0.85), dynamics=0.3, layers=0.35),
)}

ARTISTS = {a.slug: a for a in (
    Artist("Glass Harbour", "glass_harbour", "ambient", favourites={"bell": 3.0, "pad": 2.0, "epiano": 1.5},
           keys=(4, 9, 11), mode_bias={"major": 1.5}, tempo_offset=-4, motif=((0, 0), (4, 2), (8, 4), (12, 7)),
           motif_rate=0.5, gate=0.95, reverb=0.15, brightness=1.2, vibrato=5),
    Artist("Nimbus Field", "nimbus_field", "ambient", favourites={"flute": 2.5, "voice": 2.0, "strings": 2.5},
           keys=(2, 5, 0), mode_bias={"dorian": 2.0}, tempo_offset=6, motif=((0, 4), (6, 3), (8, 1), (12, 0)),
           motif_rate=0.5, gate=0.85, reverb=0.0, brightness=0.8, vibrato=20),
    Artist("Pulse Engine", "pulse_engine", "electronic", favourites={"synth_lead": 3.0, "pluck": 2.0, "brass": 1.5},
           keys=(9, 7, 6), mode_bias={"minor": 2.0}, tempo_offset=4,
           motif=((0, 0), (2, 0), (3, 7), (6, 5), (8, 4)), motif_rate=0.6, gate=0.4, reverb=-0.1, brightness=1.4,
           vibrato=0),
    Artist("Neon Orchard", "neon_orchard", "electronic", favourites={"voice": 2.5, "bell": 2.0, "pad": 2.0},
           keys=(0, 3, 5), mode_bias={"dorian": 1.5}, tempo_offset=-3, motif=((0, 2), (3, 1), (6, 0), (10, -1)),
           motif_rate=0.5, gate=0.75, reverb=0.15, brightness=0.9, vibrato=15, drum_bias={"breakbeat": 2.0}),
    Artist("Rust Parade", "rust_parade", "rock", favourites={"organ": 3.0, "synth_lead": 2.0}, keys=(4, 9, 2),
           mode_bias={"major": 1.5}, tempo_offset=12, motif=((0, 0), (2, 2), (4, 4), (6, 2), (8, 0)),
           motif_rate=0.5, gate=0.7, reverb=-0.05, brightness=1.3, vibrato=8),
    Artist("Iron Meadow", "iron_meadow", "rock", favourites={"brass": 2.5, "pluck": 2.0, "voice": 1.5},
           keys=(7, 0, 5), mode_bias={"minor": 1.5}, tempo_offset=-12, motif=((0, 4), (4, 4), (6, 3), (8, 2), (12, 0)),
           motif_rate=0.5, gate=0.85, reverb=0.1, brightness=0.85, vibrato=15, drum_bias={"halftime": 3.0}),
    Artist("Blue Lantern Trio", "blue_lantern_trio", "jazz", favourites={"epiano": 2.5, "brass": 1.5, "voice": 1.5},
           keys=(5, 10, 3), mode_bias={"major": 1.5}, tempo_offset=-20,
           motif=((0, 4), (3, 3), (6, 1), (8, -1), (10, 0)), motif_rate=0.5, gate=0.9, reverb=0.1, brightness=0.8,
           vibrato=12, swing=0.05),
    Artist("Velvet Quarter", "velvet_quarter", "jazz", favourites={"organ": 2.5, "flute": 2.0}, keys=(0, 7, 2),
           mode_bias={"dorian": 2.0}, tempo_offset=20, motif=((0, 0), (1, 1), (2, 2), (3, 4), (6, 3)),
           motif_rate=0.5, gate=0.5, reverb=-0.05, brightness=1.1, vibrato=6),
    Artist("Willow Road", "willow_road", "folk", favourites={"voice": 3.0, "pluck": 2.0}, keys=(7, 2, 0),
           mode_bias={"major": 1.5}, tempo_offset=-6, motif=((0, 0), (4, 2), (6, 1), (8, 0)), motif_rate=0.5,
           gate=0.85, reverb=0.0, brightness=0.9, vibrato=25, meter_bias={3: 2.0}),
    Artist("Copper Kettle", "copper_kettle", "folk", favourites={"flute": 2.5, "strings": 2.5}, keys=(9, 4, 2),
           mode_bias={"dorian": 1.5}, tempo_offset=12, motif=((0, 0), (1, 1), (2, 2), (3, 1), (4, 0), (6, 4)),
           motif_rate=0.5, gate=0.5, reverb=-0.05, brightness=1.2, vibrato=10),
    Artist("Aurora Consort", "aurora_consort", "classical", favourites={"strings": 3.0, "flute": 1.5, "pluck": 1.5},
           keys=(2, 9, 4), mode_bias={"minor": 1.5}, tempo_offset=-10, motif=((0, 0), (4, -1), (8, -2), (12, -3)),
           motif_rate=0.5, gate=0.95, reverb=0.1, brightness=0.9, vibrato=18),
    Artist("Stone Chapel", "stone_chapel", "classical", favourites={"organ": 3.0, "brass": 2.0, "bell": 1.5},
           keys=(0, 5, 7), mode_bias={"major": 1.5}, tempo_offset=5, motif=((0, 0), (8, 4), (12, 3)), motif_rate=0.5,
           gate=0.8, reverb=0.15, brightness=1.1, vibrato=0),
)}


def tempo_class(bpm: float) -> str:
    """The tempo tag (``slow``, ``medium`` or ``fast``) of a tempo in BPM."""
    return next(name for name, low, high in TEMPO_CLASSES if low <= bpm < high)
