"""Tests for clmr_lib.training.nonfinite: NaN steps are skipped without a trace, repeated ones stop the run."""
import math

import pytest
import torch
from lightning.pytorch.callbacks import Callback

import clmr_lib.training.pretrain as pretrain
from clmr_lib.cli.pretrain import main as pretrain_main
from clmr_lib.training.contrastive import ContrastiveLearning
from clmr_lib.training.nonfinite import NonFiniteLossError
from tiny_pretraining import (assert_same_tensors, load, make_folder, single_thread, tiny_config,  # noqa: F401
                              write_yaml)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def config(tmp_path, make_audio_file):
    return tiny_config(make_folder(tmp_path / "music", make_audio_file), tmp_path / "runs")


@pytest.fixture
def nan_batches(monkeypatch):
    """``nan_batches(steps)``: the batches of these global steps hold NaN audio (BatchNorm sees it)."""
    def poison(steps):
        original = ContrastiveLearning.contrastive_loss

        def contrastive_loss(self, audio):
            if self.global_step in steps:
                audio = audio * math.nan
            return original(self, audio)

        monkeypatch.setattr(ContrastiveLearning, "contrastive_loss", contrastive_loss)
    return poison


class Snapshots(Callback):
    """The module's full state (weights and buffers) before and after every step."""

    def __init__(self):
        self.before, self.after = {}, {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.before[trainer.global_step] = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after[trainer.global_step - 1] = {k: v.clone() for k, v in pl_module.state_dict().items()}


def test_a_nan_step_is_skipped_without_changing_weights_or_batchnorm_statistics(config, nan_batches, monkeypatch,
                                                                                 caplog):
    nan_batches({2})
    snapshots = Snapshots()
    original = pretrain.checkpoint_callbacks
    monkeypatch.setattr(pretrain, "checkpoint_callbacks", lambda *a: [snapshots, *original(*a)])
    final = load(pretrain.run_pretraining(dict(config, run_name="one_nan")))
    assert final["global_step"] == 8  # the run went on
    assert_same_tensors(snapshots.after[2], snapshots.before[2])  # including BatchNorm's running statistics
    assert not all(torch.equal(snapshots.after[3][k], snapshots.before[3][k]) for k in snapshots.after[3])
    assert all(torch.isfinite(v).all() for v in final["state_dict"].values() if v.is_floating_point())
    assert final["callbacks"]["NonFiniteGuard"] == {"skipped": 1, "consecutive": 0}
    assert "step 2: the loss or its gradients are not finite (NaN/inf); optimizer step skipped" in caplog.text


def test_repeated_nan_steps_stop_the_run_with_the_last_good_checkpoint_intact(config, nan_batches, tmp_path):
    good = load(pretrain.run_pretraining(dict(config, run_name="good", max_steps=2)))
    nan_batches({2, 3, 4, 5, 6, 7})
    with pytest.raises(NonFiniteLossError, match=r"the loss was NaN/inf for 3 steps in a row \(global steps 2-4, "
                                                 r"which did not update the weights\); .*last.ckpt holds the last good "
                                                 r"state. Start a new --run_name with a lower --learning_rate"):
        pretrain.run_pretraining(dict(config, run_name="bad", max_nonfinite_steps=3))
    last = load(tmp_path / "runs" / "bad" / "checkpoints" / "last.ckpt")
    assert last["global_step"] == 4  # written after the first two skipped steps, not after the third
    assert_same_tensors(last["state_dict"], good["state_dict"])
    assert_same_tensors(last["optimizer_states"][0], good["optimizer_states"][0])


def test_a_diverging_run_stops_with_one_line_and_exit_status_2(config, tmp_path, capsys):
    yaml_path = write_yaml(config, tmp_path / "tiny.yaml")
    status = pretrain_main(["--config", str(yaml_path), "--run_name", "diverge", "--learning_rate", "1e30",
                            "--max_nonfinite_steps", "2", "--max_epochs", "5"])
    assert status == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith("error: training stopped: the loss was NaN/inf for 2 steps in a row")
