"""Frozen MusicFM behind clmr_lib's encoder protocol: clip embeddings, frame embeddings, layer choice."""
from __future__ import annotations

import os
from typing import Any

import torch

from clmr_lib.errors import UserError
from clmr_lib.models.musicfm.model import MusicFM
from clmr_lib.models.protocol import AudioEncoder, Layer, as_batch, frame_times, stitch_frames

#: Default chunk for clip embeddings (``audio_length``): 10 s, i.e. 250 frames.
CHUNK_SECONDS = 10.0
#: Longest single pass: MusicFM was pre-trained on 30 s excerpts.
WINDOW_SECONDS = 30.0
#: Frames dropped on each inner side of a window when longer audio is stitched from windows.
CONTEXT_SECONDS = 5.0


class MusicFMEncoder(AudioEncoder):
    """A frozen, pre-trained MusicFM (Won et al., ICASSP 2024) as a clmr_lib encoder.

    Clip embeddings are the time average of one hidden state of the Conformer (Gulati et al.,
    2020), as recommended by the MusicFM authors; layer 7 is their README's choice, and ``"all"``
    returns every hidden state for a learned weighted sum in the probe. Frames are the model's
    tokens at 25 Hz; frame ``j`` is centred on ``j * 40`` ms (the centre of its receptive field:
    mel frame ``4 j``, hop 240 samples at 24 kHz, under two stride-2 convolutions).

    Memory is bounded however long the audio is: up to ``window_seconds`` (30 s, MusicFM's
    pre-training length) go through the model in one pass; longer audio is cut into 30 s windows
    overlapping by ``2 * context_seconds``, and each frame is taken from the window where it has at
    least ``context_seconds`` of audio on both sides (attention within a window is global, so
    frames of long audio differ from a hypothetical single pass; the conv front-end's do not).

    The encoder is frozen: its parameters do not require gradients, it runs under
    ``torch.no_grad()``, and it stays in eval mode even when ``.train()`` is called on it (as
    Lightning does on the whole LightningModule), so BatchNorm running statistics never change
    and dropout stays off. Its ``state_dict()`` keys (``model.<key>``) are those of the official
    checkpoints.

    Attributes:
        sample_rate: Input sample rate in Hz (24000).
        frame_rate: Frame embeddings per second (25).
        frame_hop: Samples per frame (960).
        num_layers: Number of hidden states (``depth + 1``, 13 for the published models): 0 is the
            conv front-end's output, ``i`` the output of block ``i``, the last after the final LayerNorm.
        audio_length: Chunk length in samples the evaluation pipeline cuts tracks into.

    Args:
        model: The MusicFM model to wrap (frozen in place).
        layer: Hidden state to use, or ``"all"``.
        chunk_seconds: ``audio_length`` in seconds. 10 s by default: a 29 s MagnaTagATune clip
            gives the probe two chunks to train on, and 250 frames are a stable average; pass 30
            to match pre-training.
        window_seconds: Longest single pass in seconds.
        context_seconds: Overlap kept on each inner side of a window, in seconds.
    """

    sample_rate = MusicFM.sample_rate
    clip_is_frame_mean = True

    def __init__(self, model: MusicFM, layer: Layer = 7, chunk_seconds: float = CHUNK_SECONDS,
                 window_seconds: float = WINDOW_SECONDS, context_seconds: float = CONTEXT_SECONDS) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.depth + 1
        self.layer = layer
        self.frame_hop = 4 * model.hop_length
        self.frame_rate = self.sample_rate / self.frame_hop
        if not chunk_seconds > 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds!r}")
        self.audio_length = int(round(chunk_seconds * self.sample_rate))
        self.window_frames = int(round(window_seconds * self.frame_rate))
        self.context_frames = int(round(context_seconds * self.frame_rate))
        if self.window_frames - 2 * self.context_frames < 1:
            raise ValueError(f"window_seconds={window_seconds} must exceed twice context_seconds={context_seconds}")
        self.model.requires_grad_(False)
        self.train(False)

    @classmethod
    def from_pretrained(
        cls,
        checkpoint_path: str | os.PathLike,
        stats_path: str | os.PathLike,
        layer: Layer = 7,
        map_location: Any = "cpu",
        num_heads: int = 16,
        **kwargs: Any,
    ) -> MusicFMEncoder:
        """Load an official MusicFM checkpoint and its stats file (see ``MusicFM.from_pretrained``).

        Args:
            checkpoint_path: ``pretrained_msd.pt`` or ``pretrained_fma.pt``.
            stats_path: The matching ``msd_stats.json`` or ``fma_stats.json``.
            layer: Hidden state to use, or ``"all"``.
            map_location: Device for the weights.
            num_heads: Attention heads (16 for the published checkpoints).
            **kwargs: ``chunk_seconds``, ``window_seconds``, ``context_seconds``.

        Returns:
            The frozen encoder.

        Raises:
            UserError: A file is missing or is not a MusicFM checkpoint / stats file.
        """
        return cls(MusicFM.from_pretrained(checkpoint_path, stats_path, map_location, num_heads), layer, **kwargs)

    @property
    def layer_dims(self) -> list[int]:
        """Every hidden state has the Conformer's width (1024 for the published models)."""
        return [self.model.conformer.layer_norm.normalized_shape[0]] * self.num_layers

    def train(self, mode: bool = True) -> MusicFMEncoder:
        """Stay in eval mode whatever ``mode`` is: a frozen encoder's BatchNorm statistics must not move."""
        return super().train(False)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        # The mel front-end's reflect padding needs more samples than half its FFT; shorter clips
        # (HEAR has some) are zero-padded, which leaves their single frame centred where it was.
        short = self.model.preprocessor_melspec_2048.min_samples - x.shape[-1]
        return torch.nn.functional.pad(x, (0, short)) if short > 0 else x

    def _window_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Frames of one window: ``(batch, frames, dim)``, or ``(batch, frames, num_layers, dim)`` for ``"all"``."""
        if self.all_layers:
            return torch.stack(self.model.get_hidden_states(x), dim=2)
        return self.model.get_latent(x, self.layer)

    def _frames(self, x: torch.Tensor) -> torch.Tensor:
        x = self._pad(x)
        return stitch_frames(self._window_frames, x, self.frame_hop, self.model.num_tokens(x.shape[-1]),
                             self.window_frames, self.context_frames)

    @torch.no_grad()
    def hidden_states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All ``num_layers`` hidden states ``(batch, frames, embedding_dim)`` in one pass (no windowing).

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` at 24 kHz.

        Returns:
            ``num_layers`` tensors at 25 frames/s.
        """
        return self.model.get_hidden_states(as_batch(x))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings: the chosen layer averaged over time.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)`` at 24 kHz.

        Returns:
            ``(batch, embedding_dim)``, or ``(batch, num_layers, embedding_dim)`` for ``"all"``.
        """
        return self._frames(as_batch(x)).mean(dim=1)

    def _clip_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        return self._frames(x).mean(dim=1)

    def _frame_embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self._frames(x)
        return frames, frame_times(frames.shape[1], self.frame_hop, self.sample_rate)


def build_musicfm_encoder(checkpoint_path: str | os.PathLike = "", stats_path: str | os.PathLike = "",
                          **kwargs: Any) -> MusicFMEncoder:
    """Registry constructor (``ENCODERS["musicfm"]``): a frozen MusicFM from its checkpoint and stats files.

    Raises:
        UserError: A path is missing (MusicFM is a pretrained backbone, it is loaded, never built
            from scratch), or a file is not what MusicFM expects.
    """
    if not checkpoint_path or not stats_path:
        raise UserError("MusicFM is a frozen pretrained backbone: pass --musicfm_checkpoint pretrained_msd.pt and "
                        "--musicfm_stats msd_stats.json (huggingface.co/minzwon/MusicFM); it cannot be trained here")
    return MusicFMEncoder.from_pretrained(checkpoint_path, stats_path, **kwargs)
