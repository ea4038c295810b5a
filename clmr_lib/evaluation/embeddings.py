"""Embeddings of every chunk of every track from a frozen encoder, batched, in eval mode."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from clmr_lib.data.crops import TrackChunks, worker_init
from clmr_lib.data.track import Track


@torch.no_grad()
def extract_embeddings(encoder: nn.Module, tracks: Sequence[Track], audio_length: int, batch_size: int = 64,
                       hop: Optional[int] = None, workers: int = 0, cache: Optional[dict] = None,
                       progress: bool = True, device: str = "cpu", max_chunks: Optional[int] = None) -> list:
    """Chunk embeddings of each track: a list of ``(n_chunks, embedding_dim)`` float32 arrays.

    Tracks are cut into ``audio_length`` chunks (every ``hop`` samples; non-overlapping by
    default) at the encoder's ``sample_rate``, and chunks from several tracks are batched through
    the encoder in eval mode. A track that cannot be read gets ``None`` (the caller reports it;
    the list stays aligned with ``tracks``).

    Args:
        encoder: A frozen encoder with a ``sample_rate`` attribute.
        tracks: Tracks to embed.
        audio_length: Chunk length in samples.
        batch_size: Chunks per encoder call.
        hop: Hop between chunks in samples (default: ``audio_length``).
        workers: DataLoader processes decoding audio.
        cache: Optional dict ``track path -> embeddings`` shared across calls (tracks of several
            tasks or splits are then embedded once).
        progress: Show a progress bar.
        device: Device to run the encoder on.
        max_chunks: At most this many chunks per track.
    """
    encoder.eval()
    cache = {} if cache is None else cache
    todo = [i for i, t in enumerate(tracks) if t.path not in cache]
    dataset = TrackChunks([tracks[i] for i in todo], encoder.sample_rate, audio_length, hop=hop, max_chunks=max_chunks)
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, worker_init_fn=worker_init)
    pending, sizes = [], []

    def flush():
        if not pending:
            return
        chunks = torch.cat([c for _, c in pending]).to(device)
        outputs = torch.cat([encoder(chunks[i:i + batch_size]).float().cpu() for i in range(0, len(chunks), batch_size)])
        start = 0
        for (position, _), size in zip(pending, sizes):
            cache[tracks[todo[position]].path] = outputs[start:start + size].numpy()
            start += size
        pending.clear()
        sizes.clear()

    for chunks, _, position, ok in tqdm(loader, total=len(dataset), desc="embeddings", disable=not progress,
                                        leave=False):
        if not ok:
            cache[tracks[todo[position]].path] = None
            continue
        pending.append((position, chunks))
        sizes.append(len(chunks))
        if sum(sizes) >= batch_size:
            flush()
    flush()
    return [cache[t.path] for t in tracks]
