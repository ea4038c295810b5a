"""On-disk cache of chunk embeddings, keyed by the encoder's weights and the chunking settings."""
from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data.track import Track
from clmr_lib.utils.precision import is_full_precision

#: Bumped whenever the layout of the cache or the meaning of its contents changes.
CACHE_VERSION = 1


def encoder_fingerprint(encoder: nn.Module) -> str:
    """A hash of everything that decides an encoder's embeddings: its class, structure and weights.

    The weights (parameters and buffers, BatchNorm statistics included) are hashed themselves,
    not the checkpoint file's name or date: a re-saved or copied checkpoint shares its cache, a
    retrained one never does, and the seeded random-init baseline is recognised too. Settings that
    weights do not show (sample rate, input length, a chosen layer) come from the encoder's plain
    attributes and ``repr``.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{type(encoder).__module__}.{type(encoder).__qualname__}\n{encoder!r}\n".encode())
    # ``training`` is left out: embeddings are always computed in eval mode.
    settings = {k: v for k, v in sorted(vars(encoder).items())
                if not k.startswith("_") and k != "training" and isinstance(v, (bool, int, float, str, list, tuple))}
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    for name, tensor in encoder.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def file_stamp(path: str) -> Optional[list]:
    """``[size, mtime_ns]`` of an audio file, so an edited or replaced file is embedded again."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return [int(stat.st_size), int(stat.st_mtime_ns)]


class EmbeddingCache:
    """Chunk embeddings of tracks, stored under ``root/<key>/`` and reused across runs.

    The key hashes the encoder's fingerprint (:func:`encoder_fingerprint`) and the chunking
    (sample rate, chunk length, hop, chunk limit). Inside, each batch of newly embedded tracks is
    one *shard*: ``<name>.npy`` (all chunks of all its tracks, concatenated along the first axis,
    so 2-D and multi-layer 3-D embeddings are both stored as they are) and ``<name>.json`` (each
    track's path, file size and modification time, and its row range; unreadable tracks are
    recorded as such). Both files are written atomically, the index last, so an interrupted run
    leaves no half shard. A track is found by its path and file stamp, whichever dataset, task or
    split asks for it: the tags, genre and artist tasks of one dataset share their embeddings.

    Args:
        root: Cache folder (``--embedding_cache_dir``, default ``<log_dir>/embeddings``).
        encoder: The frozen encoder (fingerprinted once here).
        audio_length: Chunk length in samples.
        hop: Hop between chunks in samples.
        max_chunks: Chunk limit per track (``None``: all).
        description: Human-readable facts stored next to the shards (checkpoint path, encoder name).
        precision: The precision the embeddings are computed in (``--precision``).
    """

    def __init__(self, root: str | os.PathLike, encoder: nn.Module, audio_length: int, hop: int,
                 max_chunks: Optional[int] = None, description: Optional[dict] = None, precision: str = "32-true"):
        identity = {"version": CACHE_VERSION, "encoder": encoder_fingerprint(encoder),
                    "sample_rate": int(encoder.sample_rate), "audio_length": int(audio_length), "hop": int(hop),
                    "max_chunks": max_chunks}
        if not is_full_precision(precision):
            # Half-precision embeddings differ from float32 ones: their own entry (float32 keys unchanged).
            identity["precision"] = str(precision)
        self.key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
        self.folder = Path(root) / self.key
        self.identity = dict(identity, **(description or {}))

    def load(self, tracks: Sequence[Track]) -> dict:
        """Embeddings of the requested tracks found in the cache: ``path -> array`` (``None``: unreadable)."""
        wanted = {t.path: file_stamp(t.path) for t in tracks}
        found: dict = {}
        if not self.folder.is_dir():
            return found
        for index_path in sorted(self.folder.glob("shard-*.json")):
            try:
                index = json.loads(index_path.read_text(encoding="utf-8"))
                array = None
                for entry in index["tracks"]:
                    path = entry["path"]
                    if path in found or path not in wanted or wanted[path] != entry["stamp"]:
                        continue
                    if entry["start"] is None:
                        found[path] = None
                        continue
                    if array is None:
                        array = np.load(index_path.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
                        if array.shape[0] != index["rows"]:
                            raise ValueError("shard index and array disagree")
                    found[path] = np.array(array[entry["start"]:entry["stop"]], dtype=np.float32)
            except (OSError, ValueError, KeyError, TypeError):
                continue  # an unreadable shard is only a cache miss; its tracks are embedded again
        return found

    def save(self, tracks: Sequence[Track], embeddings: Sequence[Optional[np.ndarray]]) -> Optional[Path]:
        """Store newly computed embeddings as one shard; returns the index path (``None`` if nothing to store)."""
        if not tracks:
            return None
        entries, arrays, start = [], [], 0
        for track, emb in zip(tracks, embeddings):
            stamp = file_stamp(track.path)
            if emb is None:
                entries.append({"path": track.path, "stamp": stamp, "start": None, "stop": None})
                continue
            arrays.append(np.asarray(emb, dtype=np.float32))
            entries.append({"path": track.path, "stamp": stamp, "start": start, "stop": start + len(emb)})
            start += len(emb)
        # Named after the tracks and their file stamps: a shard's content never changes under its name.
        listing = json.dumps([[e["path"], e["stamp"]] for e in entries]).encode()
        name = "shard-" + hashlib.sha256(listing).hexdigest()[:16]
        meta = self.folder / "meta.json"
        if not meta.exists():
            atomic_write_bytes(json.dumps(self.identity, indent=2, default=str).encode(), meta)
        if arrays:
            buffer = io.BytesIO()
            np.save(buffer, np.concatenate(arrays), allow_pickle=False)
            atomic_write_bytes(buffer.getvalue(), self.folder / f"{name}.npy")
        index = self.folder / f"{name}.json"
        atomic_write_bytes(json.dumps({"version": CACHE_VERSION, "rows": start, "tracks": entries}).encode(), index)
        return index
