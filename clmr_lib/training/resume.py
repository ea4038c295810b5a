"""Resuming a run: which checkpoint to continue from, whether it fits, and the state that makes resuming exact."""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from clmr_lib.checkpoints import safe_load
from clmr_lib.errors import UserError
from clmr_lib.training.sampling import GlobalBatchSampler
from clmr_lib.utils import dist, rng

log = logging.getLogger(__name__)

#: Name of the copy of the previous ``last.ckpt`` kept when a new one replaces it.
PREVIOUS_LAST = "last.prev.ckpt"

#: Hyperparameters a checkpoint must share with the run that resumes it, and the flag of each.
_MUST_MATCH = {"encoder": "--encoder", "channels": "--sample_cnn_channels", "strides": "--sample_cnn_strides",
               "audio_length": "--audio_length", "sample_rate": "--sample_rate", "projection_dim": "--projection_dim",
               "optimizer": "--optimizer"}


def _comparable(hparams: dict) -> dict:
    flat = {key: hparams.get(key) for key in ("encoder", "projection_dim", "optimizer")}
    flat.update({key: value for key, value in (hparams.get("encoder_kwargs") or {}).items() if key in _MUST_MATCH})
    if isinstance(flat.get("optimizer"), str):
        flat["optimizer"] = flat["optimizer"].lower()
    return {key: list(value) if isinstance(value, tuple) else value for key, value in flat.items() if value is not None}


def check_fits(checkpoint, path: Path, module: Optional[L.LightningModule]) -> None:
    """One-line errors when a checkpoint cannot continue this run (another model, optimiser or kind of file).

    Args:
        checkpoint: The loaded checkpoint.
        path: Its file, for the message.
        module: The module of this run (``None``: only check that it is a training checkpoint).

    Raises:
        UserError: It is not a pretraining checkpoint, or it was trained with other settings of
            the architecture or the optimiser, or its weights do not fit the module.
    """
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "optimizer_states" not in checkpoint:
        raise UserError(f"checkpoint {path} is not a pretraining checkpoint written by pretrain.py (it holds no "
                        "training state); --checkpoint_path and --resume continue a pretraining run — evaluate other "
                        "checkpoints with linear_evaluation.py")
    if module is None:
        return
    theirs = _comparable(dict(checkpoint.get("hyper_parameters") or {}))
    ours = _comparable(dict(module.hparams))
    differ = [key for key in _MUST_MATCH if key in theirs and key in ours and theirs[key] != ours[key]]
    if differ:
        trained = ", ".join(f"{_MUST_MATCH[key]} {theirs[key]}" for key in differ)
        current = ", ".join(f"{_MUST_MATCH[key]} {ours[key]}" for key in differ)
        raise UserError(f"checkpoint {path} was trained with {trained}, this run has {current}; pass the "
                        "checkpoint's values to continue it, or a new --run_name to start another run")
    state, expected = checkpoint["state_dict"], module.state_dict()
    problems = [f"{key} missing" for key in expected if key not in state]
    problems += [f"unexpected {key}" for key in state if key not in expected]
    problems += [f"{key} is {list(state[key].shape)} in the checkpoint, {list(value.shape)} here"
                 for key, value in expected.items() if key in state and hasattr(state[key], "shape")
                 and tuple(state[key].shape) != tuple(value.shape)]
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise UserError(f"checkpoint {path} does not fit this model ({problems[0]}{more}); pass a checkpoint of this "
                        "architecture, or the --sample_cnn_channels/--sample_cnn_strides/--projection_dim it was "
                        "trained with")


def checkpoint_files(checkpoint_dir: Path, run_dir: Optional[Path] = None) -> list[Path]:
    """Every checkpoint a run could resume from, newest first.

    ``last.ckpt``, the previous ``last.ckpt`` (:data:`PREVIOUS_LAST`), the periodic
    ``epoch=N-step=M.ckpt`` and the ``hpc_ckpt_N.ckpt`` Lightning writes when SLURM preempts a job.
    """
    found = [checkpoint_dir / "last.ckpt", checkpoint_dir / PREVIOUS_LAST, *checkpoint_dir.glob("epoch=*.ckpt")]
    if run_dir is not None:
        found += list(run_dir.glob("hpc_ckpt_*.ckpt"))
    found = [path for path in found if path.is_file()]
    # last.ckpt wins a tie: it is the one refreshed every few steps.
    return sorted(found, key=lambda path: (path.stat().st_mtime, path.name == "last.ckpt"), reverse=True)


def resume_checkpoint(config: dict, checkpoint_dir: Path, module: Optional[L.LightningModule] = None,
                      run_dir: Optional[Path] = None) -> Optional[str]:
    """The checkpoint to continue from: ``--checkpoint_path`` if given, else the newest readable one with ``--resume``.

    A checkpoint that cannot be read (truncated, corrupt) is passed over, with a warning, for the
    next newest: the previous ``last.ckpt``, then periodic ones. ``--resume`` on a run that has no
    checkpoint yet starts it (so a job script can always pass ``--resume``), with a warning.

    Args:
        config: The configuration (``checkpoint_path``, ``resume``).
        checkpoint_dir: ``<run>/checkpoints``.
        module: This run's module, to check that the checkpoint fits it.
        run_dir: The run folder (for SLURM's ``hpc_ckpt_*.ckpt``).

    Returns:
        The path, or ``None`` to start from scratch.

    Raises:
        UserError: The given checkpoint is unusable, or no checkpoint of the run can be read.
    """
    if config.get("checkpoint_path"):
        path = Path(config["checkpoint_path"])
        if path.is_dir():
            raise UserError(f"--checkpoint_path {path} is a folder; pass a checkpoint file, e.g. "
                            f"{path / 'last.ckpt'}")
        check_fits(safe_load(path), path, module)
        return str(path)
    if not config.get("resume"):
        return None
    candidates = checkpoint_files(checkpoint_dir, run_dir)
    if not candidates:
        warnings.warn(f"--resume: {checkpoint_dir} holds no checkpoint yet; starting a new run", stacklevel=2)
        return None
    unreadable = []
    for path in candidates:
        try:
            checkpoint = safe_load(path)
        except UserError as exc:
            log.debug("cannot resume from %s: %s", path, exc)
            unreadable.append((path, exc))
            continue
        check_fits(checkpoint, path, module)
        if unreadable:
            names = ", ".join(str(p) for p, _ in unreadable)
            warnings.warn(f"{names} cannot be read (truncated or corrupt); resuming from {path} "
                          f"(global step {checkpoint.get('global_step', '?')}) instead; the damaged files are kept "
                          "as *.corrupt", stacklevel=2)
            for damaged, _ in unreadable:
                set_aside(damaged)
        return str(path)
    raise UserError(f"--resume: none of the {len(candidates)} checkpoints of the run can be read "
                    f"({unreadable[0][1]}); pass an intact one with --checkpoint_path, or a new --run_name")


def set_aside(path: Path) -> None:
    """Rename a damaged checkpoint to ``<name>.corrupt``, out of the candidates.

    Left in place, a damaged ``last.ckpt`` would become ``last.prev.ckpt`` at the next save (the
    previous-checkpoint link), replacing the good fallback. Another process of the run may have
    renamed it already.
    """
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except OSError:
        pass


class ExactResume(Callback):
    """Random state and data position saved in every checkpoint, so that a resumed run continues exactly.

    Lightning restores the weights, the optimiser, the LR schedule and the loop counters. This
    callback adds what it does not:

    * Per-process seeding: at setup every process seeds torch, numpy and ``random`` from
      ``(seed, rank)``, so no two processes draw the same augmentations.
    * The global random state of every process (gathered to rank 0 when a checkpoint is
      written, restored to each rank on resume; resuming on another number of processes reseeds
      from ``(seed, rank, epoch, position)`` instead, with a warning).
    * Where the epoch was interrupted, so the :class:`GlobalBatchSampler` skips the batches that
      were already trained on instead of starting the epoch over.
    * Validation runs on its own seeded random stream and leaves the training stream as it
      was, so whether and when validation runs does not change training.

    With crops drawn per ``(seed, epoch, index)`` (:class:`~clmr_lib.training.sampling.SeededItems`),
    the augmentations are the only consumers of the global random stream, so a run resumed from
    any step checkpoint on the same processes reproduces the uninterrupted run bit for bit.

    Args:
        seed: The run's seed.
        sampler: The training sampler, whose position is saved and restored.
    """

    def __init__(self, seed: int, sampler: Optional[GlobalBatchSampler] = None):
        self.seed, self.sampler = int(seed), sampler
        self._trainer: Optional[L.Trainer] = None
        self._training_rng: Optional[dict] = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._trainer = trainer
        rng.seed_all(rng.derive_seed(self.seed, "rank", trainer.global_rank))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._training_rng = rng.capture()
        # The same augmented views at every validation: losses compare across epochs.
        rng.seed_all(rng.derive_seed(self.seed, "validation", trainer.global_rank))

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._training_rng is not None:
            rng.restore(self._training_rng)
            self._training_rng = None

    def state_dict(self) -> dict:
        # Called on every process while a checkpoint is assembled; rank 0 writes it.
        states = [rng.capture()]
        if dist.is_distributed():
            states = [None] * dist.world_size()
            torch.distributed.all_gather_object(states, rng.capture())
        state = {"seed": self.seed, "world_size": len(states), "rng": states}
        if self.sampler is not None and self._trainer is not None:
            done = self._trainer.fit_loop.epoch_loop.batch_progress.current.processed
            state["data"] = {"epoch": self.sampler.epoch, "examples_done": done * self.sampler.global_batch_size}
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        rank, world = dist.rank(), dist.world_size()
        data = state_dict.get("data")
        if state_dict.get("world_size") == world:
            rng.restore(state_dict["rng"][rank])
        else:
            position = (data or {}).get("epoch", 0), (data or {}).get("examples_done", 0)
            warnings.warn(f"the checkpoint was written by {state_dict.get('world_size')} processes and this run has "
                          f"{world}: training continues, but not exactly as the original run would have",
                          stacklevel=2)
            rng.seed_all(rng.derive_seed(self.seed, "rank", rank, *position))
        if data is not None and self.sampler is not None:
            self.sampler.resume(data["epoch"], data["examples_done"])
