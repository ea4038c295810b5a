"""Tests for clmr_lib.training.trainer: devices and processes, crash-safe checkpoint files, writable run folders."""
import os
import stat

import pytest
import torch

from clmr_lib.errors import UserError
from clmr_lib.training.sync_batchnorm import GlobalBatchNormSync
from clmr_lib.training.trainer import AtomicCheckpointIO, build_trainer, devices_for, ensure_writable

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour on a CPU-only machine")


def test_cpu_processes_and_nodes_train_with_ddp():
    assert devices_for(0) == {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    assert devices_for(0, cpu_processes=2) == {"accelerator": "cpu", "devices": 2, "num_nodes": 1, "strategy": "ddp"}
    assert devices_for(0, num_nodes=2)["strategy"] == "ddp"


@needs_no_gpu
def test_gpus_without_gpus():
    with pytest.warns(UserWarning, match="no GPU"):
        assert devices_for(1)["accelerator"] == "cpu"
    with pytest.raises(UserError, match=r"--gpus 2 asks for 2 GPUs but this machine has 0; use --gpus 0"):
        devices_for(2)


def test_checkpoint_replaces_atomically_and_keeps_the_previous_last(tmp_path):
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, last)
    io.save_checkpoint({"step": 2}, last)
    assert io.load_checkpoint(last) == {"step": 2}
    assert io.load_checkpoint(tmp_path / "last.prev.ckpt") == {"step": 1}
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    assert stat.S_IMODE(last.stat().st_mode) == 0o666 & ~_umask()  # not mkstemp's owner-only 0600
    other = tmp_path / "epoch=0-step=2.ckpt"
    io.save_checkpoint({"step": 2}, other)
    io.save_checkpoint({"step": 3}, other)
    assert not (tmp_path / "epoch=0-step=2.prev.ckpt").exists()  # only last.ckpt keeps a previous copy


def test_a_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1}, last)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. Ctrl-C while the file is being written

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"step": 2}, last)
    monkeypatch.undo()
    assert io.load_checkpoint(last) == {"step": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_temporaries_of_a_killed_run_are_removed(tmp_path):
    stale = tmp_path / ".last.ckpt.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "last.ckpt")
    assert not stale.exists()


def test_disk_errors_are_user_errors(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write checkpoint .*--log_dir"):
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "file" / "last.ckpt")


def test_unwritable_run_folder(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"cannot write to .*file/run \(Not a directory\); choose a writable --log_dir"):
        ensure_writable(tmp_path / "file" / "run")


def test_sync_batchnorm_on_cpu_uses_the_gloo_capable_layer(tmp_path):
    config = {"max_epochs": 1, "sync_batchnorm": True, "progress": False}
    trainer = build_trainer(config, tmp_path / "run")
    # torch's SyncBatchNorm refuses CPU tensors: the plugin converting to GlobalBatchNorm is used instead.
    assert isinstance(trainer._accelerator_connector._layer_sync, GlobalBatchNormSync)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
