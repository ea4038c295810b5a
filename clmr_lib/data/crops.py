"""Torch datasets over tracks: random crops for training, every chunk of a track for evaluation."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from clmr_lib.data.audio_io import AudioReadError, audio_info, read_audio
from clmr_lib.data.track import Track


def track_length(track: Track, sample_rate: int) -> int:
    """Length of a track in samples at ``sample_rate`` (header only; cached on the track)."""
    info = track.extra.get("info")
    if info is None:
        info = audio_info(track.path)
        track.extra["info"] = info
    return info.num_samples(sample_rate)


class RandomCrops(Dataset):
    """Random crops of each track, read by seeking (whole files are never decoded).

    Item ``i`` is ``(audio, label, index, ok)``: ``audio`` is float32 ``(n_views, audio_length)``
    with ``n_views`` independent random crops of track ``i`` (CLMR's two views), ``label`` a float32
    vector (one-hot or multi-hot; zeros for unlabelled data), ``index`` is ``i`` and ``ok`` is false
    when the file could not be read — then ``audio`` is zeros and the training step drops the item
    and reports ``index``. Labels always travel with their own index, so a bad file never shifts
    which file carries which label.

    Args:
        tracks: The tracks to crop.
        sample_rate: Target sample rate in Hz (files are resampled and down-mixed).
        audio_length: Crop length in samples.
        n_views: Crops per item.
        num_classes: Length of the label vector.
    """

    def __init__(self, tracks: Sequence[Track], sample_rate: int, audio_length: int, n_views: int = 2, num_classes: int = 0):
        self.tracks = list(tracks)
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        self.n_views, self.num_classes = int(n_views), int(num_classes)

    def __len__(self) -> int:
        return len(self.tracks)

    def _label(self, track: Track) -> torch.Tensor:
        return torch.from_numpy(track.label_array(self.num_classes))

    def __getitem__(self, index: int):
        track = self.tracks[index]
        label = self._label(track)
        try:
            length = track_length(track, self.sample_rate)
            views = []
            for _ in range(self.n_views):
                # torch's RNG is seeded per worker and per rank, so crops differ across both.
                start = int(torch.randint(0, max(length - self.audio_length, 0) + 1, ()).item())
                views.append(read_audio(track.path, self.sample_rate, offset=start,
                                        num_samples=self.audio_length, info=track.extra.get("info")))
            audio = torch.from_numpy(np.stack(views)).float()
            return audio, label, index, True
        except (AudioReadError, OSError, RuntimeError, ValueError):
            return torch.zeros(self.n_views, self.audio_length), label, index, False


class TrackChunks(Dataset):
    """All chunks of one track per item, for track-level evaluation (CLMR's protocol).

    A track is cut into chunks of ``audio_length`` samples every ``hop`` samples (non-overlapping
    by default); the last partial chunk is dropped, and a track shorter than one chunk gives one
    zero-padded chunk. Item ``i`` is ``(chunks (n_chunks, audio_length), label, index, ok)``.

    Args:
        tracks: The tracks.
        sample_rate: Target sample rate in Hz.
        audio_length: Chunk length in samples.
        hop: Hop between chunk starts (default ``audio_length``: no overlap).
        num_classes: Length of the label vector.
        max_chunks: Keep at most this many chunks per track (evenly spread); ``None`` keeps all.
    """

    def __init__(self, tracks: Sequence[Track], sample_rate: int, audio_length: int, hop: Optional[int] = None,
                 num_classes: int = 0, max_chunks: Optional[int] = None):
        self.tracks = list(tracks)
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        self.hop = int(hop or audio_length)
        self.num_classes, self.max_chunks = int(num_classes), max_chunks

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int):
        track = self.tracks[index]
        label = torch.from_numpy(track.label_array(self.num_classes))
        try:
            audio = read_audio(track.path, self.sample_rate, info=track.extra.get("info"))
        except (AudioReadError, OSError, RuntimeError, ValueError):
            return torch.zeros(0, self.audio_length), label, index, False
        if audio.size == 0:
            return torch.zeros(0, self.audio_length), label, index, False
        if audio.shape[0] < self.audio_length:
            audio = np.pad(audio, (0, self.audio_length - audio.shape[0]))
        starts = np.arange(0, audio.shape[0] - self.audio_length + 1, self.hop)
        if self.max_chunks is not None and len(starts) > self.max_chunks:
            starts = starts[np.linspace(0, len(starts) - 1, self.max_chunks).round().astype(int)]
        chunks = np.stack([audio[s:s + self.audio_length] for s in starts])
        return torch.from_numpy(chunks).float(), label, index, True


def worker_init(_worker_id: int) -> None:
    """DataLoader worker setup: per-example work stays single-threaded (avoids OpenMP stalls)."""
    torch.set_num_threads(1)
