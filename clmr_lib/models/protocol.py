"""The encoder protocol every clmr_lib encoder follows, and the audio plumbing all encoders share."""
from __future__ import annotations

from typing import Callable, Sequence, Union

import numpy as np
import soxr
import torch
from torch import nn

from clmr_lib.data.audio_io import RESAMPLE_QUALITY

#: Value of ``AudioEncoder.layer`` that selects every layer (for a learned weighted sum in a probe).
ALL_LAYERS = "all"

Layer = Union[int, str]


def normalize_layer(layer: Layer, num_layers: int) -> Layer:
    """Check a layer choice: an index in ``-num_layers .. num_layers - 1`` (made non-negative) or ``"all"``.

    Raises:
        ValueError: Anything else (including booleans and floats).
    """
    if isinstance(layer, str) and layer.strip().lower() == ALL_LAYERS:
        return ALL_LAYERS
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not -num_layers <= layer < num_layers:
        raise ValueError(f"layer must be an integer in 0..{num_layers - 1} (negative counts from the end) "
                         f"or '{ALL_LAYERS}', got {layer!r}")
    return int(layer) % num_layers


def as_batch(audio: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Float ``(batch, samples)`` waveforms from ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)``."""
    x = torch.as_tensor(audio)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    elif x.dim() == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"expected audio of shape (samples,), (batch, samples) or (batch, 1, samples), "
                         f"got {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def resample(audio: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``(batch, samples)`` waveforms with soxr, as audio files are read (``clmr_lib.data.audio_io``).

    The result has ``samples * new_rate // orig_rate`` samples (the length ``read_audio`` gives a
    file), the input's dtype and device. Encoders are frozen, so the round trip through NumPy
    loses no gradient anyone needs.

    Args:
        audio: ``(batch, samples)`` float waveforms at ``orig_rate``.
        orig_rate: Their sample rate in Hz.
        new_rate: The wanted sample rate in Hz.
    """
    orig_rate, new_rate = int(orig_rate), int(new_rate)
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {new_rate}")
    if orig_rate == new_rate:
        return audio
    length = audio.shape[-1] * new_rate // orig_rate
    source = audio.detach().to("cpu", torch.float32).numpy().T  # soxr takes (samples, channels)
    out = soxr.resample(np.ascontiguousarray(source), orig_rate, new_rate, quality=RESAMPLE_QUALITY)
    out = np.ascontiguousarray(out.reshape(out.shape[0], -1).T[:, :length])
    if out.shape[1] < length:
        out = np.pad(out, ((0, 0), (0, length - out.shape[1])))
    return torch.from_numpy(out).to(audio.device, audio.dtype)


def frame_times(num_frames: int, hop: float, sample_rate: int) -> torch.Tensor:
    """Centres of frames ``0 .. num_frames - 1`` spaced ``hop`` samples apart, the first at 0, in seconds (float64)."""
    return torch.arange(num_frames, dtype=torch.float64) * (hop / sample_rate)


def tile_starts(num_samples: int, window: int) -> list[int]:
    """Starts of ``window``-sample windows covering ``num_samples`` samples without padding.

    Windows follow each other from 0; when the audio is not a whole number of windows, one more
    window ends exactly at the end (overlapping the one before), so every sample is seen and no
    window holds padding. Audio shorter than a window gives one window at 0 (to be zero-padded).
    """
    if num_samples <= window:
        return [0]
    starts = list(range(0, num_samples - window + 1, window))
    if starts[-1] + window < num_samples:
        starts.append(num_samples - window)
    return starts


def centred_windows(audio: torch.Tensor, window: int, hop: int) -> tuple[torch.Tensor, int]:
    """Windows of ``window`` samples centred every ``hop`` samples from sample 0, zero-padded at both ends.

    Window ``k`` is centred on sample ``k * hop`` (its middle sample, ``window // 2``); there is
    one window per centre inside the audio, ``ceil(samples / hop)`` in all. The windows are a view
    of one padded copy of the audio, so slicing a few at a time keeps memory bounded.

    Args:
        audio: ``(batch, samples)``.
        window: Window length in samples.
        hop: Distance between window centres in samples.

    Returns:
        ``(windows (batch, n_windows, window), n_windows)``.
    """
    num_samples = audio.shape[-1]
    count = max(-(-num_samples // hop), 1)
    left = window // 2
    right = max((count - 1) * hop + window - left - num_samples, 0)
    padded = nn.functional.pad(audio, (left, right))
    return padded.unfold(-1, window, hop)[:, :count], count


def stitch_frames(fn: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, hop: int, num_frames: int,
                  window_frames: int, context_frames: int) -> torch.Tensor:
    """Frame embeddings of long audio from overlapping windows, with memory bounded by the window.

    ``fn`` maps ``(batch, samples)`` to ``(batch, frames, ...)`` with frame ``j`` centred on sample
    ``j * hop`` of its input. Audio of at most ``window_frames`` frames goes through ``fn`` in one
    pass. Longer audio is cut into windows of ``window_frames`` frames that start on frame
    boundaries and overlap by ``2 * context_frames``; from each window only the frames with at
    least ``context_frames`` frames of real audio on both sides (or the true start/end of the
    audio) are kept, so every frame comes from exactly one window and a model with a local
    receptive field shorter than the context gives the same frames as one pass. The last window
    runs to the end of the audio, so no input is ever longer than ``window_frames + 1`` frames.

    Args:
        fn: Frame-level model.
        audio: ``(batch, samples)``.
        hop: Samples per frame of ``fn``.
        num_frames: Frames ``fn`` would give for the whole audio in one pass.
        window_frames: Longest input, in frames.
        context_frames: Frames dropped on each inner side of a window.

    Returns:
        ``(batch, num_frames, ...)``.
    """
    stride = window_frames - 2 * context_frames
    if stride < 1:
        raise ValueError(f"window of {window_frames} frames leaves nothing between {context_frames} frames of "
                         "context on each side")
    num_samples = audio.shape[-1]
    if num_samples <= window_frames * hop:
        return fn(audio)
    pieces = []
    for first in range(0, num_frames, stride):
        start = max(first - context_frames, 0)
        stop = first + stride + context_frames
        # Up to the true end when the window would reach it: the last frames then see the same
        # end of the audio as in one pass.
        end = num_samples if stop * hop >= num_samples - hop else stop * hop
        frames = fn(audio[:, start * hop:end])
        keep = num_frames - first if end == num_samples else stride
        pieces.append(frames[:, first - start:first - start + keep])
        if end == num_samples:
            break
    out = torch.cat(pieces, dim=1)
    if out.shape[1] != num_frames:
        raise RuntimeError(f"stitched {out.shape[1]} frames where one pass gives {num_frames}")
    return out


def windowed_clip_embeddings(fn: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, window: int,
                             windows_per_call: int = 16) -> torch.Tensor:
    """Clip embeddings of a fixed-window model for audio of any length: the mean over windows tiling it.

    The windows are those of :func:`tile_starts` (audio shorter than one window is zero-padded at
    the end), embedded ``windows_per_call`` at a time per clip, so memory does not grow with length.

    Args:
        fn: Maps ``(n, window)`` waveforms to ``(n, ...)`` embeddings.
        audio: ``(batch, samples)``.
        window: Input length of ``fn`` in samples.
        windows_per_call: Windows of each clip per call of ``fn``.

    Returns:
        ``(batch, ...)``: the average of the windows' embeddings.
    """
    if audio.shape[-1] < window:
        audio = nn.functional.pad(audio, (0, window - audio.shape[-1]))
    starts = tile_starts(audio.shape[-1], window)
    total = None
    for group in range(0, len(starts), windows_per_call):
        chunk = torch.stack([audio[:, s:s + window] for s in starts[group:group + windows_per_call]], dim=1)
        out = fn(chunk.reshape(-1, window)).unflatten(0, chunk.shape[:2]).sum(dim=1)
        total = out if total is None else total + out
    return total / len(starts)


def windowed_frame_embeddings(fn: Callable[[torch.Tensor], torch.Tensor], audio: torch.Tensor, window: int, hop: int,
                              windows_per_call: int = 16) -> torch.Tensor:
    """Frame embeddings of a fixed-window model: one window centred every ``hop`` samples (see :func:`centred_windows`).

    Args:
        fn: Maps ``(n, window)`` waveforms to ``(n, ...)`` embeddings.
        audio: ``(batch, samples)``.
        window: Input length of ``fn`` in samples.
        hop: Distance between frame centres in samples.
        windows_per_call: Windows of each clip per call of ``fn`` (bounds memory).

    Returns:
        ``(batch, ceil(samples / hop), ...)``; frame ``k`` is centred on sample ``k * hop``.
    """
    windows, count = centred_windows(audio, window, hop)
    pieces = []
    for group in range(0, count, windows_per_call):
        chunk = windows[:, group:group + windows_per_call]
        pieces.append(fn(chunk.reshape(-1, window)).unflatten(0, chunk.shape[:2]))
    return torch.cat(pieces, dim=1)


class AudioEncoder(nn.Module):
    """Base class of clmr_lib's frozen-encoder protocol (SampleCNN, MusicFM, and any later encoder).

    Inspired by the model descriptions of MARBLE (sample rate, token rate, feature size, layer
    count) and s3prl's layer choice. An encoder declares:

    - ``sample_rate`` (Hz): the rate ``forward`` expects; ``clip_embeddings`` and
      ``frame_embeddings`` resample audio of any other rate to it (soxr).
    - ``audio_length`` (samples): the clip length it is designed for; the evaluation pipeline cuts
      tracks into chunks of this length and calls ``forward`` on them.
    - ``num_layers``: how many representations it offers (``layer_dims`` gives their sizes).
    - ``layer``: the one in use, ``0 .. num_layers - 1`` (negative indices count from the end), or
      ``"all"`` for all of them stacked, for a learned weighted sum of layers in the probe.
    - ``embedding_dim``: size of one embedding of the selected layer (in ``"all"`` mode the
      largest layer; smaller layers are zero-padded to it).
    - ``frame_rate`` (Hz): frames per second of ``frame_embeddings``.

    and provides:

    - ``forward(x)``: clip embeddings of ``(batch, samples)`` or ``(batch, 1, samples)`` at
      ``sample_rate``: ``(batch, embedding_dim)``, or ``(batch, num_layers, embedding_dim)`` in
      ``"all"`` mode.
    - ``clip_embeddings(audio, sample_rate)``: the same for audio of any length and rate, with
      memory bounded by a window however long the audio is.
    - ``frame_embeddings(audio, sample_rate)``: ``(embeddings (batch, frames, embedding_dim)`` —
      ``(batch, frames, num_layers, embedding_dim)`` in ``"all"`` mode — ``, timestamps (frames,))``
      with timestamps in seconds at frame centres (SampleCNN and MusicFM centre the first on 0 s).

    Subclasses implement ``layer_dims``, ``_clip_embeddings(x)`` and ``_frame_embeddings(x)`` on
    waveforms already at ``sample_rate``, and set ``layer`` once ``num_layers`` is known.
    """

    sample_rate: int
    audio_length: int
    num_layers: int
    frame_rate: float
    #: True when a clip embedding is exactly the mean of the frame embeddings (MusicFM), so that
    #: callers wanting both compute the frames once.
    clip_is_frame_mean: bool = False

    @property
    def layer(self) -> Layer:
        """The selected layer (a non-negative index) or ``"all"``."""
        return self._layer

    @layer.setter
    def layer(self, value: Layer) -> None:
        self._layer = normalize_layer(value, self.num_layers)

    def extra_repr(self) -> str:
        # The layer decides the embeddings but is no weight: caches that fingerprint an encoder by
        # its repr and weights (clmr_lib.evaluation.cache) must see it.
        return f"layer={self.layer!r}"

    @property
    def all_layers(self) -> bool:
        """Whether every layer is returned (``layer == "all"``)."""
        return self.layer == ALL_LAYERS

    @property
    def layer_dims(self) -> Sequence[int]:
        """Size of each layer's embedding."""
        raise NotImplementedError

    @property
    def embedding_dim(self) -> int:
        """Size of one embedding: the selected layer's, or the largest in ``"all"`` mode."""
        dims = self.layer_dims
        return max(dims) if self.all_layers else dims[self.layer]

    @property
    def device(self) -> torch.device:
        """Device of the encoder's weights."""
        tensor = next(iter(self.parameters()), None)
        if tensor is None:
            tensor = next(iter(self.buffers()), torch.empty(0))
        return tensor.device

    def prepare(self, audio: torch.Tensor | np.ndarray, sample_rate: int | None = None) -> torch.Tensor:
        """Audio as ``(batch, samples)`` float on the encoder's device at ``self.sample_rate``.

        Args:
            audio: ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)``.
            sample_rate: Its rate in Hz (default: the encoder's).
        """
        x = as_batch(audio)
        if sample_rate is not None and int(sample_rate) != self.sample_rate:
            x = resample(x, int(sample_rate), self.sample_rate)
        if x.shape[-1] == 0:
            raise ValueError("cannot embed audio of 0 samples")
        return x.to(self.device)

    @torch.no_grad()
    def clip_embeddings(self, audio: torch.Tensor | np.ndarray, sample_rate: int | None = None) -> torch.Tensor:
        """One embedding per clip, for audio of any length and sample rate.

        Args:
            audio: ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)``.
            sample_rate: Its rate in Hz (default: the encoder's).

        Returns:
            ``(batch, embedding_dim)``, or ``(batch, num_layers, embedding_dim)`` in ``"all"`` mode.
        """
        return self._clip_embeddings(self.prepare(audio, sample_rate))

    @torch.no_grad()
    def frame_embeddings(self, audio: torch.Tensor | np.ndarray,
                         sample_rate: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings at ``frame_rate`` with the times of the frame centres.

        Args:
            audio: ``(samples,)``, ``(batch, samples)`` or ``(batch, 1, samples)``.
            sample_rate: Its rate in Hz (default: the encoder's).

        Returns:
            ``(embeddings, timestamps)``: ``(batch, frames, embedding_dim)`` (``(batch, frames,
            num_layers, embedding_dim)`` in ``"all"`` mode) and ``(frames,)`` float64 seconds.
        """
        return self._frame_embeddings(self.prepare(audio, sample_rate))

    def _clip_embeddings(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _frame_embeddings(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError


def stack_layers(embeddings: Sequence[torch.Tensor], dim: int) -> torch.Tensor:
    """Stack per-layer embeddings ``(..., d_i)`` into ``(..., n_layers, dim)``, zero-padding each to ``dim``."""
    padded = [nn.functional.pad(e, (0, dim - e.shape[-1])) if e.shape[-1] < dim else e for e in embeddings]
    return torch.stack(padded, dim=-2)


__all__ = ["ALL_LAYERS", "AudioEncoder", "as_batch", "centred_windows", "frame_times", "normalize_layer", "resample",
           "stack_layers", "stitch_frames", "tile_starts", "windowed_clip_embeddings", "windowed_frame_embeddings"]
