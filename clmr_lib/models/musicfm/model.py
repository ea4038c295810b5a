"""MusicFM (25 Hz): mel front-end, conv subsampling and Conformer; loads the official checkpoints as they are."""
from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

from clmr_lib.errors import UserError
from clmr_lib.models.musicfm.attention import RotarySelfAttention
from clmr_lib.models.musicfm.checkpoint import check_state_dict, infer_config, read_checkpoint, read_stats
from clmr_lib.models.musicfm.conformer import ConformerEncoder
from clmr_lib.models.musicfm.conv import Conv2dSubsampling
from clmr_lib.models.musicfm.frontend import MelFrontEnd
from clmr_lib.models.musicfm.quantizer import RandomProjectionQuantizer


class MusicFM(nn.Module):
    """MusicFM25Hz, a masked-token music foundation model (Won et al., ICASSP 2024), inference path.

    A 24 kHz waveform becomes a normalised 128-band log-mel spectrogram (100 frames/s), two
    residual conv blocks subsample it to 25 tokens/s, and a 12-block rotary Conformer (Gulati et
    al., 2020) encodes them. The attribute names are those of the official ``MusicFM25Hz`` so
    that a published checkpoint's keys, minus their ``model.`` prefix, load with ``strict=True``;
    the pre-training parts (``quantizer_melspec_2048_0``, ``linear``, ``cls_token``) are kept for
    that reason only. Unlike the original constructor, nothing here reseeds the global RNGs.

    The mel front-end always runs in float32; the rest follows the weights' dtype or an active
    autocast (under bf16 autocast the hidden states come out in bf16). The defaults build the
    published architecture (328,932,480 parameters).

    Args:
        conv_dim: Channels of the conv front-end.
        encoder_dim: Conformer width.
        encoder_depth: Number of Conformer blocks.
        num_heads: Attention heads (16 in the published models; the checkpoints store no head
            count, only the rotary table whose length is half the head size).
        intermediate_size: Feed-forward inner width.
        n_mels: Mel bands.
        hop_length: Mel hop in samples (240, i.e. 100 frames/s at 24 kHz).
        codebook_dim: Size of the quantizer's projected vectors (pre-training only).
        codebook_size: Number of target tokens (pre-training only).
        mel_mean: Mean of the dB mel spectrogram (``melspec_2048_mean`` of the stats file).
        mel_std: Standard deviation of the dB mel spectrogram (``melspec_2048_std``).
        dropout: Dropout probability of the Conformer (training mode only).
        attention: ``"sdpa"`` (``scaled_dot_product_attention``) or ``"eager"`` (explicit softmax).
    """

    sample_rate = 24000

    def __init__(
        self,
        conv_dim: int = 512,
        encoder_dim: int = 1024,
        encoder_depth: int = 12,
        num_heads: int = 16,
        intermediate_size: int = 4096,
        n_mels: int = 128,
        hop_length: int = 240,
        codebook_dim: int = 16,
        codebook_size: int = 4096,
        mel_mean: float = 0.0,
        mel_std: float = 1.0,
        dropout: float = 0.1,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(encoder_dim))
        self.preprocessor_melspec_2048 = MelFrontEnd(
            self.sample_rate, n_fft=2048, hop_length=hop_length, n_mels=n_mels, mean=mel_mean, std=mel_std
        )
        # Targets are 4 stacked mel frames (one token's worth) projected to `codebook_dim`.
        self.quantizer_melspec_2048_0 = RandomProjectionQuantizer(
            4 * n_mels, codebook_dim, codebook_size, seed=142
        )
        self.conv = Conv2dSubsampling(1, conv_dim, encoder_dim, strides=(2, 2), n_bands=n_mels)
        self.conformer = ConformerEncoder(
            encoder_dim, encoder_depth, num_heads, intermediate_size, dropout=dropout, attention=attention
        )
        self.linear = nn.Linear(encoder_dim, codebook_size)

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_path: str | os.PathLike,
        stats_path: str | os.PathLike,
        map_location: Any = "cpu",
        num_heads: int = 16,
    ) -> MusicFM:
        """Load an official checkpoint (``pretrained_msd.pt``/``pretrained_fma.pt``) and its stats file.

        Everything is local: the architecture is read off the tensor shapes, the file is read with
        ``torch.load(..., weights_only=True)``, the model is laid out on the meta device and the
        checkpoint's tensors are assigned to it (no random initialisation, global RNGs untouched).

        Args:
            checkpoint_path: The ``.pt`` file (``{"state_dict": {"model.<key>": tensor}}``).
            stats_path: The stats JSON published with it (``melspec_2048_mean``/``_std``).
            map_location: Device for the weights (``torch.load``'s ``map_location``).
            num_heads: Attention heads; 16 for the published checkpoints.

        Returns:
            The model in eval mode.

        Raises:
            UserError: A file is missing or is not what MusicFM expects (one-line message).
        """
        state = read_checkpoint(checkpoint_path, map_location)
        config = infer_config(state, checkpoint_path, num_heads)
        mean, std = read_stats(stats_path)
        with torch.device("meta"):
            model = cls(**config, mel_mean=mean, mel_std=std)
        check_state_dict(model.state_dict(), state, checkpoint_path)
        # The published files store BatchNorm counters as float32; `assign=True` would keep that
        # dtype, so give them the model's int64 first.
        state = {
            key: value.long() if key.endswith("num_batches_tracked") else value for key, value in state.items()
        }
        model.load_state_dict(state, strict=True, assign=True)
        leftover = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
        if leftover:
            raise UserError(f"{os.fspath(checkpoint_path)} did not provide 'model.{leftover[0]}'")
        return model.eval()

    @property
    def depth(self) -> int:
        """Number of Conformer blocks; ``get_latent`` accepts layers ``0 .. depth``."""
        return self.conformer.depth

    @property
    def hop_length(self) -> int:
        """Mel hop in samples."""
        return self.preprocessor_melspec_2048.hop_length

    @property
    def frame_rate(self) -> float:
        """Tokens per second of the output (25 for a 240-sample hop at 24 kHz)."""
        return self.sample_rate / self.hop_length / 4

    def num_tokens(self, num_samples: int) -> int:
        """Output length for ``num_samples`` input samples: ``ceil(ceil((N // hop) / 2) / 2)``."""
        return math.ceil(math.ceil((num_samples // self.hop_length) / 2) / 2)

    def set_attention(self, implementation: str) -> None:
        """Switch every attention layer to ``"sdpa"`` or ``"eager"`` (same weights, same results)."""
        for module in self.modules():
            if isinstance(module, RotarySelfAttention):
                module.implementation = implementation

    def _check_layer(self, layer_ix: int) -> None:
        if isinstance(layer_ix, bool) or not isinstance(layer_ix, int) or not 0 <= layer_ix <= self.depth:
            raise ValueError(f"layer_ix must be an integer in 0..{self.depth}, got {layer_ix!r}")

    def _hidden_states(self, wav: torch.Tensor, last: int) -> list[torch.Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"MusicFM expects waveforms of shape (batch, samples), got {tuple(wav.shape)}")
        mel = self.preprocessor_melspec_2048(wav)
        tokens = self.conv(mel.to(self.conv.linear.weight.dtype))
        return self.conformer.hidden_states(tokens, last)

    def get_hidden_states(self, wav: torch.Tensor) -> list[torch.Tensor]:
        """All ``depth + 1`` hidden states in one pass (e.g. for a learned weighted sum of layers).

        Args:
            wav: ``(batch, samples)`` float waveforms at 24 kHz.

        Returns:
            ``depth + 1`` tensors ``(batch, time, encoder_dim)`` at 25 Hz, indexed as in ``get_latent``.
        """
        return self._hidden_states(wav, self.depth)

    def get_latent(self, wav: torch.Tensor, layer_ix: int = 12) -> torch.Tensor:
        """One layer's representation, as ``MusicFM25Hz.get_latent``.

        Blocks after ``layer_ix`` are not run.

        Args:
            wav: ``(batch, samples)`` float waveforms at 24 kHz.
            layer_ix: ``0`` is the conv front-end's output (the Conformer input), ``i`` the output
                of block ``i``, and ``depth`` (12 for the published models) the last block's
                output after the Conformer's final LayerNorm.

        Returns:
            ``(batch, time, encoder_dim)`` with ``time = num_tokens(samples)`` (25 Hz).

        Raises:
            ValueError: ``layer_ix`` is outside ``0 .. depth`` or ``wav`` is not 2-D.
        """
        self._check_layer(layer_ix)
        return self._hidden_states(wav, layer_ix)[layer_ix]

    def forward(self, wav: torch.Tensor, layer_ix: int = 12) -> torch.Tensor:
        """Same as ``get_latent`` (pre-training, the original ``forward``, is not implemented)."""
        return self.get_latent(wav, layer_ix)
