"""Non-finite losses: skip the step, keep the weights and BatchNorm statistics, stop after too many in a row."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from clmr_lib.errors import UserError
from clmr_lib.utils import dist

log = logging.getLogger(__name__)


class NonFiniteLossError(UserError):
    """Training stopped because the loss (or the weights) stopped being finite."""


def _all_finite(tensors) -> bool:
    flags = [torch.isfinite(t).all() for t in tensors]
    return bool(torch.stack(flags).all()) if flags else True


class NonFiniteGuard(Callback):
    """Skip optimiser steps whose loss or gradients are NaN/inf; stop after ``max_consecutive`` in a row.

    A skipped step changes nothing: the gradients are dropped before the optimiser sees them
    (so neither the weights nor the optimiser's moments move) and the BatchNorm running
    statistics, which the forward pass already updated from the bad batch, are put back. The
    step is logged (a warning, and ``train/skipped_steps`` in the metrics) and counted. The
    decision is taken jointly by all processes, so under DDP they keep identical weights.

    After ``max_consecutive`` skipped steps in a row the run stops with a
    :class:`NonFiniteLossError` (one line, exit status 2). It is raised before the step's
    checkpoint is written, so ``last.ckpt`` keeps the last good state. Weights that become
    non-finite despite finite gradients stop the run at once, for the same reason.

    Args:
        max_consecutive: Skipped steps in a row that stop the run (>= 1).
        checkpoint_dir: Where the run's checkpoints are, for the message.
    """

    def __init__(self, max_consecutive: int = 10, checkpoint_dir: Optional[Path] = None):
        if int(max_consecutive) < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {max_consecutive}")
        self.max_consecutive = int(max_consecutive)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.consecutive = 0
        self.skipped = 0
        self._first_bad_step: Optional[int] = None
        self._buffers: list[torch.Tensor] = []
        self._loss_finite: Optional[torch.Tensor] = None

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int) -> None:
        # BatchNorm statistics are updated during the forward pass, before the loss is known.
        self._buffers = [buffer.detach().clone() for buffer in pl_module.buffers()]
        self._loss_finite = None

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor) -> None:
        self._loss_finite = torch.isfinite(loss.detach()).all()

    def on_before_optimizer_step(self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer) -> None:
        grads = [p.grad for p in pl_module.parameters() if p.grad is not None]
        finite = _all_finite(grads) and (self._loss_finite is None or bool(self._loss_finite))
        if not dist.any_process(not finite, device=pl_module.device):
            self.consecutive, self._first_bad_step = 0, None
            return
        optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            for buffer, saved in zip(pl_module.buffers(), self._buffers):
                buffer.copy_(saved)
        self.consecutive += 1
        self.skipped += 1
        step = trainer.global_step
        if self._first_bad_step is None:
            self._first_bad_step = step
        if trainer.is_global_zero:
            log.warning("step %d: the loss or its gradients are not finite (NaN/inf); optimizer step skipped "
                        "(%d in a row, the run stops at %d)", step, self.consecutive, self.max_consecutive)
        if self.consecutive >= self.max_consecutive:
            raise NonFiniteLossError(
                f"training stopped: the loss was NaN/inf for {self.consecutive} steps in a row (global steps "
                f"{self._first_bad_step}-{step}, which did not update the weights); {self._last_good()}. Start a new "
                "--run_name with a lower --learning_rate, or raise --max_nonfinite_steps")

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
                           ) -> None:
        if self.skipped:
            pl_module.log("train/skipped_steps", float(self.skipped), on_step=True, on_epoch=False)
        # Runs before the checkpoint callbacks (Lightning orders those last): a bad state is never saved.
        if not dist.any_process(not _all_finite(list(pl_module.parameters())), device=pl_module.device):
            return
        raise NonFiniteLossError(f"training stopped: the weights became NaN/inf at global step {trainer.global_step}; "
                                 f"{self._last_good()}. Start a new --run_name with a lower --learning_rate")

    def _last_good(self) -> str:
        last = self.checkpoint_dir / "last.ckpt" if self.checkpoint_dir is not None else None
        if last is not None and last.is_file():
            return f"{last} holds the last good state"
        return "no checkpoint had been written yet"

    def state_dict(self) -> dict:
        return {"skipped": self.skipped, "consecutive": self.consecutive}

    def load_state_dict(self, state_dict: dict) -> None:
        self.skipped = int(state_dict.get("skipped", 0))
        self.consecutive = int(state_dict.get("consecutive", 0))
