"""Determinism: the same seed and settings give the same losses and weights on the CPU; another seed does not."""
import csv
import subprocess

import pytest

from clmr_lib.training.pretrain import run_pretraining
from tiny_pretraining import (REPO, assert_same_tensors, cli_command, cli_env, load, make_folder,  # noqa: F401
                              single_thread, tiny_config, write_yaml)

pytestmark = pytest.mark.usefixtures("single_thread")


def losses(run_dir):
    """``train/loss`` by step, from the run's CSV log."""
    (metrics,) = run_dir.glob("csv/version_*/metrics.csv")
    with open(metrics) as handle:
        return [(row["step"], row["train/loss"]) for row in csv.DictReader(handle) if row.get("train/loss")]


def test_two_runs_with_one_seed_repeat_and_another_seed_differs(tmp_path, make_audio_file):
    # Default augmentation probabilities: every transform draws random parameters.
    config = tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs", max_epochs=3)
    first = load(run_pretraining(dict(config, run_name="first")))
    second = load(run_pretraining(dict(config, run_name="second")))
    other = load(run_pretraining(dict(config, run_name="other", seed=7)))
    runs = tmp_path / "runs"
    assert len(losses(runs / "first")) == 12
    assert losses(runs / "first") == losses(runs / "second")
    assert_same_tensors(first["state_dict"], second["state_dict"])
    assert losses(runs / "other")[0] != losses(runs / "first")[0]


@pytest.mark.slow
def test_two_command_line_runs_log_the_same_losses(tmp_path, make_audio_file):
    config = tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs", max_epochs=3)
    yaml_path = write_yaml(config, tmp_path / "tiny.yaml")
    processes = [subprocess.Popen(cli_command("--config", str(yaml_path), "--run_name", name), cwd=REPO,
                                  env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for name in ("first", "second")]
    for process in processes:
        _, err = process.communicate(timeout=400)
        assert process.returncode == 0, err[-3000:]
    first, second = losses(tmp_path / "runs" / "first"), losses(tmp_path / "runs" / "second")
    assert len(first) == 12 and first == second
