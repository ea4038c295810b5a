"""SampleCNN: a 1-D CNN over raw waveform samples (Lee et al., 2017), in CLMR's exact layout."""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from clmr_lib.errors import UserError
from clmr_lib.models.protocol import (AudioEncoder, frame_times, stack_layers, windowed_clip_embeddings,
                                      windowed_frame_embeddings)

#: CLMR's layout for 59,049-sample (3^10) clips at 22,050 Hz: channels of the 11 convolution
#: blocks (``sequential.0`` .. ``sequential.10``) and the max-pool strides of blocks 1..9.
CLMR_CHANNELS = (128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512)
CLMR_STRIDES = (3, 3, 3, 3, 3, 3, 3, 3, 3)


def output_frames(audio_length: int, strides: Sequence[int]) -> int:
    """Number of time frames SampleCNN leaves of ``audio_length`` input samples.

    The first convolution has kernel 3 and stride 3 without padding; every following block keeps
    the length (kernel 3, padding 1) and max-pools by its stride.
    """
    frames = (audio_length - 3) // 3 + 1 if audio_length >= 3 else 0
    for stride in strides:
        frames //= stride
    return frames


class SampleCNN(AudioEncoder):
    """SampleCNN encoder with CLMR's parameter names, so original CLMR weights load strictly.

    ``sequential.0`` is Conv1d(1, c0, 3, stride 3) + BatchNorm + ReLU; ``sequential.1..n`` are
    Conv1d(k 3, pad 1) + BatchNorm + ReLU + MaxPool(stride); the last block is Conv1d + BatchNorm +
    ReLU without pooling. With CLMR's defaults a 59,049-sample clip is reduced to one frame of 512
    channels, which is the representation. Other input lengths and sample rates take other strides
    and channels; when more than one frame is left, frames are averaged.

    Encoder protocol (:class:`~clmr_lib.models.protocol.AudioEncoder`): the ``num_layers`` layers
    are the outputs of the convolution blocks ``sequential.0 ..`` averaged over time; the default
    ``layer`` is the last block, whose output is the representation above. Clip embeddings of
    longer audio average ``audio_length`` windows tiling it; frame embeddings are the embeddings of
    ``audio_length`` windows centred every ``frame_hop`` samples (0.5 s by default: every frame
    costs a full pass over its window).

    Args:
        channels: Output channels of every convolution block (``len(strides) + 2`` values).
        strides: Max-pool strides of the middle blocks.
        n_classes: Size of the ``fc`` output layer; ``None`` makes ``fc`` the identity (the
            contrastive encoder, whose output is the representation).
        dropout: Dropout before ``fc`` (CLMR's supervised variant uses 0.5).
        sample_rate: Sample rate the encoder expects, in Hz.
        audio_length: Input length in samples the encoder was designed for.
    """

    def __init__(
        self,
        channels: Sequence[int] = CLMR_CHANNELS,
        strides: Sequence[int] = CLMR_STRIDES,
        n_classes: Optional[int] = None,
        dropout: float = 0.0,
        sample_rate: int = 22050,
        audio_length: int = 59049,
    ):
        super().__init__()
        channels, strides = [int(c) for c in channels], [int(s) for s in strides]
        if len(channels) != len(strides) + 2:
            raise ValueError(
                f"SampleCNN needs len(channels) == len(strides) + 2, got {len(channels)} channels "
                f"and {len(strides)} strides"
            )
        if output_frames(audio_length, strides) < 1:
            raise UserError(
                f"audio_length {audio_length} is too short for SampleCNN strides {strides}: it "
                f"reduces to no frame; use audio_length >= {minimum_length(strides)} or fewer strides"
            )
        self.channels, self.strides = channels, strides
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        self.num_layers = len(channels)
        self.layer = -1
        self.frame_hop = max(self.sample_rate // 2, 1)
        #: Windows of one clip per pass when embedding long audio (bounds memory).
        self.windows_per_call = 16

        blocks = [nn.Sequential(nn.Conv1d(1, channels[0], 3, stride=3, padding=0),
                                nn.BatchNorm1d(channels[0]), nn.ReLU())]
        for c_in, c_out, stride in zip(channels[:-2], channels[1:-1], strides):
            blocks.append(nn.Sequential(nn.Conv1d(c_in, c_out, 3, stride=1, padding=1),
                                        nn.BatchNorm1d(c_out), nn.ReLU(), nn.MaxPool1d(stride, stride=stride)))
        blocks.append(nn.Sequential(nn.Conv1d(channels[-2], channels[-1], 3, stride=1, padding=1),
                                    nn.BatchNorm1d(channels[-1]), nn.ReLU()))
        self.sequential = nn.Sequential(*blocks)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(channels[-1], n_classes) if n_classes else nn.Identity()

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Representation before ``fc``: ``(batch, samples)`` or ``(batch, 1, samples)`` → ``(batch, embedding_dim)``."""
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SampleCNN expects (batch, samples) or (batch, 1, samples), got {tuple(x.shape)}")
        if output_frames(x.shape[-1], self.strides) < 1:
            raise ValueError(f"{x.shape[-1]} samples are too short for SampleCNN strides {self.strides}")
        return self.sequential(x).mean(dim=-1)

    @property
    def layer_dims(self) -> list[int]:
        """Channels of each convolution block."""
        return list(self.channels)

    @property
    def frame_hop(self) -> int:
        """Samples between the centres of frame embeddings."""
        return self._frame_hop

    @frame_hop.setter
    def frame_hop(self, value: int) -> None:
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"frame_hop must be a positive number of samples, got {value!r}")
        self._frame_hop = int(value)

    @property
    def frame_rate(self) -> float:
        """Frame embeddings per second."""
        return self.sample_rate / self.frame_hop

    def layer_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        """Block outputs averaged over time, for the selected ``layer``; blocks after it are not run.

        Args:
            x: ``(batch, samples)`` or ``(batch, 1, samples)``.

        Returns:
            ``(batch, channels[layer])``, or ``(batch, num_layers, max(channels))`` for ``"all"``
            (narrower blocks zero-padded).
        """
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"SampleCNN expects (batch, samples) or (batch, 1, samples), got {tuple(x.shape)}")
        if output_frames(x.shape[-1], self.strides) < 1:
            raise ValueError(f"{x.shape[-1]} samples are too short for SampleCNN strides {self.strides}")
        last = self.num_layers - 1 if self.all_layers else self.layer
        pooled = []
        for block in self.sequential[:last + 1]:
            x = block(x)
            pooled.append(x.mean(dim=-1))
        return stack_layers(pooled, self.embedding_dim) if self.all_layers else pooled[-1]

    def representation(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding of the selected layer, before ``fc`` (:meth:`embed` for the default last layer)."""
        return self.embed(x) if self.layer == self.num_layers - 1 else self.layer_embeddings(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (``fc`` is the identity) or logits (supervised variant).

        With another ``layer`` than the last (or ``"all"``): that layer's embedding, without ``fc``.
        """
        if self.layer == self.num_layers - 1:
            return self.fc(self.dropout(self.embed(x)))
        return self.layer_embeddings(x)

    def _clip_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        return windowed_clip_embeddings(self.representation, x, self.audio_length, self.windows_per_call)

    def _frame_embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = windowed_frame_embeddings(self.representation, x, self.audio_length, self.frame_hop,
                                           self.windows_per_call)
        return frames, frame_times(frames.shape[1], self.frame_hop, self.sample_rate)

    @classmethod
    def from_state_dict(cls, state_dict: dict, strides: Optional[Sequence[int]] = None, **kwargs) -> "SampleCNN":
        """Build a SampleCNN whose channels match a state dict's ``sequential.<i>.0.weight`` shapes.

        Pool strides cannot be read from weights; CLMR's (all 3) are assumed unless given.
        """
        channels, i = [], 0
        while f"sequential.{i}.0.weight" in state_dict:
            channels.append(int(state_dict[f"sequential.{i}.0.weight"].shape[0]))
            i += 1
        if len(channels) < 2:
            raise ValueError("state dict has no SampleCNN 'sequential.<i>.0.weight' keys")
        strides = list(strides) if strides is not None else [3] * (len(channels) - 2)
        if "fc.weight" in state_dict and "n_classes" not in kwargs:
            kwargs["n_classes"] = int(state_dict["fc.weight"].shape[0])
        return cls(channels=channels, strides=strides, **kwargs)


def minimum_length(strides: Sequence[int]) -> int:
    """Smallest input length that SampleCNN with these pool strides reduces to one frame."""
    frames = 1
    for stride in strides:
        frames *= stride
    return 3 * frames
