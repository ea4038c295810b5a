"""Conformer encoder of MusicFM (rotary wav2vec 2.0-Conformer), with the official parameter names."""
from typing import Optional

import torch
from torch import nn

from clmr_lib.models.musicfm.attention import RotaryPositionalEmbedding, RotarySelfAttention


class FeedForward(nn.Module):
    """Position-wise feed-forward module: Linear, SiLU (swish), Linear, with dropout.

    Args:
        dim: Model width.
        hidden_dim: Inner width (``intermediate_size``).
        dropout: Dropout after the activation and after the output projection (training only).
    """

    def __init__(self, dim: int, hidden_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(dim, hidden_dim)
        self.activation = nn.SiLU()
        self.intermediate_dropout = nn.Dropout(dropout)
        self.output_dense = nn.Linear(hidden_dim, dim)
        self.output_dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``(batch, time, dim)``."""
        x = self.intermediate_dropout(self.activation(self.intermediate_dense(x)))
        return self.output_dropout(self.output_dense(x))


class ConvolutionModule(nn.Module):
    """Conformer convolution module (Gulati et al., 2020).

    LayerNorm, pointwise conv to ``2 * dim``, GLU, depthwise conv (``kernel_size``, same padding),
    BatchNorm, SiLU, pointwise conv; all convolutions without bias.

    Args:
        dim: Model width.
        kernel_size: Depthwise kernel size (odd; 31 in MusicFM).
        dropout: Output dropout (training only).
    """

    def __init__(self, dim: int, kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd for same padding, got {kernel_size}")
        self.layer_norm = nn.LayerNorm(dim)
        self.pointwise_conv1 = nn.Conv1d(dim, 2 * dim, kernel_size=1, bias=False)
        self.glu = nn.GLU(dim=1)
        self.depthwise_conv = nn.Conv1d(
            dim, dim, kernel_size, padding=(kernel_size - 1) // 2, groups=dim, bias=False
        )
        self.batch_norm = nn.BatchNorm1d(dim)
        self.activation = nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(dim, dim, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply to ``(batch, time, dim)``."""
        x = self.layer_norm(x).transpose(1, 2)
        x = self.glu(self.pointwise_conv1(x))
        x = self.activation(self.batch_norm(self.depthwise_conv(x)))
        x = self.dropout(self.pointwise_conv2(x))
        return x.transpose(1, 2)


class ConformerBlock(nn.Module):
    """Conformer block (Gulati et al., 2020) as used by MusicFM (Won et al., ICASSP 2024).

    ``x + FFN1/2``, ``x + MHSA``, ``x + Conv``, ``x + FFN2/2``, then a final LayerNorm; the
    half-step feed-forward modules, attention and convolution are pre-normed (the convolution
    module carries its own LayerNorm).

    Args:
        dim: Model width.
        num_heads: Attention heads.
        intermediate_size: Feed-forward inner width.
        kernel_size: Depthwise convolution kernel size.
        dropout: Dropout probability of all sub-modules (training only).
        attention: ``"sdpa"`` or ``"eager"`` (see ``RotarySelfAttention``).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        intermediate_size: int,
        kernel_size: int = 31,
        dropout: float = 0.0,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        self.ffn1_layer_norm = nn.LayerNorm(dim)
        self.ffn1 = FeedForward(dim, intermediate_size, dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.self_attn = RotarySelfAttention(dim, num_heads, dropout, attention)
        self.self_attn_dropout = nn.Dropout(dropout)
        self.conv_module = ConvolutionModule(dim, kernel_size, dropout)
        self.ffn2_layer_norm = nn.LayerNorm(dim)
        self.ffn2 = FeedForward(dim, intermediate_size, dropout)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        """Apply to ``(batch, time, dim)`` with rotary tables ``cos``/``sin``."""
        x = x + 0.5 * self.ffn1(self.ffn1_layer_norm(x))
        x = x + self.self_attn_dropout(self.self_attn(self.self_attn_layer_norm(x), cos, sin))
        x = x + self.conv_module(x)
        x = x + 0.5 * self.ffn2(self.ffn2_layer_norm(x))
        return self.final_layer_norm(x)


class PositionalConvEmbedding(nn.Module):
    """Weight-normed grouped convolution of wav2vec 2.0, kept only so that checkpoints load.

    The rotary Conformer that MusicFM builds creates this module but never calls it; the official
    checkpoints store its weights (legacy ``conv.weight_g``/``conv.weight_v`` names, which the
    ``torch.nn.utils.parametrizations.weight_norm`` load hook renames). It has no forward pass.

    Args:
        dim: Model width.
        kernel_size: Convolution width (128).
        groups: Convolution groups (16).
    """

    def __init__(self, dim: int, kernel_size: int = 128, groups: int = 16) -> None:
        super().__init__()
        conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=groups)
        self.conv = nn.utils.parametrizations.weight_norm(conv, name="weight", dim=2)


class ConformerEncoder(nn.Module):
    """Stack of rotary Conformer blocks and a final LayerNorm (Gulati et al., 2020).

    Matches ``transformers``' ``Wav2Vec2ConformerEncoder`` with ``position_embeddings_type="rotary"``
    in evaluation mode without an attention mask, as configured by MusicFM (Won et al., ICASSP
    2024); the parameter names are those of the official checkpoints.

    Args:
        dim: Model width (``encoder_dim``).
        depth: Number of blocks.
        num_heads: Attention heads.
        intermediate_size: Feed-forward inner width.
        kernel_size: Depthwise convolution kernel size.
        rotary_base: Rotary embedding base.
        num_conv_pos_embeddings: Width of the unused positional convolution.
        num_conv_pos_embedding_groups: Groups of the unused positional convolution.
        layer_norm_eps: Epsilon of the final LayerNorm.
        dropout: Dropout probability everywhere (training only).
        attention: ``"sdpa"`` or ``"eager"``.
    """

    def __init__(
        self,
        dim: int = 1024,
        depth: int = 12,
        num_heads: int = 16,
        intermediate_size: int = 4096,
        kernel_size: int = 31,
        rotary_base: float = 10000.0,
        num_conv_pos_embeddings: int = 128,
        num_conv_pos_embedding_groups: int = 16,
        layer_norm_eps: float = 1e-5,
        dropout: float = 0.0,
        attention: str = "sdpa",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"encoder width {dim} is not divisible by num_heads={num_heads}")
        self.embed_positions = RotaryPositionalEmbedding(dim // num_heads, rotary_base)
        self.pos_conv_embed = PositionalConvEmbedding(
            dim, num_conv_pos_embeddings, num_conv_pos_embedding_groups
        )
        self.layer_norm = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(
            ConformerBlock(dim, num_heads, intermediate_size, kernel_size, dropout, attention)
            for _ in range(depth)
        )

    @property
    def depth(self) -> int:
        """Number of Conformer blocks."""
        return len(self.layers)

    def hidden_states(self, x: torch.Tensor, last: Optional[int] = None) -> list[torch.Tensor]:
        """Run the blocks and collect every intermediate state.

        Args:
            x: ``(batch, time, dim)`` encoder input.
            last: Index of the last state wanted, ``0 .. depth`` (default ``depth``); blocks after
                it are not run.

        Returns:
            ``last + 1`` tensors ``(batch, time, dim)``: ``[0]`` is the encoder input, ``[i]`` the
            output of block ``i``, and ``[depth]`` the output of the last block after the final
            LayerNorm.
        """
        last = self.depth if last is None else last
        x = self.dropout(x)
        cos, sin = self.embed_positions(x.shape[1], x.dtype)
        states = [x]
        for block in self.layers[:last]:
            states.append(block(states[-1], cos, sin))
        if last == self.depth:
            states[-1] = self.layer_norm(states[-1])
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Encode ``(batch, time, dim)``; returns the final LayerNorm's output."""
        return self.hidden_states(x)[-1]
