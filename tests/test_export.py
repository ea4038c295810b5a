"""Embedding export: files per track, index, atomic and resumable writes, skipped files, the command line."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from clmr_lib.checkpoints import frozen
from clmr_lib.cli.export import main
from clmr_lib.data.audio_io import read_audio
from clmr_lib.errors import UserError
from clmr_lib.export import export_embeddings
from clmr_lib.models import SampleCNN
from conftest import write_audio_file

MUSICFM = Path(__file__).parent / "fixtures" / "musicfm_tiny"
TINY = dict(channels=[8, 8, 8, 16, 16, 16, 32], strides=[3] * 5, sample_rate=8000, audio_length=729)


@pytest.fixture
def encoder() -> SampleCNN:
    torch.manual_seed(0)
    model = frozen(SampleCNN(**TINY))
    model.frame_hop = 2000
    return model


@pytest.fixture
def audio_dir(tmp_path) -> Path:
    """Two readable files (other rates, stereo, a sub-folder) and two that cannot be read."""
    root = tmp_path / "music"
    write_audio_file(root / "a.wav", seconds=1.5, sample_rate=16000)
    write_audio_file(root / "sub" / "b.flac", seconds=1.0, sample_rate=44100, channels=2)
    (root / "broken.wav").write_bytes(b"RIFF not really a wave file")
    (root / "empty.mp3").write_bytes(b"")
    return root


def read_index(out: Path) -> dict[str, dict]:
    with open(out / "index.csv", newline="", encoding="utf-8") as handle:
        return {row["track"]: row for row in csv.DictReader(handle)}


def test_export_writes_one_file_per_track_and_an_index(encoder, audio_dir, tmp_path):
    out = tmp_path / "out"
    summary = export_embeddings(encoder, audio_dir, out, level="both", name="tiny", progress=False)
    assert (summary["n_tracks"], summary["exported"], summary["reused"]) == (4, 2, 0)
    assert {s["track"] for s in summary["skipped"]} == {"broken.wav", "empty.mp3"}

    clip = np.load(out / "a.wav.clip.npy")
    frames = np.load(out / "sub" / "b.flac.frames.npy")
    timestamps = np.load(out / "sub" / "b.flac.timestamps.npy")
    assert clip.shape == (32,) and clip.dtype == np.float32
    assert frames.shape == (4, 32) and timestamps.tolist() == [0.0, 0.25, 0.5, 0.75]
    expected = encoder.clip_embeddings(torch.from_numpy(read_audio(str(audio_dir / "a.wav"), 8000)))
    np.testing.assert_allclose(clip, expected[0].numpy(), atol=1e-6)

    rows = read_index(out)
    assert list(rows) == ["a.wav", "broken.wav", "empty.mp3", "sub/b.flac"]
    assert rows["a.wav"]["status"] == "ok" and float(rows["a.wav"]["duration_seconds"]) == pytest.approx(1.5)
    assert rows["sub/b.flac"]["frames"] == "sub/b.flac.frames.npy" and rows["sub/b.flac"]["n_frames"] == "4"
    assert rows["broken.wav"]["status"] == "skipped" and rows["broken.wav"]["reason"]
    assert "empty" in rows["empty.mp3"]["reason"]
    document = json.loads((out / "index.json").read_text())
    assert document["settings"]["encoder"] == "tiny" and len(document["tracks"]) == 4
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["sample_rate"] == 8000 and manifest["frame_rate"] == 4.0 and manifest["level"] == "both"
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_export_resumes_and_refuses_other_settings(encoder, audio_dir, tmp_path):
    out = tmp_path / "out"
    export_embeddings(encoder, audio_dir, out, level="clip", progress=False)
    first = out / "a.wav.clip.npy"
    stamp = first.stat().st_mtime_ns
    (out / "sub" / "b.flac.clip.npy").unlink()  # as if interrupted before this track
    summary = export_embeddings(encoder, audio_dir, out, level="clip", progress=False)
    assert (summary["exported"], summary["reused"], len(summary["skipped"])) == (1, 1, 2)
    assert first.stat().st_mtime_ns == stamp and (out / "sub" / "b.flac.clip.npy").is_file()
    assert float(read_index(out)["a.wav"]["duration_seconds"]) == pytest.approx(1.5)

    with pytest.raises(UserError, match="--overwrite"):
        export_embeddings(encoder, audio_dir, out, level="frames", progress=False)
    encoder.layer = 3
    with pytest.raises(UserError, match="another encoder"):
        export_embeddings(encoder, audio_dir, out, level="clip", progress=False)
    summary = export_embeddings(encoder, audio_dir, out, level="clip", overwrite=True, progress=False)
    assert summary["exported"] == 2 and np.load(first).shape == (16,)


def test_all_layers_export(encoder, audio_dir, tmp_path):
    encoder.layer = "all"
    export_embeddings(encoder, audio_dir, tmp_path / "out", level="both", progress=False)
    assert np.load(tmp_path / "out" / "a.wav.clip.npy").shape == (7, 32)
    assert np.load(tmp_path / "out" / "a.wav.frames.npy").shape == (6, 7, 32)


def test_command_line_with_a_checkpoint(encoder, audio_dir, tmp_path, capsys):
    checkpoint = tmp_path / "tiny.ckpt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
                "hyper_parameters": {"encoder_kwargs": TINY, "sample_rate": 8000}}, checkpoint)
    out = tmp_path / "cli"
    args = ["--checkpoint", str(checkpoint), "--audio_dir", str(audio_dir), "--export_dir", str(out),
            "--level", "frames", "--frame_hop_ms", "500", "--progress", "false"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "2 tracks embedded" in printed and "skipped broken.wav" in printed
    assert np.load(out / "a.wav.timestamps.npy").tolist() == [0.0, 0.5, 1.0]
    assert main(args) == 0 and "0 tracks embedded, 2 already there" in capsys.readouterr().out

    assert main(["--checkpoint", str(checkpoint), "--export_dir", str(out)]) == 2
    assert "--audio_dir" in capsys.readouterr().err
    assert main(["--checkpoint", str(checkpoint), "--audio_dir", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "does not exist" in error and "--audio_dir" in error


def test_musicfm_export(audio_dir, tmp_path):
    out = tmp_path / "mfm"
    args = ["--encoder", "musicfm", "--musicfm_checkpoint", str(MUSICFM / "checkpoint.pt"),
            "--musicfm_stats", str(MUSICFM / "stats.json"), "--musicfm_layer", "1", "--audio_dir", str(audio_dir),
            "--export_dir", str(out), "--level", "both", "--progress", "false"]
    assert main(args) == 0
    frames = np.load(out / "a.wav.frames.npy")
    assert frames.shape == (38, 64)  # 1.5 s at 25 Hz (36,000 samples at 24 kHz -> ceil(150 / 4))
    np.testing.assert_allclose(np.load(out / "a.wav.timestamps.npy")[:3], [0.0, 0.04, 0.08])
    np.testing.assert_allclose(np.load(out / "a.wav.clip.npy"), frames.mean(0), atol=1e-6)
    assert json.loads((out / "export.json").read_text())["encoder"] == "musicfm_checkpoint_layer1"
    assert main(args + ["--frame_hop_ms", "20"]) == 2
    assert os.path.exists(out / "index.csv")


def test_bf16_export_is_recorded_and_not_mixed_with_float32(encoder, audio_dir, tmp_path):
    out = tmp_path / "bf16"
    export_embeddings(encoder, audio_dir, out, precision="bf16-mixed", progress=False)
    assert json.loads((out / "export.json").read_text())["precision"] == "bf16-mixed"
    half = np.load(out / "a.wav.clip.npy")
    full_dir = tmp_path / "fp32"
    export_embeddings(encoder, audio_dir, full_dir, progress=False)
    full = np.load(full_dir / "a.wav.clip.npy")
    assert half.dtype == np.float32 and not np.array_equal(half, full)
    assert np.dot(half, full) / (np.linalg.norm(half) * np.linalg.norm(full)) > 0.99
    with pytest.raises(UserError):
        export_embeddings(encoder, audio_dir, out, progress=False)  # float32 into the bf16 folder
