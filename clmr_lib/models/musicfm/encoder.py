"""Frozen MusicFM behind clmr_lib's encoder protocol: clip embeddings, frame embeddings, layer choice."""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from clmr_lib.models.musicfm.model import MusicFM


class MusicFMEncoder(nn.Module):
    """A frozen, pre-trained MusicFM (Won et al., ICASSP 2024) as a clmr_lib encoder.

    Clip embeddings are the time average of one hidden state of the Conformer (Gulati et al.,
    2020), as recommended by the MusicFM authors; layer 7 is their README's choice. The encoder is
    frozen: its parameters do not require gradients, it runs under ``torch.no_grad()``, and it
    stays in eval mode even when ``.train()`` is called on it (as Lightning does on the whole
    LightningModule), so BatchNorm running statistics never change and dropout stays off. Its
    ``state_dict()`` keys (``model.<key>``) are those of the official checkpoints.

    Attributes:
        sample_rate: Input sample rate in Hz (24000).
        frame_rate: Frame embeddings per second (25).
        embedding_dim: Size of an embedding (``encoder_dim``, 1024 for the published models).
        num_layers: Number of selectable hidden states (``depth + 1``, 13 for the published models).
        layer: The hidden state used by ``forward`` and ``frame_embeddings`` (``0 .. num_layers - 1``).

    Args:
        model: The MusicFM model to wrap (frozen in place).
        layer: Hidden state to use (0 = conv front-end output, ``i`` = output of block ``i``).
    """

    sample_rate = MusicFM.sample_rate
    frame_rate = 25

    def __init__(self, model: MusicFM, layer: int = 7) -> None:
        super().__init__()
        self.model = model
        self.embedding_dim = model.conformer.layer_norm.normalized_shape[0]
        self.num_layers = model.depth + 1
        self.layer = layer
        self.model.requires_grad_(False)
        self.train(False)

    @property
    def layer(self) -> int:
        """The hidden state used for embeddings."""
        return self._layer

    @layer.setter
    def layer(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < self.num_layers:
            raise ValueError(f"layer must be an integer in 0..{self.num_layers - 1}, got {value!r}")
        self._layer = value

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_path: str | os.PathLike,
        stats_path: str | os.PathLike,
        layer: int = 7,
        map_location: Any = "cpu",
        num_heads: int = 16,
    ) -> MusicFMEncoder:
        """Load an official MusicFM checkpoint and its stats file (see ``MusicFM.from_pretrained``).

        Args:
            checkpoint_path: ``pretrained_msd.pt`` or ``pretrained_fma.pt``.
            stats_path: The matching ``msd_stats.json`` or ``fma_stats.json``.
            layer: Hidden state to use.
            map_location: Device for the weights.
            num_heads: Attention heads (16 for the published checkpoints).

        Returns:
            The frozen encoder.

        Raises:
            UserError: A file is missing or is not a MusicFM checkpoint / stats file.
        """
        return cls(MusicFM.from_pretrained(checkpoint_path, stats_path, map_location, num_heads), layer)

    def train(self, mode: bool = True) -> MusicFMEncoder:
        """Stay in eval mode whatever ``mode`` is: a frozen encoder's BatchNorm statistics must not move."""
        return super().train(False)

    @staticmethod
    def _as_batch(x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3 and x.shape[1] == 1:
            return x[:, 0]
        if x.dim() != 2:
            raise ValueError(f"MusicFMEncoder expects (batch, samples) or (batch, 1, samples), "
                             f"got {tuple(x.shape)}")
        return x

    @torch.no_grad()
    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All ``num_layers`` hidden states ``(batch, frames, embedding_dim)`` in one pass.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` at 24 kHz.

        Returns:
            ``num_layers`` tensors at 25 frames/s (for a learned weighted sum of layers).
        """
        return self.model.get_hidden_states(self._as_batch(x))

    @torch.no_grad()
    def frame_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of the chosen layer at 25 frames/s.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` at 24 kHz.

        Returns:
            ``(batch, frames, embedding_dim)``, ``frames = ceil(ceil((samples // 240) / 2) / 2)``.
        """
        return self.model.get_latent(self._as_batch(x), self.layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings: the chosen layer averaged over time.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` at 24 kHz.

        Returns:
            ``(batch, embedding_dim)``.
        """
        return self.frame_embeddings(x).mean(dim=1)
