"""On-disk embedding cache: reuse without calling the encoder, invalidation, 3-D arrays, task sharing."""
import os

import numpy as np
import pytest
import torch
from torch import nn

from clmr_lib.data.track import Track
from clmr_lib.evaluation.cache import EmbeddingCache, encoder_fingerprint
from clmr_lib.evaluation.embeddings import embed_splits


class CountingEncoder(nn.Module):
    """A deterministic toy encoder that counts the chunks it embeds; ``layers`` > 0 returns every layer."""

    def __init__(self, layers: int = 0, scale: float = 1.0):
        super().__init__()
        self.sample_rate, self.audio_length, self.embedding_dim = 8000, 400, 3
        self.layers = layers
        self.scale = nn.Parameter(torch.tensor(scale))
        self.calls = 0

    def forward(self, x):
        self.calls += len(x)
        features = torch.stack([x.mean(1), x.std(1), x.abs().max(1).values], dim=1) * self.scale
        return features[:, None].repeat(1, self.layers, 1) * torch.arange(1, self.layers + 1)[None, :, None] \
            if self.layers else features


@pytest.fixture
def tracks(tmp_path, make_audio_file):
    out = []
    for i in range(5):
        path = make_audio_file(tmp_path / "audio" / f"{i}.wav", seconds=0.1 + 0.05 * i, sample_rate=8000,
                               frequency=200 + 100 * i)
        out.append(Track(path, f"{i}", label=i % 2))
    return out


CONFIG = {"embedding_batch_size": 4, "workers": 0, "chunk_hop": 0}


def _cache(tmp_path, encoder):
    return EmbeddingCache(tmp_path / "cache", encoder, encoder.audio_length, encoder.audio_length)


def test_second_run_reads_the_cache_and_never_calls_the_encoder(tmp_path, tracks):
    encoder = CountingEncoder()
    splits = {"train": tracks[:3], "valid": tracks[3:4], "test": tracks[4:]}
    first = embed_splits(encoder, splits, CONFIG, cache=_cache(tmp_path, encoder), progress=False)
    assert encoder.calls > 0
    again = CountingEncoder()  # a new process would rebuild the encoder: same weights, same key
    second = embed_splits(again, splits, CONFIG, cache=_cache(tmp_path, again), progress=False)
    assert again.calls == 0
    for split in splits:
        for a, b in zip(first[split], second[split]):
            np.testing.assert_array_equal(a, b)
    assert not [f for f in os.listdir(tmp_path / "cache" / _cache(tmp_path, again).key) if f.endswith(".tmp")]


def test_tasks_sharing_tracks_share_embeddings_and_only_new_tracks_are_embedded(tmp_path, tracks):
    encoder = CountingEncoder()
    embed_splits(encoder, {"train": tracks[:3]}, CONFIG, cache=_cache(tmp_path, encoder), progress=False)
    other = CountingEncoder()
    out = embed_splits(other, {"train": tracks[1:3], "test": tracks[3:]}, CONFIG, cache=_cache(tmp_path, other),
                       progress=False)
    assert other.calls == sum(len(e) for e in out["test"])  # tracks 1, 2 came from the cache


def test_changed_weights_chunking_or_audio_file_are_misses(tmp_path, tracks, make_audio_file):
    encoder = CountingEncoder()
    assert encoder_fingerprint(encoder) == encoder_fingerprint(CountingEncoder())
    assert encoder_fingerprint(encoder) != encoder_fingerprint(CountingEncoder(scale=2.0))
    assert _cache(tmp_path, encoder).key != EmbeddingCache(tmp_path / "cache", encoder, 400, 200).key
    embed_splits(encoder, {"train": tracks}, CONFIG, cache=_cache(tmp_path, encoder), progress=False)
    make_audio_file(tracks[0].path, seconds=0.3, sample_rate=8000, frequency=900)  # the file is replaced
    again = CountingEncoder()
    out = embed_splits(again, {"train": tracks}, CONFIG, cache=_cache(tmp_path, again), progress=False)
    assert again.calls == len(out["train"][0])


def test_multilayer_embeddings_round_trip(tmp_path, tracks):
    encoder = CountingEncoder(layers=4)
    first = embed_splits(encoder, {"test": tracks}, CONFIG, cache=_cache(tmp_path, encoder), progress=False)
    again = CountingEncoder(layers=4)
    second = embed_splits(again, {"test": tracks}, CONFIG, cache=_cache(tmp_path, again), progress=False)
    assert again.calls == 0 and second["test"][0].ndim == 3 and second["test"][0].shape[1:] == (4, 3)
    np.testing.assert_array_equal(first["test"][2], second["test"][2])


def test_unreadable_tracks_are_remembered_and_a_damaged_shard_is_only_a_miss(tmp_path, tracks):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all" * 64)
    all_tracks = tracks + [Track(str(broken), "broken", label=0)]
    encoder = CountingEncoder()
    cache = _cache(tmp_path, encoder)
    out = embed_splits(encoder, {"test": all_tracks}, CONFIG, cache=cache, progress=False)
    assert out["test"][-1] is None
    assert cache.load(all_tracks)[str(broken)] is None
    for shard in cache.folder.glob("shard-*.npy"):
        shard.write_bytes(b"garbage")
    again = CountingEncoder()
    out = embed_splits(again, {"test": all_tracks}, CONFIG, cache=_cache(tmp_path, again), progress=False)
    assert again.calls > 0 and out["test"][0] is not None


def test_chunk_hop_gives_overlapping_chunks(tracks):
    encoder = CountingEncoder()
    plain = embed_splits(encoder, {"test": tracks}, CONFIG, progress=False)["test"]
    overlapping = embed_splits(encoder, {"test": tracks}, dict(CONFIG, chunk_hop=200), progress=False)["test"]
    # track 4 lasts 0.3 s = 2,400 samples: 6 chunks of 400 without overlap, 11 every 200 samples
    assert len(plain[4]) == 6 and len(overlapping[4]) == 11


def test_half_precision_embeddings_get_their_own_entry_and_float32_keys_stay(tmp_path):
    encoder = CountingEncoder()
    default = _cache(tmp_path, encoder)
    fp32 = EmbeddingCache(tmp_path / "cache", encoder, 400, 400, precision="32-true")
    bf16 = EmbeddingCache(tmp_path / "cache", encoder, 400, 400, precision="bf16-mixed")
    assert default.key == fp32.key != bf16.key
    assert bf16.identity["precision"] == "bf16-mixed" and "precision" not in fp32.identity


def test_bf16_extraction_gives_float32_embeddings_close_to_float32_ones(tracks):
    from clmr_lib.models import SampleCNN

    torch.manual_seed(0)
    encoder = SampleCNN(channels=[8, 8, 16, 16, 32], strides=[3, 3, 3], sample_rate=8000, audio_length=243).eval()
    splits = {"train": tracks}
    full = embed_splits(encoder, splits, dict(CONFIG), progress=False)["train"]
    half = embed_splits(encoder, splits, dict(CONFIG, precision="bf16-mixed"), progress=False)["train"]
    for a, b in zip(full, half):
        assert b.dtype == np.float32 and a.shape == b.shape
        assert not np.array_equal(a, b)  # bf16 really ran
        cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        assert cosine.min() > 0.99
