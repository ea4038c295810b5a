"""Delay: mix in a delayed, attenuated copy of the clip."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BatchAugmentation, Params, check_range, check_sample_rate


class Delay(BatchAugmentation):
    """Adds a delayed copy of each selected clip, as torchaudio-augmentations' ``Delay``.

    The delay is drawn uniformly from ``min_delay_ms, min_delay_ms + delay_step_ms, ...,
    max_delay_ms`` (CLMR: 200, 250, ..., 450 ms; torchaudio-augmentations wrote this range
    as ``np.arange(200, 500, 50)``) and converted to ``int(ms * sample_rate / 1000)``
    samples. The output is the average of the clip and its delayed copy scaled by
    ``volume``, exactly as in torchaudio-augmentations::

        y[n] = (x[n] + volume * x[n - d]) / 2        (x[n - d] = 0 for n < d)

    so with ``volume=0.5`` the clip is attenuated by 6 dB and the echo by 12 dB.

    Args:
        sample_rate: Sample rate of the clips in Hz.
        min_delay_ms: Shortest delay in milliseconds.
        max_delay_ms: Longest delay in milliseconds (included when on the grid).
        delay_step_ms: Spacing of the allowed delays in milliseconds.
        volume: Scale of the delayed copy before averaging.
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, sample_rate: int, min_delay_ms: float = 200.0, max_delay_ms: float = 450.0,
                 delay_step_ms: float = 50.0, volume: float = 0.5, p: float = 0.3,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        self.sample_rate = check_sample_rate(sample_rate)
        check_range("delay_ms", min_delay_ms, max_delay_ms, lower=0.0)
        if delay_step_ms <= 0:
            raise ValueError(f"delay_step_ms must be positive, got {delay_step_ms}")
        if volume < 0:
            raise ValueError(f"volume must be >= 0, got {volume}")
        self.min_delay_ms = float(min_delay_ms)
        self.max_delay_ms = float(max_delay_ms)
        self.delay_step_ms = float(delay_step_ms)
        self.volume = float(volume)
        # A small tolerance keeps max_delay_ms on the grid despite float steps.
        steps = int((self.max_delay_ms - self.min_delay_ms) / self.delay_step_ms + 1e-9)
        delays_ms = [self.min_delay_ms + i * self.delay_step_ms for i in range(steps + 1)]
        self.delays_samples = [int(ms * self.sample_rate / 1000) for ms in delays_ms]

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask and ``"delay_samples"`` (int64) per example."""
        params = super().sample_params(batch_size, device)
        choice = torch.randint(len(self.delays_samples), (batch_size,), device=device,
                               generator=self.generator)
        table = torch.tensor(self.delays_samples, dtype=torch.long, device=device)
        params["delay_samples"] = table[choice]
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Returns ``(x + volume * delayed(x)) / 2`` per example."""
        batch, n = x.shape
        delays = params["delay_samples"].to(x.device).clamp(0, n)
        pad = int(delays.max())
        # Row b of the result is the zero-padded clip read from pad - delay[b]: indexing a
        # strided view of all windows copies whole rows (no per-sample index tensor).
        padded = F.pad(x, (pad, 0))
        rows = torch.arange(batch, device=x.device)
        delayed = padded.unfold(1, n, 1)[rows, pad - delays]
        return torch.add(x, delayed, alpha=self.volume).mul_(0.5)

    def extra_repr(self) -> str:
        """Shows the delay grid, volume and ``p``."""
        return (f"sample_rate={self.sample_rate}, delays_ms=[{self.min_delay_ms}:"
                f"{self.max_delay_ms}:{self.delay_step_ms}], volume={self.volume}, p={self.p}")
