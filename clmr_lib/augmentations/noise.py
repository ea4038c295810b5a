"""Additive Gaussian noise scaled to each clip's own standard deviation."""
from __future__ import annotations

import torch
from torch import Tensor

from .base import BatchAugmentation, Params, check_range


class Noise(BatchAugmentation):
    """Adds white Gaussian noise whose std is a random fraction of the clip's std.

    For each selected clip, ``ratio ~ U[min_relative_std, max_relative_std]`` and the
    noise std is ``ratio * std(clip)``, as torchaudio-augmentations' ``Noise`` that CLMR
    used. Its arguments were called ``min_snr=0.0001`` and ``max_snr=0.01`` but are this
    std ratio (an SNR of 80 to 40 dB), not a signal-to-noise ratio. The clip's std is the
    sample standard deviation (Bessel-corrected, like ``torch.std``).

    Args:
        min_relative_std: Smallest noise std as a fraction of the clip's std.
        max_relative_std: Largest noise std as a fraction of the clip's std.
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, min_relative_std: float = 0.0001, max_relative_std: float = 0.01,
                 p: float = 0.01, generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        check_range("relative_std", min_relative_std, max_relative_std, lower=0.0)
        self.min_relative_std = float(min_relative_std)
        self.max_relative_std = float(max_relative_std)

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask and ``"relative_std"`` per example."""
        params = super().sample_params(batch_size, device)
        params["relative_std"] = self._uniform(
            batch_size, device, self.min_relative_std, self.max_relative_std
        )
        return params

    def sample_signals(self, params: Params, x: Tensor) -> Params:
        """Adds ``"noise"``: standard normal noise of the selected examples' shape."""
        noise = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=self.generator)
        return {**params, "noise": noise}

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Returns ``x + relative_std * std(x) * noise`` per example."""
        n = x.shape[-1]
        centred = x - x.mean(dim=-1, keepdim=True)
        # A norm is one fast pass, whereas torch.std runs a slow Welford reduction.
        std = torch.linalg.vector_norm(centred, dim=-1) / max(n - 1, 1) ** 0.5
        scale = (params["relative_std"].to(x.dtype) * std)[:, None]
        return torch.addcmul(x, params["noise"].to(x.dtype), scale)

    def extra_repr(self) -> str:
        """Shows the ratio range and ``p``."""
        return (f"min_relative_std={self.min_relative_std}, "
                f"max_relative_std={self.max_relative_std}, p={self.p}")
