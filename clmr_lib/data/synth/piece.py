"""One piece end to end: its own seeded random generator, composition, rendering and labels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from clmr_lib.data.synth.composer import Score, compose
from clmr_lib.data.synth.render import Rendered, derive_tags, render_score
from clmr_lib.data.synth.styles import ARTISTS


@dataclass
class Piece:
    """A generated piece: its clip, labels and the score and stems they were derived from."""

    index: int
    piece_id: str
    artist: str
    genre: str
    audio: np.ndarray
    tags: list
    score: Score
    rendered: Rendered


def piece_id(index: int) -> str:
    """Identifier of piece ``index``, e.g. ``piece_00042``."""
    return f"piece_{index:05d}"


def piece_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of one piece: depends on (seed, index) only, not on worker scheduling."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, index)))


def make_piece(seed: int, index: int, artist: str, seconds: float, sample_rate: int) -> Piece:
    """Compose, render and label piece ``index`` of the dataset with ``seed``.

    Args:
        seed: Dataset seed.
        index: Piece index.
        artist: Slug of the persona playing it.
        seconds: Clip length.
        sample_rate: Sample rate in Hz.
    """
    rng = piece_rng(seed, index)
    score = compose(rng, ARTISTS[artist], seconds)
    rendered = render_score(score, seconds, sample_rate, rng)
    return Piece(index, piece_id(index), artist, score.genre, rendered.audio, derive_tags(score, rendered), score,
                 rendered)
