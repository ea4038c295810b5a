"""Lightning Trainer construction from the config: devices, loggers, checkpoints, resume."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from clmr_lib.checkpoints import atomic_save, safe_load
from clmr_lib.errors import UserError

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O that writes atomically and reads with ``weights_only=True``."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options: Optional[Any] = None) -> None:
        atomic_save(checkpoint, path)

    def load_checkpoint(self, path, map_location: Optional[Callable] = None, weights_only: Optional[bool] = None) -> dict:
        return safe_load(path, map_location=map_location if map_location is not None else "cpu")


def devices_for(gpus: int, num_nodes: int = 1) -> dict:
    """Map CLMR's ``--gpus N`` onto Lightning 2's ``accelerator``/``devices``/``strategy``.

    ``--gpus 0`` trains on the CPU. ``--gpus 1`` on a machine without a GPU falls back to the CPU
    with a warning (it is the paper's default command); asking for more GPUs than the machine has
    is an error.
    """
    gpus = int(gpus)
    if gpus < 0:
        raise UserError(f"--gpus {gpus} is negative; use 0 for the CPU or the number of GPUs to train on")
    available = torch.cuda.device_count()
    if gpus == 0 or (gpus == 1 and available == 0):
        if gpus == 1:
            warnings.warn("--gpus 1: no GPU found on this machine, training on the CPU", stacklevel=2)
        return {"accelerator": "cpu", "devices": 1, "num_nodes": num_nodes}
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


def resume_checkpoint(config: dict, checkpoint_dir: Path) -> Optional[str]:
    """The checkpoint to resume from: ``--checkpoint_path`` if given, else ``last.ckpt`` with ``--resume``.

    A corrupt ``last.ckpt`` falls back to the newest periodic checkpoint that loads, with a warning.
    """
    if config.get("checkpoint_path"):
        path = Path(config["checkpoint_path"])
        safe_load(path)  # a one-line error now rather than a traceback inside Lightning
        return str(path)
    if not config.get("resume"):
        return None
    candidates = [checkpoint_dir / "last.ckpt"] + sorted(checkpoint_dir.glob("epoch=*.ckpt"),
                                                         key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            safe_load(path)
            if path != candidates[0]:
                warnings.warn(f"{candidates[0]} is unreadable; resuming from {path} instead", stacklevel=2)
            return str(path)
        except UserError as exc:
            log.warning("skipping checkpoint %s: %s", path, exc)
    raise UserError(f"--resume: no readable checkpoint in {checkpoint_dir}; start without --resume "
                    "or pass --checkpoint_path")


def build_trainer(config: dict, run_dir: Path, callbacks: Sequence[Callback] = (), **overrides) -> L.Trainer:
    """A Trainer for ``config``: devices from ``--gpus``, TensorBoard + CSV logs and checkpoints in ``run_dir``."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {run_dir} ({exc.strerror}); choose a writable --log_dir") from exc
    loggers = [TensorBoardLogger(str(run_dir), name="tensorboard"), CSVLogger(str(run_dir), name="csv")]
    kwargs = dict(
        max_epochs=int(config["max_epochs"]),
        max_steps=int(config.get("max_steps", -1)),
        precision=config.get("precision", "32-true"),
        logger=loggers,
        callbacks=list(callbacks),
        plugins=[AtomicCheckpointIO()],
        default_root_dir=str(run_dir),
        log_every_n_steps=min(50, int(config.get("log_every_n_steps", 10))),
        check_val_every_n_epoch=int(config.get("check_val_every_n_epoch", 1)),
        fast_dev_run=bool(config.get("fast_dev_run", False)),
        deterministic=False,
    )
    kwargs.update(devices_for(config.get("gpus", 0), int(config.get("num_nodes", 1))))
    kwargs.update(overrides)
    return L.Trainer(**kwargs)
