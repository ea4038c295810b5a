"""Tests of the native MusicFM against outputs of the original code (tests/fixtures/musicfm_tiny)."""
import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from clmr_lib.errors import UserError
from clmr_lib.models.musicfm import MusicFM, MusicFMEncoder
from clmr_lib.models.musicfm.checkpoint import canonical_key

FIXTURE = Path(__file__).parent / "fixtures" / "musicfm_tiny"
CHECKPOINT = FIXTURE / "checkpoint.pt"
STATS = FIXTURE / "stats.json"
TINY = dict(conv_dim=16, encoder_dim=64, encoder_depth=2, intermediate_size=256)


@pytest.fixture(scope="module")
def model() -> MusicFM:
    return MusicFM.from_pretrained(CHECKPOINT, STATS)


@pytest.fixture(scope="module")
def wav() -> torch.Tensor:
    return torch.from_numpy(np.load(FIXTURE / "input.npy"))


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    with np.load(FIXTURE / "expected.npz") as data:
        return {key: torch.from_numpy(data[key]) for key in data.files}


def official_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, weights_only=True)["state_dict"]
    assert all(key.startswith("model.") for key in state)
    return {key[len("model."):]: value for key, value in state.items()}


def official_full_size_shapes() -> dict[str, tuple[int, ...]]:
    """The key list of FACTS_MUSICFM.md section 7 (published checkpoints), without the ``model.`` prefix."""
    shapes = {
        "cls_token": (1024,),
        "preprocessor_melspec_2048.mel_stft.spectrogram.window": (2048,),
        "preprocessor_melspec_2048.mel_stft.mel_scale.fb": (1025, 128),
        "quantizer_melspec_2048_0.random_projection": (512, 16),
        "quantizer_melspec_2048_0.codebook": (4096, 16),
        "conv.linear.weight": (1024, 16384),
        "conv.linear.bias": (1024,),
        "conformer.embed_positions.inv_freq": (32,),
        "conformer.pos_conv_embed.conv.bias": (1024,),
        "conformer.pos_conv_embed.conv.weight_g": (1, 1, 128),
        "conformer.pos_conv_embed.conv.weight_v": (1024, 64, 128),
        "conformer.layer_norm.weight": (1024,),
        "conformer.layer_norm.bias": (1024,),
        "linear.weight": (4096, 1024),
        "linear.bias": (4096,),
    }
    for block in (0, 1):
        prefix = f"conv.conv.{block}."
        for conv in (1, 2, 3):
            in_channels = 1 if block == 0 and conv != 2 else 512
            shapes[f"{prefix}conv{conv}.weight"] = (512, in_channels, 3, 3)
            shapes[f"{prefix}conv{conv}.bias"] = (512,)
            for name in ("weight", "bias", "running_mean", "running_var"):
                shapes[f"{prefix}bn{conv}.{name}"] = (512,)
            shapes[f"{prefix}bn{conv}.num_batches_tracked"] = ()
    for layer in range(12):
        prefix = f"conformer.layers.{layer}."
        for norm in ("ffn1_layer_norm", "ffn2_layer_norm", "self_attn_layer_norm", "conv_module.layer_norm",
                     "final_layer_norm"):
            shapes[f"{prefix}{norm}.weight"] = shapes[f"{prefix}{norm}.bias"] = (1024,)
        for ffn in ("ffn1", "ffn2"):
            shapes[f"{prefix}{ffn}.intermediate_dense.weight"] = (4096, 1024)
            shapes[f"{prefix}{ffn}.intermediate_dense.bias"] = (4096,)
            shapes[f"{prefix}{ffn}.output_dense.weight"] = (1024, 4096)
            shapes[f"{prefix}{ffn}.output_dense.bias"] = (1024,)
        for linear in ("linear_q", "linear_k", "linear_v", "linear_out"):
            shapes[f"{prefix}self_attn.{linear}.weight"] = (1024, 1024)
            shapes[f"{prefix}self_attn.{linear}.bias"] = (1024,)
        shapes[f"{prefix}conv_module.pointwise_conv1.weight"] = (2048, 1024, 1)
        shapes[f"{prefix}conv_module.depthwise_conv.weight"] = (1024, 1, 31)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}conv_module.batch_norm.{name}"] = (1024,)
        shapes[f"{prefix}conv_module.batch_norm.num_batches_tracked"] = ()
        shapes[f"{prefix}conv_module.pointwise_conv2.weight"] = (1024, 1024, 1)
    return shapes


# --- loading -------------------------------------------------------------------------------------

def test_checkpoint_reads_with_weights_only():
    state = torch.load(CHECKPOINT, weights_only=True)
    assert list(state) == ["state_dict"] and len(state["state_dict"]) == 125


def test_from_pretrained_infers_architecture(model):
    assert not model.training
    assert model.depth == 2
    assert model.conv.conv[0].conv1.out_channels == 16
    assert model.conformer.layer_norm.normalized_shape == (64,)
    assert model.conformer.layers[0].ffn1.intermediate_dense.out_features == 256
    assert model.conformer.layers[0].self_attn.num_heads == 16
    assert (model.preprocessor_melspec_2048.mean, model.preprocessor_melspec_2048.std) == (
        6.768444971712967,
        18.417922652295623,
    )


def test_from_pretrained_loads_every_tensor_as_is(model):
    official = official_state_dict(CHECKPOINT)
    ours = {canonical_key(key): value for key, value in model.state_dict().items()}
    assert ours.keys() == official.keys()
    for key, value in official.items():
        assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    # The published files store BatchNorm counters as float32; the model keeps int64.
    assert model.conv.conv[0].bn1.num_batches_tracked.dtype == torch.int64
    assert all(not tensor.is_meta for tensor in model.state_dict().values())


def test_strict_load_into_a_fresh_model_like_the_original_loader():
    fresh = MusicFM(**TINY)
    assert str(fresh.load_state_dict(official_state_dict(CHECKPOINT), strict=True)) == "<All keys matched successfully>"


def test_buffers_computed_by_the_constructor_match_the_original():
    official = official_state_dict(CHECKPOINT)
    built = MusicFM(**TINY).state_dict()
    for key in (
        "preprocessor_melspec_2048.mel_stft.spectrogram.window",
        "preprocessor_melspec_2048.mel_stft.mel_scale.fb",
        "quantizer_melspec_2048_0.random_projection",
        "quantizer_melspec_2048_0.codebook",
        "conformer.embed_positions.inv_freq",
    ):
        assert torch.equal(built[key], official[key]), key


# --- numerical agreement with the original code ----------------------------------------------------

@pytest.mark.parametrize("layer_ix", [0, 1, 2])
def test_get_latent_matches_original(model, wav, expected, layer_ix):
    with torch.no_grad():
        latent = model.get_latent(wav, layer_ix=layer_ix)
    assert latent.shape == (2, 127, 64) and latent.dtype == torch.float32
    torch.testing.assert_close(latent, expected[f"layer_{layer_ix}"], atol=1e-4, rtol=1e-4)


def test_get_hidden_states_matches_original(model, wav, expected):
    with torch.no_grad():
        states = model.get_hidden_states(wav)
    assert len(states) == model.depth + 1
    for layer_ix, state in enumerate(states):
        torch.testing.assert_close(state, expected[f"layer_{layer_ix}"], atol=1e-4, rtol=1e-4)


def test_eager_attention_matches_sdpa(wav):
    model = MusicFM.from_pretrained(CHECKPOINT, STATS)
    with torch.no_grad():
        fused = model.get_latent(wav, layer_ix=2)
        model.set_attention("eager")
        eager = model.get_latent(wav, layer_ix=2)
    torch.testing.assert_close(eager, fused, atol=1e-5, rtol=1e-5)


def test_front_end_stays_float32_under_bf16_autocast(model, wav):
    front_end = model.preprocessor_melspec_2048
    reference = front_end(wav)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mel = front_end(wav)
    assert mel.dtype == torch.float32 and mel.shape == (2, 128, 121234 // 240)
    assert torch.equal(mel, reference)


@pytest.mark.parametrize("num_samples", [1025, 1919, 24000, 24239, 30000])
def test_token_count(model, num_samples):
    tokens = math.ceil(math.ceil((num_samples // 240) / 2) / 2)
    assert model.num_tokens(num_samples) == tokens
    with torch.no_grad():
        assert model.get_latent(torch.zeros(1, num_samples), layer_ix=0).shape == (1, tokens, 64)


def test_invalid_inputs_raise(model, wav):
    for layer_ix in (-1, 3, 1.0, True):
        with pytest.raises(ValueError):
            model.get_latent(wav, layer_ix=layer_ix)
    with pytest.raises(ValueError):
        model.get_latent(wav[0])
    with pytest.raises(ValueError):
        model.get_latent(torch.zeros(1, 1024), layer_ix=0)


# --- wrong files ---------------------------------------------------------------------------------

def assert_one_line_user_error(call, name: str) -> None:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and name in message


def test_wrong_files_raise_user_error(tmp_path):
    missing = tmp_path / "pretrained_msd.pt"
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(missing, STATS), str(missing))

    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(text, STATS), str(text))

    other = tmp_path / "other.pt"
    torch.save({"state_dict": {"model.encoder.weight": torch.zeros(2, 2)}}, other)
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(other, STATS), str(other))

    truncated = tmp_path / "truncated.pt"
    state = torch.load(CHECKPOINT, weights_only=True)
    del state["state_dict"]["model.conformer.layers.1.ffn2.output_dense.bias"]
    torch.save(state, truncated)
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(truncated, STATS), str(truncated))

    no_stats = tmp_path / "stats.json"
    no_stats.write_text('{"spec_2048_mean": 1.0, "spec_2048_std": 2.0}')
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(CHECKPOINT, no_stats), str(no_stats))
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(CHECKPOINT, tmp_path / "none.json"), "none.json")


def test_num_heads_contradicting_the_rotary_table_raises():
    assert_one_line_user_error(lambda: MusicFM.from_pretrained(CHECKPOINT, STATS, num_heads=8), str(CHECKPOINT))


# --- RNG side effects ----------------------------------------------------------------------------

def test_from_pretrained_leaves_global_rngs_untouched():
    torch_state, python_state, numpy_state = torch.get_rng_state(), random.getstate(), np.random.get_state()
    MusicFM.from_pretrained(CHECKPOINT, STATS)
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert random.getstate() == python_state
    assert np.array_equal(np.random.get_state()[1], numpy_state[1])


def test_random_construction_does_not_reseed():
    draws = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        random.seed(seed)
        MusicFM(**TINY)
        draws.append((torch.rand(4), random.random()))
    assert not torch.equal(draws[0][0], draws[1][0]) and draws[0][1] != draws[1][1]


# --- full-size architecture (meta device: no memory, no initialisation) -------------------------

def test_full_size_model_has_the_official_parameters_and_keys():
    with torch.device("meta"):
        full = MusicFM(conv_dim=512, encoder_dim=1024, encoder_depth=12, num_heads=16, intermediate_size=4096)
    assert sum(p.numel() for p in full.parameters()) == 328_932_480
    shapes = {canonical_key(key): tuple(value.shape) for key, value in full.state_dict().items()}
    assert shapes == official_full_size_shapes()
    assert len(shapes) == 465


# --- encoder wrapper -----------------------------------------------------------------------------

def test_encoder_protocol_and_embeddings(wav, expected):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer=1)
    assert (encoder.sample_rate, encoder.frame_rate, encoder.embedding_dim, encoder.num_layers) == (24000, 25, 64, 3)
    frames, timestamps = encoder.frame_embeddings(wav)
    torch.testing.assert_close(frames, expected["layer_1"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(timestamps, torch.arange(127, dtype=torch.float64) * 0.04)
    clip = encoder(wav.unsqueeze(1))
    assert clip.shape == (2, 64)
    torch.testing.assert_close(clip, expected["layer_1"].mean(dim=1), atol=1e-4, rtol=1e-4)
    states = encoder.hidden_states(wav)
    assert len(states) == 3
    torch.testing.assert_close(states[2], expected["layer_2"], atol=1e-4, rtol=1e-4)
    official = torch.load(CHECKPOINT, weights_only=True)["state_dict"]
    assert {canonical_key(key) for key in encoder.state_dict()} == set(official)
    with pytest.raises(ValueError):
        encoder(wav[:, None, None])
    with pytest.raises(ValueError):
        MusicFMEncoder(encoder.model, layer=3)


def test_encoder_stays_frozen_when_trained(wav):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer=2)
    before = {name: tensor.clone() for name, tensor in encoder.state_dict().items()}
    encoder.train()
    assert not any(module.training for module in encoder.modules())
    assert not any(p.requires_grad for p in encoder.parameters())
    first = encoder(wav[:, :24000])
    second = encoder(wav[:, :24000])
    assert torch.equal(first, second)  # dropout off
    assert not first.requires_grad
    for name, tensor in encoder.state_dict().items():
        assert torch.equal(tensor, before[name]), name



def test_bf16_autocast_and_bf16_weights_stay_close_to_fp32(wav, expected):
    model = MusicFM.from_pretrained(CHECKPOINT, STATS)
    reference = expected["layer_2"]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = model.get_latent(wav, layer_ix=2).float()
    model.to(torch.bfloat16)
    with torch.no_grad():
        low = model.get_latent(wav, layer_ix=2).float()
    assert model.preprocessor_melspec_2048.mel_stft.mel_scale.fb.dtype == torch.float32
    for output in (autocast, low):
        assert ((output - reference).norm() / reference.norm()).item() < 0.05


# --- encoder protocol: long audio, all layers, resampling, configuration ---------------------------

def record_inputs(encoder: MusicFMEncoder) -> list[int]:
    """Wrap the model's entry points so every waveform length they receive is recorded."""
    lengths, model = [], encoder.model
    latent, hidden = model.get_latent, model.get_hidden_states

    def get_latent(x, layer_ix=12):
        lengths.append(x.shape[-1])
        return latent(x, layer_ix)

    def get_hidden_states(x):
        lengths.append(x.shape[-1])
        return hidden(x)

    model.get_latent, model.get_hidden_states = get_latent, get_hidden_states
    return lengths


@pytest.mark.parametrize("repeats", [2, 4])
def test_long_audio_goes_through_bounded_windows_and_matches_one_pass(wav, repeats):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer=0, window_seconds=2.0, context_seconds=0.5)
    long = torch.cat([wav] * repeats, dim=1)  # 10 s or 20 s
    with torch.no_grad():
        one_pass = encoder.model.get_latent(long, 0)
    lengths = record_inputs(encoder)
    frames, timestamps = encoder.frame_embeddings(long)
    # Memory does not grow with the length: no window is longer than 2 s + one frame.
    assert len(lengths) >= 4 * repeats and max(lengths) <= (50 + 1) * 960
    # The conv front-end (layer 0) sees less than the 0.5 s of context, so windows change nothing.
    assert frames.shape == one_pass.shape
    torch.testing.assert_close(frames, one_pass, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(timestamps, torch.arange(one_pass.shape[1], dtype=torch.float64) * 0.04)
    torch.testing.assert_close(encoder(long), one_pass.mean(dim=1), atol=1e-4, rtol=1e-4)


def test_conformer_layers_of_long_audio_agree_inside_each_window(wav):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer=2, window_seconds=4.0, context_seconds=1.0)
    long = torch.cat([wav] * 3, dim=1)
    frames, _ = encoder.frame_embeddings(long)
    with torch.no_grad():  # 4 s windows keep 2 s each: the second covers frames 25..125 and keeps 50..100
        window = encoder.model.get_latent(long[:, 25 * 960:125 * 960], 2)
    torch.testing.assert_close(frames[:, 50:100], window[:, 25:75], atol=1e-5, rtol=1e-5)
    assert frames.shape == (2, encoder.model.num_tokens(long.shape[1]), 64)


def test_all_layers_mode(wav, expected):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer="all")
    assert encoder.all_layers and encoder.embedding_dim == 64 and encoder.layer_dims == [64] * 3
    clip = encoder(wav)
    assert clip.shape == (2, 3, 64)
    for layer_ix in range(3):
        torch.testing.assert_close(clip[:, layer_ix], expected[f"layer_{layer_ix}"].mean(dim=1), atol=1e-4, rtol=1e-4)
    frames, timestamps = encoder.frame_embeddings(wav)
    assert frames.shape == (2, 127, 3, 64) and timestamps.shape == (127,)
    encoder.layer = -1
    assert encoder.layer == 2


def test_short_clips_and_other_sample_rates(wav):
    encoder = MusicFMEncoder.from_pretrained(CHECKPOINT, STATS, layer=1)
    frames, timestamps = encoder.frame_embeddings(torch.randn(1, 500))
    assert frames.shape == (1, 1, 64) and timestamps.tolist() == [0.0]
    from clmr_lib.models.protocol import resample

    audio = wav[:, :32000]  # taken as 2 s at 16 kHz, which MusicFM hears at 24 kHz
    torch.testing.assert_close(encoder.clip_embeddings(audio, sample_rate=16000),
                               encoder.clip_embeddings(resample(audio, 16000, 24000)))
    frames, timestamps = encoder.frame_embeddings(audio, sample_rate=16000)
    assert frames.shape[1] == 50 and timestamps[-1].item() == pytest.approx(1.96)


def test_registry_and_evaluation_config():
    from clmr_lib.config import load_config
    from clmr_lib.models import ENCODERS, build_encoder
    from clmr_lib.models.frozen import frozen_encoder_from_config

    assert "musicfm" in ENCODERS
    assert build_encoder("musicfm", checkpoint_path=CHECKPOINT, stats_path=STATS, layer=1).layer == 1
    assert_one_line_user_error(lambda: build_encoder("musicfm"), "--musicfm_checkpoint")

    config = dict(load_config(), encoder="musicfm", musicfm_checkpoint=str(CHECKPOINT), musicfm_stats=str(STATS),
                  musicfm_layer=1)
    encoder, name = frozen_encoder_from_config(config)
    assert isinstance(encoder, MusicFMEncoder) and name == "musicfm_checkpoint_layer1"
    assert (encoder.layer, encoder.audio_length, encoder.window_frames) == (1, 240000, 750)
    encoder, name = frozen_encoder_from_config(dict(config, all_layers=True, musicfm_chunk_seconds=5.0))
    assert encoder.all_layers and encoder.audio_length == 120000 and name == "musicfm_checkpoint_all_layers"
    assert_one_line_user_error(lambda: frozen_encoder_from_config(dict(config, musicfm_layer=7)), "--musicfm_layer")
    assert_one_line_user_error(lambda: frozen_encoder_from_config(dict(config, musicfm_stats="")), "--musicfm_stats")
    assert_one_line_user_error(lambda: frozen_encoder_from_config(dict(config, musicfm_checkpoint="")),
                               "--musicfm_checkpoint")
    assert_one_line_user_error(lambda: frozen_encoder_from_config(dict(config, musicfm_chunk_seconds=0.0)),
                               "--musicfm_chunk_seconds")
    # Beside other encoders in one comparison: "--checkpoint musicfm", or its file as --checkpoint.
    plain = dict(load_config(), musicfm_stats=str(STATS), musicfm_layer=1)
    encoder, name = frozen_encoder_from_config(dict(plain, checkpoint_path="musicfm",
                                                    musicfm_checkpoint=str(CHECKPOINT)))
    assert isinstance(encoder, MusicFMEncoder) and name == "musicfm_checkpoint_layer1"
    encoder, _ = frozen_encoder_from_config(dict(plain, encoder="musicfm", checkpoint_path=str(CHECKPOINT)))
    assert isinstance(encoder, MusicFMEncoder)
    encoder, name = frozen_encoder_from_config(dict(config, checkpoint_path="random"))
    assert not isinstance(encoder, MusicFMEncoder) and name == "random"
