"""Compose: apply batched augmentations one after the other."""
from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

from .base import _as_batch


class Compose(nn.Module):
    """Applies transforms in order; each draws its own per-example decisions.

    Every transform decides for every example independently (with its own probability)
    whether it applies, so one example may be filtered and pitch-shifted while its
    neighbour is only delayed.

    Args:
        transforms: Batched transforms taking and returning ``(batch, samples)`` tensors.
    """

    def __init__(self, transforms: Iterable[nn.Module]) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(transforms)

    def forward(self, x: Tensor) -> Tensor:
        """Applies every transform in order.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` floating point batch.

        Returns:
            A tensor of the same shape and dtype as ``x``.
        """
        out = _as_batch(x)
        for transform in self.transforms:
            out = transform(out)
        return out.reshape(x.shape)

    def __len__(self) -> int:
        """Number of transforms."""
        return len(self.transforms)

    def __getitem__(self, index: int) -> nn.Module:
        """The transform at ``index``."""
        return self.transforms[index]
