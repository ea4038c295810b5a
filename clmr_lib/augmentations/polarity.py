"""Polarity inversion: multiply the waveform by -1."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import BatchAugmentation, Params


class PolarityInversion(BatchAugmentation):
    """Negates each selected example (CLMR, torchaudio-augmentations ``PolarityInversion``).

    Args:
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, p: float = 0.8, generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Returns ``-x``."""
        return -x
