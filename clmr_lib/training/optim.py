"""Optimisers for pre-training: LARS (You et al., 2017) and the CLMR/SimCLR optimiser recipes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn


class LARS(torch.optim.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (LARS; You et al., 2017).

    Each parameter tensor gets its own learning rate, ``lr * trust_coefficient * ||w|| / ||g||``,
    so that the step is about a fixed fraction of the weight's size whatever its gradient's scale;
    this is what lets SimCLR (Chen et al., 2020) train with batches of thousands. The update
    follows SimCLR's reference implementation (classic momentum, learning rate inside the
    momentum buffer)::

        g = grad + weight_decay * w
        trust = trust_coefficient * ||w|| / (||g|| + eps)   (1 if ||w|| or ||g|| is 0)
        v = momentum * v + lr * trust * g
        w = w - v

    As in SimCLR, biases and normalisation parameters get neither weight decay nor adaptation
    (``trust = 1``); with ``exclude_bias_and_norm`` they are recognised as the tensors with at
    most one dimension.

    Args:
        params: Parameters or parameter groups; a group may override any option below.
        lr: Base learning rate.
        momentum: Momentum factor.
        weight_decay: L2 penalty added to the gradient of adapted parameters.
        trust_coefficient: ``eta`` in the trust ratio.
        eps: Added to the gradient norm so that a vanishing gradient cannot blow up the ratio.
        exclude_bias_and_norm: Skip weight decay and adaptation for 0-D and 1-D parameters.

    Raises:
        ValueError: If a hyperparameter is out of range.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 1e-6,
        trust_coefficient: float = 0.001,
        eps: float = 1e-8,
        exclude_bias_and_norm: bool = True,
    ) -> None:
        hyperparameters = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "trust_coefficient": trust_coefficient,
            "eps": eps,
        }
        for name, value in hyperparameters.items():
            if value < 0:
                raise ValueError(f"LARS {name} must be >= 0, got {value}")
        defaults = {**hyperparameters, "exclude_bias_and_norm": exclude_bias_and_norm}
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        """Perform one optimisation step.

        Args:
            closure: Optional callable that re-evaluates the model and returns the loss.

        Returns:
            The loss returned by ``closure``, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                grad = p.grad
                # Biases and norm scales/shifts (and scalars, e.g. a learned temperature) have
                # no layer whose size sets their step, and decay only drags them off their
                # neutral values; SimCLR exempts them from both.
                adapt = not (group["exclude_bias_and_norm"] and p.dim() <= 1)
                if adapt:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm = torch.linalg.vector_norm(p)
                    g_norm = torch.linalg.vector_norm(grad)
                    # Kept on the device (no .item()) to avoid a host sync per tensor.
                    trust = torch.where(
                        (w_norm > 0) & (g_norm > 0),
                        group["trust_coefficient"] * w_norm / (g_norm + group["eps"]),
                        torch.ones_like(w_norm),
                    )
                    grad = grad * trust
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buf = state["momentum_buffer"]
                buf.mul_(group["momentum"]).add_(grad, alpha=group["lr"])
                p.sub_(buf)
        return loss


OPTIMIZERS = ("Adam", "LARS")


def build_optimizer(
    model_or_params: nn.Module | Iterable[Tensor] | Iterable[dict[str, Any]],
    name: str,
    learning_rate: float,
    weight_decay: float,
    batch_size: int,
    max_epochs: int,
    steps_per_epoch: int | None = None,
) -> dict[str, Any]:
    """Build the optimiser (and schedule) of CLMR's pre-training, for ``configure_optimizers``.

    * ``"Adam"``: ``torch.optim.Adam(lr=learning_rate, weight_decay=weight_decay)``, constant
      learning rate (CLMR's default, with 3e-4).
    * ``"LARS"``: SimCLR's recipe (Chen et al., 2020): LARS with the linearly scaled learning
      rate ``0.3 * batch_size / 256`` (``learning_rate`` is not used) and ``weight_decay``,
      decayed to 0 by a cosine schedule without restarts over ``max_epochs``. The schedule
      steps once per epoch, or once per optimiser step when ``steps_per_epoch`` is given.

    Args:
        model_or_params: A module, or parameters / parameter groups.
        name: ``"Adam"`` or ``"LARS"`` (case-insensitive).
        learning_rate: Adam's learning rate.
        weight_decay: Weight decay of either optimiser.
        batch_size: Global batch size (all processes), for LARS's learning-rate scaling.
        max_epochs: Length of the LARS cosine schedule, in epochs.
        steps_per_epoch: Optimiser steps per epoch, to step the cosine schedule per step.

    Returns:
        ``{"optimizer": ...}``, plus ``"lr_scheduler": {"scheduler", "interval", "frequency"}``
        for LARS, as Lightning's ``configure_optimizers`` accepts it.

    Raises:
        ValueError: If ``name`` is not one of the choices, or a size is not positive.
    """
    params = model_or_params
    if isinstance(model_or_params, nn.Module):
        params = model_or_params.parameters()
    choice = {option.lower(): option for option in OPTIMIZERS}.get(str(name).lower())
    if choice == "Adam":
        return {"optimizer": torch.optim.Adam(params, lr=learning_rate, weight_decay=weight_decay)}
    if choice == "LARS":
        sizes = {"batch_size": batch_size, "max_epochs": max_epochs}
        if steps_per_epoch is not None:
            sizes["steps_per_epoch"] = steps_per_epoch
        for label, value in sizes.items():
            if value < 1:
                raise ValueError(f"build_optimizer: {label} must be positive, got {value}")
        optimizer = LARS(params, lr=0.3 * batch_size / 256, weight_decay=weight_decay)
        if steps_per_epoch is None:
            total, interval = max_epochs, "epoch"
        else:
            total, interval = max_epochs * steps_per_epoch, "step"
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=0.0)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval, "frequency": 1},
        }
    raise ValueError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
