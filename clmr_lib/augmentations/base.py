"""Base class of the batched augmentations: per-example random draws, pure application."""
from __future__ import annotations

import torch
from torch import Tensor, nn

Params = dict[str, Tensor]


class BatchAugmentation(nn.Module):
    """A random audio transform applied to each example of a batch independently.

    Subclasses implement two methods and nothing else:

    * :meth:`sample_params` draws, for every example of the batch, whether the transform
      is applied (``"mask"``, probability ``p``) and its random parameters. All random
      parameters are drawn there, from torch's global RNG on the batch's device (so
      ``lightning.seed_everything`` seeds them per rank) or from ``generator``.
    * :meth:`apply` is pure: given a batch and one parameter set per example it returns
      the transformed batch, with no randomness of its own.

    Transforms whose random draws are whole signals (Gaussian noise) draw them in
    :meth:`sample_signals`, which :meth:`forward` calls for the selected examples only, so
    that a rarely applied transform does not pay for a full batch of noise.

    :meth:`forward` accepts ``(batch, samples)`` or ``(batch, 1, samples)`` float tensors on
    any device, applies the transform to the selected examples only and returns a tensor of
    the input's shape and dtype. Half-precision input is processed in float32. Augmentations
    make training inputs, so :meth:`forward` runs without autograd.

    Args:
        p: Probability of applying the transform to each example, in [0, 1].
        generator: Optional random generator; it must live on the device of the batches.
    """

    def __init__(self, p: float, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        self.p = float(p)
        self.generator = generator

    # Random draws ---------------------------------------------------------------------
    def _uniform(self, batch_size: int, device: torch.device, low: float, high: float) -> Tensor:
        """Draws ``batch_size`` floats uniformly from [low, high] (float32)."""
        u = torch.rand(batch_size, device=device, generator=self.generator)
        return low + (high - low) * u

    def _mask(self, batch_size: int, device: torch.device) -> Tensor:
        """Draws which examples the transform is applied to (probability ``p``)."""
        # Always draw, even for p in {0, 1}, so the random stream does not depend on p.
        return torch.rand(batch_size, device=device, generator=self.generator) < self.p

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the application mask and the random parameters of every example.

        Args:
            batch_size: Number of examples.
            device: Device of the batch.

        Returns:
            A dict with ``"mask"`` (bool, ``(batch_size,)``) and one tensor per parameter
            whose first dimension is ``batch_size``.
        """
        return {"mask": self._mask(batch_size, device)}

    def sample_signals(self, params: Params, x: Tensor) -> Params:
        """Draws random signals for the selected examples (default: none).

        Args:
            params: Parameters of the selected examples (without ``"mask"``).
            x: The selected examples, ``(n, samples)``, in the compute dtype.

        Returns:
            ``params``, possibly with more entries.
        """
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Applies the transform to every example of ``x`` (pure, no randomness).

        Args:
            x: ``(n, samples)`` float32 or float64 batch.
            params: One entry per parameter, first dimension ``n`` (no ``"mask"``).

        Returns:
            The transformed batch, same shape and dtype as ``x``.
        """
        raise NotImplementedError

    # Batch handling -------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        """Applies the transform to each example with probability ``p``.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` floating point batch.

        Returns:
            A tensor of the same shape and dtype as ``x``.
        """
        flat = _as_batch(x)
        params = self.sample_params(flat.shape[0], flat.device)
        mask = params.pop("mask")
        if self.p == 0.0:
            return x
        # One device sync per transform: selecting examples needs their count.
        index = mask.nonzero().squeeze(1)
        if index.numel() == 0:
            return x
        compute_dtype = torch.promote_types(flat.dtype, torch.float32)
        everything = index.numel() == flat.shape[0]
        selected = flat if everything else flat.index_select(0, index)
        selected = selected.to(compute_dtype)
        selected_params = params if everything else {k: v[index] for k, v in params.items()}
        selected_params = self.sample_signals(selected_params, selected)
        out = self.apply(selected, selected_params).to(flat.dtype)
        if not everything:
            out = flat.index_copy(0, index, out)
        return out.reshape(x.shape).contiguous()

    def extra_repr(self) -> str:
        """Shows ``p`` in the module's repr."""
        return f"p={self.p}"


def _as_batch(x: Tensor) -> Tensor:
    """Views ``(batch, samples)`` or ``(batch, 1, samples)`` input as ``(batch, samples)``."""
    if not torch.is_floating_point(x):
        raise TypeError(f"augmentations need floating point audio, got {x.dtype}")
    if x.dim() == 3 and x.shape[1] == 1:
        return x.reshape(x.shape[0], x.shape[2])
    if x.dim() != 2:
        raise ValueError(
            "augmentations take (batch, samples) or (batch, 1, samples), "
            f"got shape {tuple(x.shape)}"
        )
    return x


def check_range(name: str, low: float, high: float, lower: float | None = None,
                upper: float | None = None) -> None:
    """Raises ValueError unless ``lower <= low <= high <= upper``.

    Args:
        name: Parameter name used in the message (``min_<name>``/``max_<name>``).
        low: Lower end of the range.
        high: Upper end of the range.
        lower: Smallest allowed value, if any.
        upper: Largest allowed value, if any.
    """
    if low > high:
        raise ValueError(f"min_{name} ({low}) must not be greater than max_{name} ({high})")
    if lower is not None and low < lower:
        raise ValueError(f"min_{name} must be >= {lower}, got {low}")
    if upper is not None and high > upper:
        raise ValueError(f"max_{name} must be <= {upper}, got {high}")


def check_sample_rate(sample_rate: int) -> int:
    """Returns ``sample_rate`` as an int after checking it is positive."""
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate}")
    return int(sample_rate)
