"""Random gain in decibels."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import BatchAugmentation, Params, check_range


class Gain(BatchAugmentation):
    """Multiplies each selected example by a random gain drawn uniformly in decibels.

    Same distribution as torchaudio-augmentations' ``Gain`` used by CLMR (uniform in
    [-20, -1] dB). Unlike torchaudio's ``Vol`` that it called, the result is not clamped
    to [-1, 1]: with the default (negative) gains clamping only ever changed input that was
    already out of range.

    Args:
        min_gain_db: Smallest gain in dB.
        max_gain_db: Largest gain in dB.
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, min_gain_db: float = -20.0, max_gain_db: float = -1.0, p: float = 0.3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        check_range("gain_db", min_gain_db, max_gain_db)
        self.min_gain_db = float(min_gain_db)
        self.max_gain_db = float(max_gain_db)

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask and ``"gain_db"`` per example."""
        params = super().sample_params(batch_size, device)
        params["gain_db"] = self._uniform(batch_size, device, self.min_gain_db, self.max_gain_db)
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Returns ``x * 10 ** (gain_db / 20)`` per example."""
        factor = torch.exp(params["gain_db"].to(x.dtype) * (math.log(10.0) / 20.0))
        return x * factor[:, None]

    def extra_repr(self) -> str:
        """Shows the gain range and ``p``."""
        return f"min_gain_db={self.min_gain_db}, max_gain_db={self.max_gain_db}, p={self.p}"
