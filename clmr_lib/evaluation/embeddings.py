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
from clmr_lib.errors import UserError
from clmr_lib.evaluation.cache import EmbeddingCache
from clmr_lib.utils.precision import inference_autocast


@torch.no_grad()
def extract_embeddings(encoder: nn.Module, tracks: Sequence[Track], audio_length: int, batch_size: int = 64,
                       hop: Optional[int] = None, workers: int = 0, cache: Optional[dict] = None,
                       progress: bool = True, device: str = "cpu", max_chunks: Optional[int] = None,
                       precision: str = "32-true") -> list:
    """Chunk embeddings of each track: a list of ``(n_chunks, embedding_dim)`` float32 arrays.

    Encoders that return every layer give ``(n_chunks, n_layers, dim)`` arrays instead.

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
        precision: Lightning's name of the precision the encoder runs in (``"bf16-mixed"``: bf16
            autocast, about 1.5-2x faster on CPUs with bf16 units); embeddings are float32 either way.
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
        with inference_autocast(precision, device):
            outputs = torch.cat([encoder(chunks[i:i + batch_size]).float().cpu()
                                 for i in range(0, len(chunks), batch_size)])
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


def collapse_layers(embeddings: np.ndarray) -> np.ndarray:
    """One vector per chunk: multi-layer embeddings ``(n, n_layers, dim)`` are averaged over layers.

    Classical probes and retrieval have no learned layer weights (the Lightning probe learns its
    own), so every layer counts equally; 2-D embeddings are returned unchanged.
    """
    return embeddings.mean(axis=1) if embeddings.ndim == 3 else embeddings


def track_embeddings(embeddings: Sequence) -> tuple[np.ndarray, list[int]]:
    """Track-level embeddings: the mean of each track's chunk embeddings (layers averaged).

    Returns:
        ``(n_kept, dim)`` array and the indices of the tracks kept (those with embeddings).
    """
    keep = [i for i, emb in enumerate(embeddings) if emb is not None and len(emb)]
    if not keep:
        return np.zeros((0, 0), dtype=np.float32), []
    return np.stack([collapse_layers(embeddings[i]).mean(0) for i in keep]).astype(np.float32), keep


def chunk_hop(config: dict, audio_length: int) -> int:
    """Samples between evaluation chunks: ``--chunk_hop`` (0: the chunk length, i.e. no overlap)."""
    hop = int(config.get("chunk_hop", 0) or 0)
    if hop < 0:
        raise UserError(f"--chunk_hop {hop} is negative; use 0 (non-overlapping chunks) or a hop in samples")
    return hop or int(audio_length)


def embed_splits(encoder: nn.Module, splits: dict, config: dict, cache=None, progress: bool = True) -> dict:
    """Chunk embeddings of every track of every split, each track embedded once.

    Args:
        encoder: Frozen encoder (``sample_rate``, ``audio_length``).
        splits: ``split -> tracks``.
        config: ``embedding_batch_size``, ``workers``, ``chunk_hop``, ``gpus`` (> 0: embed on the GPU),
            ``precision``.
        cache: ``None``, a dict ``path -> embeddings`` kept in memory by the caller, or an
            :class:`~clmr_lib.evaluation.cache.EmbeddingCache` on disk.
        progress: Show a progress bar.

    Returns:
        ``split -> list`` of ``(n_chunks, ...)`` arrays aligned with the tracks (``None``: unreadable).
    """
    memory = cache if isinstance(cache, dict) else {}
    disk = cache if isinstance(cache, EmbeddingCache) else None
    unique = list({t.path: t for tracks in splits.values() for t in tracks}.values())
    if disk is not None:
        memory.update(disk.load([t for t in unique if t.path not in memory]))
    missing = [t for t in unique if t.path not in memory]
    if disk is not None and progress:
        print(f"embeddings: {len(unique) - len(missing)} of {len(unique)} tracks from the cache {disk.folder}")
    if missing:
        device = "cuda" if int(config.get("gpus", 0) or 0) > 0 and torch.cuda.is_available() else "cpu"
        extract_embeddings(encoder.to(device), missing, int(encoder.audio_length), device=device,
                           batch_size=int(config.get("embedding_batch_size", 64)),
                           hop=chunk_hop(config, encoder.audio_length), workers=int(config.get("workers", 0)),
                           cache=memory, progress=progress, precision=str(config.get("precision", "32-true")))
        if disk is not None:
            disk.save(missing, [memory[t.path] for t in missing])
    return {split: [memory[t.path] for t in tracks] for split, tracks in splits.items()}
