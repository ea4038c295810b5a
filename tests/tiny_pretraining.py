"""Shared by the pretraining scenario tests: a tiny audio folder, a tiny SampleCNN config, running the real CLI."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from clmr_lib.config import load_config

REPO = Path(__file__).resolve().parent.parent

#: A SampleCNN small enough for a CPU test (729-sample crops at 16 kHz), checkpoints every step.
TINY = {"sample_rate": 16000, "audio_length": 729, "sample_cnn_channels": [8, 8, 8, 8, 8, 8, 16],
        "sample_cnn_strides": [3, 3, 3, 3, 3], "batch_size": 2, "workers": 0, "progress": False,
        "checkpoint_every_n_steps": 1, "checkpoint_every_n_epochs": 0, "log_every_n_steps": 1}

NO_AUGMENTATION = {f"transforms_{key}": 0.0 for key in
                   ("polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")}


@pytest.fixture
def single_thread():
    """One intra-op thread while a test trains: tiny kernels stall with two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_folder(folder: Path, make_audio_file, count: int = 8) -> Path:
    """``count`` short WAV files of different pitches."""
    for i in range(count):
        make_audio_file(folder / f"t{i}.wav", seconds=0.3, sample_rate=16000, frequency=200 + 40 * i)
    return folder


def tiny_config(folder: Path, log_dir: Path, **overrides) -> dict:
    """The full configuration of a tiny pretraining run on ``folder``."""
    config = load_config()
    config.update(TINY, dataset="audio", dataset_dir=str(folder), log_dir=str(log_dir), max_epochs=2)
    config.update(overrides)
    return config


def write_yaml(config: dict, path: Path) -> Path:
    """Write the keys the CLI accepts (those of config/config.yaml) as a ``--config`` file."""
    known = set(load_config())
    path.write_text(yaml.safe_dump({k: v for k, v in config.items() if k in known}))
    return path


def cli_command(*args: str) -> list[str]:
    """``python pretrain.py ARGS`` as a user runs it."""
    return [sys.executable, str(REPO / "pretrain.py"), *args]


def cli_env() -> dict:
    """Environment of CLI subprocesses: one OpenMP thread each (a busy 2-core machine stalls otherwise)."""
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


def run_cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the pretraining CLI to completion and capture its output."""
    return subprocess.run(cli_command(*args), cwd=REPO, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def load(path) -> dict:
    """A checkpoint, loaded as the library loads them."""
    return torch.load(path, map_location="cpu", weights_only=True)


def assert_same_tensors(a: dict, b: dict) -> None:
    """Bit-for-bit equality of two (nested) state dicts."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            assert_same_tensors(a[key], b[key])
        elif isinstance(a[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
