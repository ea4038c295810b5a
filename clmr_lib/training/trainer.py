"""Lightning Trainer construction from the config: devices, processes, loggers, crash-safe checkpoint files."""
from __future__ import annotations

import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from clmr_lib.checkpoints import safe_load
from clmr_lib.errors import UserError
from clmr_lib.training.resume import PREVIOUS_LAST, resume_checkpoint
from clmr_lib.training.sync_batchnorm import GlobalBatchNormSync
from clmr_lib.utils.atomic import atomic_write_bytes, ensure_writable

__all__ = ["AtomicCheckpointIO", "build_trainer", "checkpoint_callbacks", "devices_for", "ensure_writable",
           "resume_checkpoint", "run_directory"]


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that never leaves a half-written file and reads with ``weights_only=True``.

    Checkpoints are written with :func:`~clmr_lib.utils.atomic.atomic_write_bytes` (a temporary
    file in the same folder, flushed, then renamed over the target), so a crash (``kill -9``,
    preemption, power loss) at any moment leaves either the old or the new file, complete. Before
    ``last.ckpt`` is replaced, the current one is kept as ``last.prev.ckpt`` (a hard link, or a
    copy where the file system has none): if the newest checkpoint is later damaged, ``--resume``
    falls back to it. Temporary files a killed run left behind are removed on the first save.
    """

    def __init__(self) -> None:
        super().__init__()
        self._cleaned: set[Path] = set()

    def _remove_stale_temporaries(self, folder: Path) -> None:
        if folder in self._cleaned or not folder.is_dir():
            return
        self._cleaned.add(folder)
        for stale in folder.glob(".*.ckpt.*.tmp"):
            try:
                stale.unlink()
            except OSError:
                pass

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        path = Path(path)
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        try:
            self._remove_stale_temporaries(path.parent)
            if path.name == "last.ckpt" and path.is_file():
                self._keep_previous(path)
            atomic_write_bytes(buffer.getvalue(), path)
        except OSError as exc:
            raise UserError(f"cannot write checkpoint {path} ({exc.strerror or exc}); free space or choose a "
                            "writable --log_dir") from exc

    @staticmethod
    def _keep_previous(path: Path) -> None:
        previous = path.with_name(PREVIOUS_LAST)
        # Built under a temporary name and renamed: last.prev.ckpt is never half a file either.
        staging = path.with_name(f".{PREVIOUS_LAST}.{os.getpid()}.tmp")
        if previous.exists() and os.path.samefile(path, previous):
            # Already kept (a run killed between keeping it and writing the new last.ckpt): renaming a
            # second link of the same file over it would do nothing and leave the staging link behind.
            return
        try:
            os.link(path, staging)
        except OSError:
            shutil.copyfile(path, staging)
        os.replace(staging, previous)

    def load_checkpoint(self, path, map_location: Optional[Callable] = None,
                        weights_only: Optional[bool] = None) -> dict:
        return safe_load(path, map_location=map_location if map_location is not None else "cpu")


def devices_for(gpus: int, num_nodes: int = 1, cpu_processes: int = 1) -> dict:
    """Map CLMR's ``--gpus N`` (and ``--num_nodes``, ``--cpu_processes``) onto Lightning 2's arguments.

    ``--gpus 0`` trains on the CPU, in ``cpu_processes`` processes per node (DDP over gloo when
    there is more than one process in all). ``--gpus 1`` on a machine without a GPU falls back to
    the CPU with a warning (it is the paper's default command); asking for more GPUs than the
    machine has is an error. Several GPUs or nodes train with DDP.

    Returns:
        ``accelerator``, ``devices``, ``num_nodes`` and ``strategy`` for ``lightning.Trainer``.
    """
    gpus, num_nodes, cpu_processes = int(gpus), int(num_nodes), int(cpu_processes)
    if gpus < 0:
        raise UserError(f"--gpus {gpus} is negative; use 0 for the CPU or the number of GPUs to train on")
    available = torch.cuda.device_count()
    if gpus == 0 or (gpus == 1 and available == 0):
        if gpus == 1:
            warnings.warn("--gpus 1: no GPU found on this machine, training on the CPU", stacklevel=2)
        processes = max(cpu_processes, 1)
        strategy = "ddp" if processes > 1 or num_nodes > 1 else "auto"
        return {"accelerator": "cpu", "devices": processes, "num_nodes": num_nodes, "strategy": strategy}
    if gpus > available:
        raise UserError(f"--gpus {gpus} asks for {gpus} GPUs but this machine has {available}; "
                        f"use --gpus {available}" + (" (the CPU)" if available == 0 else ""))
    strategy = "ddp" if gpus > 1 or num_nodes > 1 else "auto"
    return {"accelerator": "gpu", "devices": gpus, "num_nodes": num_nodes, "strategy": strategy}


def run_directory(config: dict) -> Path:
    """``<log_dir>/<run_name>``; the run name defaults to ``<encoder>_<dataset>``."""
    name = config.get("run_name") or f"{config.get('encoder', 'sample_cnn')}_{config['dataset']}"
    return Path(config.get("log_dir", "runs")) / name


def checkpoint_callbacks(checkpoint_dir: Path, every_n_steps: int, every_n_epochs: int) -> list[ModelCheckpoint]:
    """``last.ckpt`` refreshed every few steps (for resuming) and periodic checkpoints kept for good."""
    callbacks = [ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0,
                                 every_n_train_steps=max(int(every_n_steps), 1), save_on_train_epoch_end=True)]
    if every_n_epochs and int(every_n_epochs) > 0:
        callbacks.append(ModelCheckpoint(dirpath=checkpoint_dir, filename="epoch={epoch}-step={step}",
                                         auto_insert_metric_name=False, save_top_k=-1,
                                         every_n_epochs=int(every_n_epochs), save_on_train_epoch_end=True))
    return callbacks


def build_trainer(config: dict, run_dir: Path, callbacks: Sequence[Callback] = (), devices: Optional[dict] = None,
                  **overrides) -> L.Trainer:
    """A Trainer for ``config``: devices from ``--gpus``, TensorBoard + CSV logs and checkpoints in ``run_dir``.

    Args:
        config: The configuration.
        run_dir: The run folder (created; must be writable).
        callbacks: Callbacks of the run.
        devices: :func:`devices_for`'s result, when the caller already checked the devices.
        **overrides: Further ``lightning.Trainer`` arguments, taking precedence.
    """
    ensure_writable(run_dir)
    devices = devices if devices is not None else devices_for(
        config.get("gpus", 0), int(config.get("num_nodes", 1)), int(config.get("cpu_processes", 1)))
    plugins: list = [AtomicCheckpointIO()]
    sync = bool(config.get("sync_batchnorm", False))
    if sync and devices["accelerator"] != "gpu":
        # torch's SyncBatchNorm refuses CPU tensors; ours runs on gloo.
        plugins.append(GlobalBatchNormSync())
    loggers = [TensorBoardLogger(str(run_dir), name="tensorboard"), CSVLogger(str(run_dir), name="csv")]
    kwargs = dict(
        # --max_epochs 0 with --max_steps N: no limit on epochs (Lightning's -1).
        max_epochs=int(config["max_epochs"]) if int(config["max_epochs"]) > 0 else -1,
        max_steps=int(config.get("max_steps", -1)),
        precision=config.get("precision", "32-true"),
        logger=loggers,
        callbacks=list(callbacks),
        plugins=plugins,
        sync_batchnorm=sync and devices["accelerator"] == "gpu",
        default_root_dir=str(run_dir),
        log_every_n_steps=int(config.get("log_every_n_steps", 10)),
        check_val_every_n_epoch=int(config.get("check_val_every_n_epoch", 1)),
        fast_dev_run=bool(config.get("fast_dev_run", False)),
        deterministic=bool(config.get("deterministic", False)),
        enable_progress_bar=bool(config.get("progress", True)),
    )
    kwargs.update(devices)
    kwargs.update(overrides)
    return L.Trainer(**kwargs)
