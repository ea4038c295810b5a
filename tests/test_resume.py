"""Tests for clmr_lib.training.resume: which checkpoint, falling back from a damaged one, fit checks, exactness."""
import os
import time

import pytest
import torch

from clmr_lib.errors import UserError
from clmr_lib.training.pretrain import build_module, run_pretraining
from clmr_lib.training.resume import check_fits, checkpoint_files, resume_checkpoint
from tiny_pretraining import assert_same_tensors, load, make_folder, single_thread, tiny_config  # noqa: F401

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def module(tmp_path):
    return build_module(tiny_config(tmp_path, tmp_path))


def save(module, path, step, age=0.0, **hyper):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "optimizer_states": [], "global_step": step,
                "hyper_parameters": {**dict(module.hparams), **hyper}}, path)
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def test_newest_readable_checkpoint_wins_and_a_damaged_one_is_passed_over(tmp_path, module):
    folder = tmp_path / "checkpoints"
    save(module, folder / "epoch=0-step=4.ckpt", 4, age=30)
    save(module, folder / "last.prev.ckpt", 9, age=10)
    last = save(module, folder / "last.ckpt", 10)
    assert checkpoint_files(folder)[0] == last
    assert resume_checkpoint({"resume": True}, folder, module) == str(last)
    truncate(last)
    with pytest.warns(UserWarning, match=r"last.ckpt cannot be read .*from .*last.prev.ckpt \(global step 9\)"):
        assert resume_checkpoint({"resume": True}, folder, module) == str(folder / "last.prev.ckpt")
    # Set aside, so the next save cannot turn the damaged last.ckpt into the last.prev.ckpt fallback.
    assert not last.exists() and (folder / "last.ckpt.corrupt").is_file()
    truncate(folder / "last.prev.ckpt")
    with pytest.warns(UserWarning, match=r"epoch=0-step=4.ckpt \(global step 4\)"):
        assert resume_checkpoint({"resume": True}, folder, module).endswith("epoch=0-step=4.ckpt")
    truncate(folder / "epoch=0-step=4.ckpt")
    # With no good checkpoint left, nothing is renamed: the user decides.
    with pytest.raises(UserError, match=r"--resume: none of the 1 checkpoints of the run can be read .*"
                                        r"--checkpoint_path"):
        resume_checkpoint({"resume": True}, folder, module)
    assert (folder / "epoch=0-step=4.ckpt").is_file()


def test_resume_of_a_run_without_checkpoints_starts_it(tmp_path, module):
    with pytest.warns(UserWarning, match="holds no checkpoint yet; starting a new run"):
        assert resume_checkpoint({"resume": True}, tmp_path / "checkpoints", module) is None
    assert resume_checkpoint({"resume": False}, tmp_path / "checkpoints", module) is None


def test_slurm_preemption_checkpoints_are_candidates(tmp_path, module):
    save(module, tmp_path / "checkpoints" / "last.ckpt", 5, age=60)
    hpc = save(module, tmp_path / "hpc_ckpt_1.ckpt", 7)
    assert resume_checkpoint({"resume": True}, tmp_path / "checkpoints", module, tmp_path) == str(hpc)


def test_checkpoints_of_another_model_or_kind_are_refused(tmp_path, module):
    other = build_module(tiny_config(tmp_path, tmp_path, sample_cnn_channels=[8, 8, 8, 8, 8, 8, 32]))
    path = save(other, tmp_path / "other.ckpt", 1)
    with pytest.raises(UserError, match=r"trained with --sample_cnn_channels \[8, 8, 8, 8, 8, 8, 32\], this run has "
                                        r"--sample_cnn_channels \[8, 8, 8, 8, 8, 8, 16\]"):
        check_fits(load(path), path, module)
    path = save(module, tmp_path / "lars.ckpt", 1, optimizer="LARS")
    with pytest.raises(UserError, match="--optimizer lars, this run has --optimizer adam"):
        check_fits(load(path), path, module)
    # Without hyperparameters the weights' shapes still tell.
    torch.save({"state_dict": other.state_dict(), "optimizer_states": []}, tmp_path / "bare.ckpt")
    with pytest.raises(UserError, match=r"does not fit this model \(encoder.sequential.6.0.weight is \[32, 8, 3\] "):
        check_fits(load(tmp_path / "bare.ckpt"), tmp_path / "bare.ckpt", module)
    torch.save({"sequential.0.0.weight": torch.zeros(8, 1, 3)}, tmp_path / "encoder.pt")
    with pytest.raises(UserError, match="not a pretraining checkpoint written by pretrain.py"):
        resume_checkpoint({"checkpoint_path": str(tmp_path / "encoder.pt")}, tmp_path, module)
    with pytest.raises(UserError, match="is a folder; pass a checkpoint file"):
        resume_checkpoint({"checkpoint_path": str(tmp_path)}, tmp_path, module)


class Crash(Exception):
    pass


def test_resuming_a_crashed_run_mid_epoch_reproduces_the_uninterrupted_run(tmp_path, make_audio_file, monkeypatch):
    """Augmentations on, LARS with its cosine schedule: weights, optimiser and schedule are bit-exact."""
    import clmr_lib.training.pretrain as pretrain
    from lightning.pytorch.callbacks import Callback

    folder = make_folder(tmp_path / "music", make_audio_file)
    config = tiny_config(folder, tmp_path / "runs", optimizer="LARS", max_epochs=3)
    whole = load(run_pretraining(dict(config, run_name="whole")))

    class CrashAt(Callback):
        def on_train_batch_start(self, trainer, *args):
            if trainer.global_step == 6:  # the middle of the second epoch (4 steps per epoch)
                raise Crash

    original = pretrain.checkpoint_callbacks
    monkeypatch.setattr(pretrain, "checkpoint_callbacks", lambda *a: [CrashAt(), *original(*a)])
    with pytest.raises(Crash):
        run_pretraining(dict(config, run_name="crashed"))
    monkeypatch.undo()
    assert load(tmp_path / "runs" / "crashed" / "checkpoints" / "last.ckpt")["global_step"] == 6
    resumed = load(run_pretraining(dict(config, run_name="crashed", resume=True)))
    assert resumed["global_step"] == whole["global_step"] == 12
    assert_same_tensors(resumed["state_dict"], whole["state_dict"])
    assert_same_tensors(resumed["optimizer_states"][0], whole["optimizer_states"][0])
    assert resumed["lr_schedulers"] == whole["lr_schedulers"]


def test_keeping_the_previous_checkpoint_twice_leaves_no_staging_file(tmp_path):
    # A run killed after keeping last.prev.ckpt but before writing the new last.ckpt resumes with
    # both names on one file; the next save must still replace last.ckpt and leave nothing behind.
    from clmr_lib.training.trainer import AtomicCheckpointIO

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 1}, folder / "last.ckpt")
    os.link(folder / "last.ckpt", folder / "last.prev.ckpt")
    io.save_checkpoint({"global_step": 2}, folder / "last.ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "last.prev.ckpt"]
    assert torch.load(folder / "last.ckpt", weights_only=True)["global_step"] == 2
    assert torch.load(folder / "last.prev.ckpt", weights_only=True)["global_step"] == 1
