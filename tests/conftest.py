"""Shared pytest fixtures: real audio files of every format we read, and a mixed folder of them."""
from __future__ import annotations

import os
import zlib
from types import SimpleNamespace
from typing import Optional

import numpy as np
import pytest
import soundfile as sf


def make_signal(seconds: float, sample_rate: int, channels: int = 1, frequency: float = 440.0,
                noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """A deterministic test signal: a sine plus a little noise, one variant per channel.

    Returns float32 ``(frames,)`` for mono, ``(frames, channels)`` otherwise.
    """
    frames = int(round(seconds * sample_rate))
    rng = np.random.default_rng(seed)
    time = np.arange(frames) / sample_rate
    columns = [(0.5 / (1 + c)) * np.sin(2 * np.pi * frequency * (1 + 0.25 * c) * time)
               + noise * rng.standard_normal(frames) for c in range(channels)]
    data = np.stack(columns, axis=1).astype(np.float32)
    return data[:, 0] if channels == 1 else data


def write_audio_file(path, seconds: float = 1.0, sample_rate: int = 22050, channels: int = 1,
                     format: Optional[str] = None, subtype: Optional[str] = None, frequency: float = 440.0,
                     noise: float = 0.05, **options) -> str:
    """Write a test signal with soundfile directly (independent of the code under test)."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    seed = zlib.crc32(os.path.basename(path).encode())
    data = make_signal(seconds, sample_rate, channels, frequency, noise, seed)
    sf.write(path, data, sample_rate, subtype=subtype, format=format, **options)
    return path


def write_broken_files(folder) -> dict:
    """Files no reader should accept, by kind: corrupt, empty, header-only and truncated ones."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    files = {}
    # Fixed seeds: libsndfile rejects these byte strings (a random string could parse as MPEG).
    for kind, name, seed in (("corrupt_mp3", "corrupt.mp3", 0), ("corrupt_wav", "corrupt.wav", 1)):
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(np.random.default_rng(seed).integers(0, 256, 8192, dtype=np.uint8).tobytes())
        files[kind] = path
    files["empty"] = os.path.join(folder, "empty.flac")
    open(files["empty"], "wb").close()
    # A valid WAV header that announces zero frames.
    files["no_frames"] = os.path.join(folder, "no_frames.wav")
    sf.write(files["no_frames"], np.zeros(0, dtype=np.float32), 22050)
    # Valid headers whose data were cut off, as by an interrupted copy or download.
    for kind, name in (("truncated_wav", "truncated.wav"), ("truncated_mp3", "truncated.mp3")):
        full = write_audio_file(os.path.join(folder, "full_" + name), seconds=3.0, sample_rate=22050)
        with open(full, "rb") as handle:
            data = handle.read()
        os.remove(full)
        path = os.path.join(folder, name)
        with open(path, "wb") as handle:
            handle.write(data[:len(data) // 2])
        files[kind] = path
    return files


@pytest.fixture
def make_audio_file():
    """Factory: ``make_audio_file(path, seconds, sample_rate, channels, format, subtype, ...)`` -> path.

    The format follows the extension unless given; ``subtype`` picks e.g. ``"PCM_16"`` or
    ``"FLOAT"``; extra keywords (``compression_level``, ``bitrate_mode``) go to ``soundfile.write``.
    """
    return write_audio_file


@pytest.fixture
def broken_audio_files(tmp_path):
    """Dict of unreadable files: corrupt_mp3, corrupt_wav, empty, no_frames, truncated_wav, truncated_mp3."""
    return write_broken_files(tmp_path / "broken")


@pytest.fixture
def audio_tree(tmp_path):
    """A folder mixing readable audio of every format, broken files, a short file and non-audio.

    Returns a namespace: ``root``; ``readable`` (relative paths, sorted, excluding the short
    file); ``short`` (1 s, shorter than a 59,049-sample crop at 22,050 Hz); ``broken`` (relative
    path -> words its skip reason contains); ``ignored`` (relative paths that must not be listed).
    """
    root = tmp_path / "music"
    readable = {
        "a_mono.wav": dict(sample_rate=22050, channels=1),
        "b_stereo.flac": dict(sample_rate=44100, channels=2),
        "sub/c_stereo.ogg": dict(sample_rate=48000, channels=2),
        "sub/deeper/d_mono.mp3": dict(sample_rate=44100, channels=1),
        "sub/E_FLOAT.WAV": dict(sample_rate=8000, channels=1, subtype="FLOAT", format="WAV"),
    }
    for relative, options in readable.items():
        write_audio_file(root / relative, seconds=3.0, **options)
    short = "short.wav"
    write_audio_file(root / short, seconds=1.0, sample_rate=22050)
    broken_paths = write_broken_files(root / "broken")
    reasons = {"corrupt_mp3": "not a recognised audio format", "corrupt_wav": "not a recognised audio format",
               "empty": "empty file", "no_frames": "0 frames", "truncated_wav": "truncated",
               "truncated_mp3": "truncated"}
    broken = {os.path.relpath(path, root).replace(os.sep, "/"): reasons[kind] for kind, path in broken_paths.items()}
    ignored = ["notes.txt", ".hidden.wav", ".hidden_dir/x.wav", "sub/cover.jpg"]
    (root / "notes.txt").write_text("not audio\n")
    (root / "sub" / "cover.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    write_audio_file(root / ".hidden.wav", seconds=3.0)
    write_audio_file(root / ".hidden_dir" / "x.wav", seconds=3.0)
    return SimpleNamespace(root=str(root), readable=sorted(readable), short=short, broken=broken, ignored=ignored)
