"""Tests of the synthetic dataset generator (clmr_lib.data.synthetic and clmr_lib.data.synth)."""
from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clmr_lib.data.synth.instruments import INSTRUMENTS, draw_timbre
from clmr_lib.data.synth.layout import assign_artists, assign_splits
from clmr_lib.data.synth.oscillators import render_notes
from clmr_lib.data.synth.piece import make_piece
from clmr_lib.data.synth.render import AUDIBLE
from clmr_lib.data.synth.styles import tempo_class
from clmr_lib.data.synth.theory import midi_to_hz, third_quality
from clmr_lib.data.synthetic import ARTISTS, GENRES, SYNTHETIC_DEFAULTS, TAGS, generate_synthetic, main
from clmr_lib.errors import UserError

SMALL = {"seed": 0, "num_pieces": 24, "seconds": 2.0, "sample_rate": 8000}
HEADER = "path,split,piece,tags,genre,artist,tempo_bpm,key,mode"


def _rows(root: Path) -> list:
    with open(root / "metadata.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _digests(root: Path) -> dict:
    """SHA-256 of every file under ``root``, keyed by relative path."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("synthetic") / "data"
    info = generate_synthetic(str(root), workers=1, progress=False, **SMALL)
    return root, info


def test_constants_describe_genres_artists_and_tags():
    assert set(SYNTHETIC_DEFAULTS) == {"seed", "num_pieces", "seconds", "sample_rate", "workers"}
    assert 5 <= len(GENRES) <= 6 and 10 <= len(ARTISTS) <= 12
    assert 12 <= len(TAGS) <= 20 and list(TAGS) == sorted(TAGS)
    for artist in ARTISTS.values():
        assert artist.genre in GENRES
        assert set(artist.favourites) <= set(INSTRUMENTS)
    assert all(sum(a.genre == g for a in ARTISTS.values()) >= 2 for g in GENRES)


def test_layout_header_and_dataset_json(small):
    root, info = small
    assert sorted(p.name for p in root.iterdir()) == ["README.md", "audio", "dataset.json", "metadata.csv"]
    assert (root / "metadata.csv").read_text(encoding="utf-8").splitlines()[0] == HEADER
    assert json.loads((root / "dataset.json").read_text(encoding="utf-8")) == info
    assert info["name"] == "synthetic" and info["generator_version"] == 1
    assert (info["seed"], info["sample_rate"], info["num_pieces"], info["seconds"]) == (0, 8000, 24, 2.0)
    assert info["params"]["num_pieces"] == 24 and info["params"]["sample_rate"] == 8000
    tasks = info["tasks"]
    assert tasks["tags"] == {"type": "multilabel", "column": "tags", "classes": sorted(TAGS)}
    assert tasks["genre"] == {"type": "multiclass", "column": "genre", "classes": sorted(GENRES)}
    assert tasks["artist"] == {"type": "multiclass", "column": "artist", "classes": sorted(ARTISTS)}
    rows = _rows(root)
    assert [r["piece"] for r in rows] == [f"piece_{i:05d}" for i in range(24)]
    for i, row in enumerate(rows):
        extension = "flac" if i % 4 == 3 else "wav"
        assert row["path"] == f"audio/{row['artist']}/{row['piece']}.{extension}"
        assert row["genre"] == ARTISTS[row["artist"]].genre
    assert not list(root.rglob("*.partial"))
    assert "metadata.csv" in (root / "README.md").read_text(encoding="utf-8")


def test_every_file_decodes_at_the_stated_rate_and_length(small):
    root, info = small
    frames = int(info["seconds"] * info["sample_rate"])
    for row in _rows(root):
        audio, rate = sf.read(root / row["path"], dtype="float64")
        assert rate == info["sample_rate"] and audio.shape == (frames,)
        assert sf.info(str(root / row["path"])).subtype == "PCM_16"
        assert np.isfinite(audio).all()
        assert np.abs(audio).max() <= 10 ** (-1 / 20) + 1 / 32768
        assert np.sqrt(np.mean(audio ** 2)) > 1e-3


def test_splits_are_by_piece_and_every_artist_trains(small):
    rows = _rows(small[0])
    assert len({r["piece"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} <= {"train", "valid", "test"}
    assert {r["artist"] for r in rows if r["split"] == "train"} == set(ARTISTS)
    assert Counter(r["split"] for r in rows) == {"train": 17, "test": 5, "valid": 2}
    artists = assign_artists(3, 400)
    assert max(Counter(artists).values()) - min(Counter(artists).values()) <= 1
    splits = assign_splits(3, artists)
    assert Counter(splits) == {"train": 280, "valid": 40, "test": 80}
    for slug in ARTISTS:
        counts = Counter(s for a, s in zip(artists, splits) if a == slug)
        n = sum(counts.values())
        assert abs(counts["valid"] - 0.1 * n) <= 1 and abs(counts["test"] - 0.2 * n) <= 1


def test_same_seed_is_byte_identical_whatever_the_workers(small, tmp_path):
    root, _ = small
    generate_synthetic(str(tmp_path / "again"), workers=2, progress=False, **SMALL)
    assert _digests(tmp_path / "again") == _digests(root)


def test_other_seed_gives_other_music(small, tmp_path):
    other = tmp_path / "other"
    generate_synthetic(str(other), workers=1, progress=False, **{**SMALL, "seed": 1})
    ours, theirs = _digests(small[0]), _digests(other)
    audio = lambda d: {h for p, h in d.items() if p.startswith("audio/")}  # noqa: E731
    assert not audio(ours) & audio(theirs)
    assert ours["metadata.csv"] != theirs["metadata.csv"]


def test_rerun_is_a_noop_and_other_params_are_refused(small):
    root, info = small
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    assert generate_synthetic(str(root), workers=1, progress=False, **SMALL) == info
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == before
    with pytest.raises(UserError, match="other parameters"):
        generate_synthetic(str(root), workers=1, progress=False, **{**SMALL, "seconds": 3.0})


def test_interrupted_run_is_completed_and_foreign_folders_refused(tmp_path):
    root = tmp_path / "data"
    params = {**SMALL, "num_pieces": 3, "seconds": 0.5}
    generate_synthetic(str(root), workers=1, progress=False, **params)
    complete = _digests(root)
    (root / "dataset.json").unlink()
    stale = root / "audio" / "stone_chapel" / "piece_09999.wav"
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_bytes(b"left over")
    generate_synthetic(str(root), workers=1, progress=False, **params)
    assert _digests(root) == complete
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my files")
    with pytest.raises(UserError, match="not empty"):
        generate_synthetic(str(tmp_path / "mine"), workers=1, progress=False, **params)


def test_tags_match_the_columns_and_what_was_rendered(small):
    root, info = small
    rows = _rows(root)
    seen = Counter()
    for row in rows:
        tags = row["tags"].split(";")
        assert set(tags) <= set(TAGS)
        assert tempo_class(float(row["tempo_bpm"])) in tags
        assert sum(t in tags for t in ("slow", "medium", "fast")) == 1
        assert third_quality(row["mode"]) in tags and sum(t in tags for t in ("major", "minor")) == 1
        piece = make_piece(info["seed"], int(row["piece"][-5:]), row["artist"], info["seconds"], info["sample_rate"])
        assert piece.tags == tags
        decoded, _ = sf.read(root / row["path"], dtype="float64")
        assert np.abs(decoded - piece.audio).max() <= 0.5 / 32768 + 1e-9
        stems, mix = piece.rendered.stem_rms, piece.rendered.mix_rms
        assert ("drums" in tags) == (piece.score.drums is not None and stems.get("drums", 0) >= AUDIBLE * mix)
        played = {INSTRUMENTS[p.instrument].tag for p in piece.score.parts}
        for tag in played | {"drums"}:
            assert (tag in tags) == (stems.get(tag, 0.0) >= AUDIBLE * mix)
        assert not set(tags) & (set(t.tag for t in INSTRUMENTS.values()) - played)
        seen.update(tags)
    assert seen["drums"] and seen["drums"] < len(rows)


@pytest.mark.parametrize("name", sorted(set(INSTRUMENTS) - {"flute"}))
def test_instruments_are_band_limited(name):
    rate = 8000
    rng = np.random.default_rng(0)
    inst = INSTRUMENTS[name]
    pitches = np.arange(36, 100, 5.0)
    onsets = (np.arange(len(pitches)) * 0.25 * rate).astype(np.int64)
    audio = render_notes(inst.voice, inst.release, onsets, np.full(len(pitches), 0.2), midi_to_hz(pitches),
                         np.ones(len(pitches)), int(len(pitches) * 0.25 * rate) + rate, rate, rng,
                         draw_timbre(name, rng, variant="synth"))
    power = np.abs(np.fft.rfft(audio)) ** 2
    freq = np.fft.rfftfreq(len(audio), 1 / rate)
    assert np.isfinite(audio).all() and power.sum() > 0
    assert power[freq > 0.47 * rate].sum() < 1e-4 * power.sum()


def test_bad_parameters_and_command_line(tmp_path, capsys):
    with pytest.raises(UserError, match="num_pieces"):
        generate_synthetic(str(tmp_path / "x"), num_pieces=0, progress=False)
    with pytest.raises(UserError, match="sample_rate"):
        generate_synthetic(str(tmp_path / "x"), sample_rate=4000, progress=False)
    args = ["--root", str(tmp_path / "cli"), "--num_pieces", "2", "--seconds", "0.5", "--sample_rate", "8000",
            "--workers", "1", "--no_progress"]
    assert main(args) == 0 and (tmp_path / "cli" / "dataset.json").is_file()
    assert main(args[:2] + ["--seconds", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: seconds")
