"""Multi-head self-attention with rotary position embedding, as in MusicFM's wav2vec 2.0-Conformer."""
import math

import torch
from torch import nn
from torch.nn import functional as F

ATTENTION_IMPLEMENTATIONS = ("sdpa", "eager")


class RotaryPositionalEmbedding(nn.Module):
    """Cosine/sine tables of rotary position embedding (Su et al., RoFormer, 2021).

    The inverse frequencies ``1 / base ** (arange(0, head_dim, 2) / head_dim)`` are a stored
    buffer (``inv_freq``) in the official MusicFM checkpoints; the tables are computed from it in
    float32 for positions ``0 .. T - 1``.

    Args:
        head_dim: Size of one attention head.
        base: Rotary base (10000 in MusicFM).
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    def forward(self, length: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(cos, sin)``, each ``(1, length, 1, head_dim)`` in ``dtype``."""
        positions = torch.arange(length, device=self.inv_freq.device, dtype=self.inv_freq.dtype)
        angles = torch.outer(positions, self.inv_freq)
        angles = torch.cat((angles, angles), dim=-1)[None, :, None, :]
        return angles.cos().to(dtype), angles.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class RotarySelfAttention(nn.Module):
    """Multi-head self-attention of the rotary wav2vec 2.0-Conformer used by MusicFM.

    Unlike RoFormer, the rotation is applied to the (layer-normed) input states, split into
    ``head_dim`` chunks, *before* the query and key projections; the values use the un-rotated
    states. Scores are ``q k^T / sqrt(head_dim)``, softmax over keys, no mask.

    ``implementation="sdpa"`` uses ``torch.nn.functional.scaled_dot_product_attention`` (fused
    kernels); ``"eager"`` spells out ``softmax(q k^T / sqrt(d)) v`` and serves as a reference.

    Args:
        dim: Model width.
        num_heads: Number of heads (``dim`` must be divisible by it).
        dropout: Dropout on the attention probabilities (training only).
        implementation: ``"sdpa"`` or ``"eager"``.
    """

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0, implementation: str = "sdpa") -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim={dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.dropout = dropout
        self.implementation = implementation
        self.linear_q = nn.Linear(dim, dim)
        self.linear_k = nn.Linear(dim, dim)
        self.linear_v = nn.Linear(dim, dim)
        self.linear_out = nn.Linear(dim, dim)

    @property
    def implementation(self) -> str:
        """Attention kernel: ``"sdpa"`` or ``"eager"``."""
        return self._implementation

    @implementation.setter
    def implementation(self, value: str) -> None:
        if value not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {value!r}")
        self._implementation = value

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Attend over time.

        Args:
            x: ``(batch, time, dim)`` layer-normed states.
            cos: Rotary table ``(1, time, 1, head_dim)``.
            sin: Rotary table ``(1, time, 1, head_dim)``.

        Returns:
            ``(batch, time, dim)``.
        """
        batch, length, dim = x.shape
        heads = x.view(batch, length, self.num_heads, self.head_dim)
        rotated = (heads * cos + _rotate_half(heads) * sin).view(batch, length, dim)

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.linear_q(rotated)), split(self.linear_k(rotated)), split(self.linear_v(x))
        p = self.dropout if self.training else 0.0
        if self.implementation == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)
            probs = F.dropout(torch.softmax(scores, dim=-1), p=p)
            out = torch.matmul(probs, v)
        return self.linear_out(out.transpose(1, 2).reshape(batch, length, dim))
