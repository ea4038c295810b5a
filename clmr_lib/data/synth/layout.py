"""The on-disk labelled-folder layout: artist assignment, splits, audio files, metadata.csv, README."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from clmr_lib.data.synth.piece import make_piece, piece_id
from clmr_lib.data.synth.styles import ARTISTS
from clmr_lib.data.synth.theory import NOTE_NAMES

COLUMNS = ("path", "split", "piece", "tags", "genre", "artist", "tempo_bpm", "key", "mode")
SPLITS = {"train": 0.7, "valid": 0.1, "test": 0.2}
# Every FLAC_EVERY-th piece (index % FLAC_EVERY == FLAC_EVERY - 1) is written as FLAC, the rest
# as WAV, so that the example folder exercises both readers.
FLAC_EVERY = 4
PIECE_FILE = re.compile(r"piece_\d{5}\.(wav|flac)$")
TEMP_SUFFIX = ".partial"


def assign_artists(seed: int, num_pieces: int) -> list:
    """Artist slug of each piece: balanced (counts differ by at most one), in a seeded order."""
    slugs = list(ARTISTS)
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1,)))
    return [slugs[i] for i in rng.permutation(np.arange(num_pieces) % len(slugs))]


def assign_splits(seed: int, artists: list) -> list:
    """Split of each piece, stratified by artist (about 70/10/20 %), with every artist in train.

    Each artist's valid and test counts are its share rounded with the rounding error carried on to
    the next artist, so that small datasets still get valid and test pieces overall.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))
    splits = [""] * len(artists)
    carry = {"test": 0.0, "valid": 0.0}
    for slug in ARTISTS:
        indices = [i for i, a in enumerate(artists) if a == slug]
        counts = {}
        for name in ("test", "valid"):
            wanted = SPLITS[name] * len(indices) + carry[name]
            counts[name] = max(0, min(int(np.floor(wanted + 0.5)), len(indices) - 1 - sum(counts.values())))
            carry[name] = wanted - counts[name]
        labels = ["test"] * counts["test"] + ["valid"] * counts["valid"]
        labels += ["train"] * (len(indices) - len(labels))
        for index, label in zip(rng.permutation(indices), labels):
            splits[index] = label
    return splits


def relative_path(index: int, artist: str) -> str:
    """Path of a piece's audio relative to the dataset root (forward slashes)."""
    extension = "flac" if index % FLAC_EVERY == FLAC_EVERY - 1 else "wav"
    return f"audio/{artist}/{piece_id(index)}.{extension}"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``.

    The temporary name carries the process id, so that processes generating the same dataset at
    once (one per distributed rank) never write into each other's temporary files.
    """
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)


def write_piece(job: tuple) -> dict:
    """Render one piece, write its audio atomically as 16-bit PCM and return its metadata row.

    Args:
        job: ``(root, seed, index, artist, split, seconds, sample_rate)``; one tuple so that it can
            be mapped over a process pool.
    """
    root, seed, index, artist, split, seconds, sample_rate = job
    piece = make_piece(seed, index, artist, seconds, sample_rate)
    rel = relative_path(index, artist)
    target = Path(root) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    # Rounded to int16 here rather than by libsndfile, so the bytes do not depend on its rounding;
    # scaled by 32768 as readers divide by it (peaks are at most -1 dBFS, so nothing clips).
    pcm = np.clip(np.round(piece.audio.astype(np.float64) * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(buffer, pcm, sample_rate, format="FLAC" if rel.endswith(".flac") else "WAV", subtype="PCM_16")
    atomic_write_bytes(target, buffer.getvalue())
    score = piece.score
    return {"path": rel, "split": split, "piece": piece.piece_id, "tags": ";".join(piece.tags), "genre": piece.genre,
            "artist": artist, "tempo_bpm": f"{score.tempo:.1f}", "key": NOTE_NAMES[score.tonic], "mode": score.mode}


def metadata_csv(rows: list) -> bytes:
    """``metadata.csv`` content: header :data:`COLUMNS`, one row per piece, ``\\n`` line ends."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode("utf-8")


def stale_audio(root: Path, keep: set) -> list:
    """Piece files under ``root/audio`` that are not in ``keep`` (left by an interrupted run with
    other parameters)."""
    audio = root / "audio"
    if not audio.is_dir():
        return []
    found = []
    for folder in audio.iterdir():
        if folder.is_dir() and folder.name in ARTISTS:
            for file in folder.iterdir():
                rel = f"audio/{folder.name}/{file.name}"
                if rel not in keep and PIECE_FILE.match(file.name):
                    found.append(file)
    return found


def readme(info: dict, counts: dict) -> str:
    """The dataset's ``README.md``: layout, labels and how it was generated."""
    params = info["params"]
    tags = "\n".join(f"| {tag} | {counts['tags'].get(tag, 0)} |" for tag in info["tasks"]["tags"]["classes"])
    artists = "\n".join(f"| {a.slug} | {a.name} | {a.genre} | {counts['artist'].get(a.slug, 0)} |"
                        for a in ARTISTS.values())
    return f"""# Synthetic music dataset (clmr_lib)

{info['num_pieces']} clips of {info['seconds']:g} s at {info['sample_rate']} Hz (16-bit PCM), generated
deterministically and offline by `clmr_lib.data.synthetic` (generator version
{info['generator_version']}, seed {info['seed']}). Regenerate with:

    python -m clmr_lib.data.synthetic --root DIR --seed {info['seed']} --num_pieces {info['num_pieces']} \\
        --seconds {info['seconds']:g} --sample_rate {info['sample_rate']}

This folder is also the example of the *labelled folder* layout: copy it for your own music.

## Layout

    audio/<artist>/<piece>.wav|flac   one clip per piece (every {params['flac_every']}th piece is FLAC)
    metadata.csv                      path,split,piece,tags,genre,artist,tempo_bpm,key,mode
    dataset.json                      generation parameters and the tasks (written last)

`path` is relative to this folder; `split` is train, valid or test, drawn per piece and
stratified by artist (about 70/10/20 %); `tags` are separated by `;`.

## How it was made

Each piece is composed from its artist's persona within a genre (tempo range, key and mode
habits, instrument palette, accompaniment, bass and drum patterns, swing, articulation, room
size, signature motif), then rendered with band-limited additive, FM and modal (Karplus-Strong)
instruments with per-note envelopes, synthesised drums and a noise-tail room reverb, and
mastered to a random loudness with peaks at most {params['peak_dbfs']:g} dBFS.

Tags describe what was rendered: the audible instruments and drums, the tempo class
(slow < 90 <= medium < 120 <= fast BPM), the quality of the mode's third (major or minor;
dorian counts as minor), a large room (reverberant) and a lead held short (staccato).

## Tasks

- `tags`: multi-label, {len(info['tasks']['tags']['classes'])} classes
- `genre`: multi-class, {len(info['tasks']['genre']['classes'])} classes
- `artist`: multi-class, {len(info['tasks']['artist']['classes'])} classes

| tag | pieces |
|---|---|
{tags}

| artist | name | genre | pieces |
|---|---|---|---|
{artists}
"""
