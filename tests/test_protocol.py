"""The encoder protocol: shared helpers (resampling, windows, stitching, timestamps) and SampleCNN's side of it."""
import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from clmr_lib.data.audio_io import read_audio
from clmr_lib.models import ALL_LAYERS, AudioEncoder, SampleCNN
from clmr_lib.models.protocol import (as_batch, centred_windows, frame_times, normalize_layer, resample,
                                      stitch_frames, tile_starts, windowed_clip_embeddings, windowed_frame_embeddings)

TINY = dict(channels=[8, 8, 8, 16, 16, 16, 32], strides=[3] * 5, sample_rate=8000, audio_length=729)


@pytest.fixture
def tiny() -> SampleCNN:
    torch.manual_seed(0)
    model = SampleCNN(**TINY).eval()
    for module in model.modules():  # non-trivial BatchNorm statistics, so every block matters
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


# --- helpers ---------------------------------------------------------------------------------------

def test_normalize_layer():
    assert normalize_layer(3, 5) == 3 and normalize_layer(-1, 5) == 4 and normalize_layer(-5, 5) == 0
    assert normalize_layer("all", 5) == ALL_LAYERS == normalize_layer(" ALL ", 5)
    for bad in (5, -6, 1.0, True, "7", None):
        with pytest.raises(ValueError):
            normalize_layer(bad, 5)


def test_as_batch_shapes():
    assert as_batch(torch.zeros(10)).shape == (1, 10)
    assert as_batch(np.zeros((3, 1, 10), dtype=np.float32)).shape == (3, 10)
    assert as_batch(torch.zeros(3, 10, dtype=torch.int16)).dtype == torch.float32
    with pytest.raises(ValueError):
        as_batch(torch.zeros(2, 2, 10))


def test_resample_matches_reading_a_file_at_that_rate(tmp_path):
    rng = np.random.default_rng(0)
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16001) / 16000) + 0.01 * rng.standard_normal(16001))
    path = tmp_path / "clip.wav"
    sf.write(path, audio.astype(np.float32), 16000, subtype="FLOAT")
    from_file = read_audio(str(path), 24000)
    ours = resample(torch.from_numpy(np.stack([audio, -audio]).astype(np.float32)), 16000, 24000)
    assert ours.shape == (2, 16001 * 24000 // 16000) == (2, from_file.shape[0])
    np.testing.assert_allclose(ours[0].numpy(), from_file, atol=1e-6)
    np.testing.assert_allclose(ours[1].numpy(), -from_file, atol=1e-6)
    same = torch.randn(1, 100)
    assert resample(same, 8000, 8000) is same


def test_frame_times_and_tile_starts():
    torch.testing.assert_close(frame_times(3, 960, 24000), torch.tensor([0.0, 0.04, 0.08], dtype=torch.float64))
    assert tile_starts(50, 100) == [0]
    assert tile_starts(300, 100) == [0, 100, 200]
    assert tile_starts(350, 100) == [0, 100, 200, 250]


def test_centred_windows_are_centred_on_multiples_of_the_hop():
    audio = torch.arange(1, 1001, dtype=torch.float32).unsqueeze(0)  # sample i holds i + 1 (0 = padding)
    windows, count = centred_windows(audio, window=101, hop=100)
    assert count == 10 and windows.shape == (1, 10, 101)
    assert windows[0, :, 50].tolist() == [1 + 100 * k for k in range(10)]
    assert windows[0, 0, :50].eq(0).all() and windows[0, 9, 50:].tolist() == list(range(901, 952))
    windows, count = centred_windows(audio[:, :930], window=101, hop=100)
    assert count == 10 and windows[0, 9, 50:].tolist() == list(range(901, 931)) + [0] * 21


def _local_model(hop: int):
    """A frame model with a receptive field of 3 frames, recording the length of every input."""
    calls = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[-1])
        frames = nn.functional.avg_pool1d(x.unsqueeze(1), hop, hop, ceil_mode=True)[:, 0]
        smoothed = nn.functional.avg_pool1d(frames.unsqueeze(1), 3, 1, padding=1, count_include_pad=False)[:, 0]
        return smoothed.unsqueeze(-1).repeat(1, 1, 2)  # (batch, frames, 2)

    return fn, calls


@pytest.mark.parametrize("num_samples", [999, 5000, 12345, 20000])
def test_stitched_frames_equal_one_pass_with_bounded_inputs(num_samples):
    hop, window, context = 10, 40, 5
    fn, calls = _local_model(hop)
    audio = torch.randn(2, num_samples)
    whole = fn(audio)
    calls.clear()
    stitched = stitch_frames(fn, audio, hop, whole.shape[1], window, context)
    torch.testing.assert_close(stitched, whole)
    assert max(calls) <= (window + 1) * hop
    assert len(calls) == 1 or num_samples > window * hop


def test_stitch_rejects_a_window_without_room():
    with pytest.raises(ValueError):
        stitch_frames(lambda x: x, torch.zeros(1, 10), 1, 10, 4, 2)


def test_windowed_helpers_bound_each_call():
    seen = []

    def fn(x):
        seen.append(tuple(x.shape))
        return x.mean(dim=-1, keepdim=True)

    audio = torch.arange(250, dtype=torch.float32).repeat(2, 1)
    clip = windowed_clip_embeddings(fn, audio, window=100, windows_per_call=2)
    # windows [0,100) [100,200) [150,250): means 49.5, 149.5, 199.5
    torch.testing.assert_close(clip, torch.full((2, 1), (49.5 + 149.5 + 199.5) / 3))
    assert max(s[0] for s in seen) <= 2 * 2
    seen.clear()
    frames = windowed_frame_embeddings(fn, audio, window=100, hop=50, windows_per_call=2)
    assert frames.shape == (2, 5, 1) and max(s[0] for s in seen) <= 2 * 2
    short = windowed_clip_embeddings(fn, torch.ones(1, 40), window=100)
    torch.testing.assert_close(short, torch.full((1, 1), 0.4))  # zero-padded to one window


# --- SampleCNN as a protocol encoder -----------------------------------------------------------------

def test_sample_cnn_declares_the_protocol(tiny):
    assert isinstance(tiny, AudioEncoder)
    assert (tiny.sample_rate, tiny.audio_length, tiny.num_layers, tiny.layer) == (8000, 729, 7, 6)
    assert tiny.embedding_dim == 32 and tiny.layer_dims == TINY["channels"]
    assert tiny.frame_hop == 4000 and tiny.frame_rate == 2.0
    tiny.layer = 2
    assert tiny.embedding_dim == 8
    tiny.layer = "all"
    assert tiny.embedding_dim == 32 and tiny.all_layers
    with pytest.raises(ValueError):
        tiny.layer = 7
    with pytest.raises(ValueError):
        tiny.frame_hop = 0


def test_sample_cnn_default_layer_keeps_forward_and_state_dict(tiny):
    x = torch.randn(3, 729)
    with torch.no_grad():
        assert torch.equal(tiny(x), tiny.embed(x))
        assert torch.equal(tiny(x), tiny.fc(tiny.embed(x)))
        tiny.layer = "all"
        stacked = tiny(x)
    assert all(key.startswith("sequential.") for key in tiny.state_dict())  # the protocol adds no state
    assert stacked.shape == (3, 7, 32)
    torch.testing.assert_close(stacked[:, -1], tiny.embed(x).detach())
    assert stacked[:, 0, 8:].eq(0).all()  # narrower blocks are zero-padded


def test_layer_is_part_of_the_repr(tiny):
    # Embedding caches fingerprint an encoder by its repr and weights; the layer is not a weight.
    before = repr(tiny)
    tiny.layer = 2
    assert "layer=6" in before and "layer=2" in repr(tiny)


def test_sample_cnn_layer_selection_stops_early(tiny):
    x = torch.randn(2, 729)
    ran = []
    hooks = [block.register_forward_hook(lambda m, i, o, k=k: ran.append(k)) for k, block in enumerate(tiny.sequential)]
    tiny.layer = 3
    with torch.no_grad():
        out = tiny(x)
    for hook in hooks:
        hook.remove()
    assert ran == [0, 1, 2, 3] and out.shape == (2, 16)
    with torch.no_grad():
        expected = tiny.sequential[:4](x.unsqueeze(1)).mean(-1)
    torch.testing.assert_close(out, expected)


def test_sample_cnn_clip_embeddings_of_long_audio_average_windows(tiny):
    audio = torch.randn(2, 729 * 3 + 100)
    tiny.windows_per_call = 2
    clip = tiny.clip_embeddings(audio)
    with torch.no_grad():
        windows = [audio[:, s:s + 729] for s in (0, 729, 1458, 1558)]
        expected = torch.stack([tiny.embed(w) for w in windows]).mean(0)
    torch.testing.assert_close(clip, expected)
    assert clip.shape == (2, 32)


def test_sample_cnn_frame_embeddings_and_timestamps(tiny):
    tiny.frame_hop = 400
    audio = torch.randn(2, 2000)
    frames, timestamps = tiny.frame_embeddings(audio)
    assert frames.shape == (2, 5, 32)
    torch.testing.assert_close(timestamps, torch.tensor([0.0, 0.05, 0.1, 0.15, 0.2], dtype=torch.float64))
    with torch.no_grad():  # frame 2 is the window centred on sample 800
        expected = tiny.embed(audio[:, 800 - 364:800 + 365])
    torch.testing.assert_close(frames[:, 2], expected)
    tiny.layer = "all"
    frames, _ = tiny.frame_embeddings(audio)
    assert frames.shape == (2, 5, 7, 32)


def test_sample_cnn_resamples_audio_at_other_rates(tiny):
    audio = torch.randn(1, 16000)  # 1 s at 16 kHz
    tiny.frame_hop = 2000
    direct = tiny.clip_embeddings(resample(audio, 16000, 8000))
    torch.testing.assert_close(tiny.clip_embeddings(audio, sample_rate=16000), direct)
    frames, timestamps = tiny.frame_embeddings(audio, sample_rate=16000)
    assert frames.shape[1] == 4 and timestamps[-1].item() == pytest.approx(0.75)
    with pytest.raises(ValueError):
        tiny.clip_embeddings(torch.zeros(1, 0))
