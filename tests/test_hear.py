"""The HEAR API: load_model for SampleCNN checkpoints (ours and CLMR's) and MusicFM, and both embedding functions."""
from pathlib import Path

import pytest
import torch

from clmr_lib import hear
from clmr_lib.errors import UserError
from clmr_lib.models import AudioEncoder, SampleCNN

MUSICFM = Path(__file__).parent / "fixtures" / "musicfm_tiny"
TINY = dict(channels=[8, 8, 8, 16, 16, 16, 32], strides=[3] * 5, sample_rate=8000, audio_length=729)


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A SampleCNN checkpoint in our Lightning layout (encoder weights + typed hyperparameters)."""
    torch.manual_seed(0)
    encoder = SampleCNN(**TINY)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    torch.save({"state_dict": {f"encoder.{k}": v for k, v in encoder.state_dict().items()},
                "hyper_parameters": {"encoder": "sample_cnn", "encoder_kwargs": TINY, "sample_rate": 8000}}, path)
    return path


@pytest.fixture(scope="module")
def clmr_checkpoint(tmp_path_factory) -> Path:
    """CLMR release 1.0's plain SimCLR state dict (``encoder.*`` + ``projector.*``), full layout."""
    torch.manual_seed(1)
    encoder = SampleCNN()
    state = {f"encoder.{k}": v for k, v in encoder.state_dict().items()}
    state.update({"projector.0.weight": torch.randn(512, 512), "projector.2.weight": torch.randn(64, 512)})
    path = tmp_path_factory.mktemp("clmr") / "clmr_checkpoint_1550.pt"
    torch.save(state, path)
    return path


def check_hear_outputs(model, audio: torch.Tensor, hop_ms: float) -> None:
    """What the HEAR validator checks: shapes, dtypes, timestamps and independence from the batch."""
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (audio.shape[0], model.scene_embedding_size) and scene.dtype == torch.float32
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    n_timestamps = embeddings.shape[1]
    assert embeddings.shape == (audio.shape[0], n_timestamps, model.timestamp_embedding_size)
    assert embeddings.dtype == timestamps.dtype == torch.float32
    assert timestamps.shape == (audio.shape[0], n_timestamps)
    assert timestamps[0, 0].item() == 0.0
    torch.testing.assert_close(timestamps.diff(dim=1), torch.full((audio.shape[0], n_timestamps - 1), hop_ms))
    assert timestamps[0, -1].item() < 1000 * audio.shape[1] / model.sample_rate  # centres inside the audio
    torch.testing.assert_close(hear.get_scene_embeddings(audio[1:2], model), scene[1:2], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(hear.get_timestamp_embeddings(audio[1:2], model)[0], embeddings[1:2],
                               atol=1e-5, rtol=1e-5)
    assert torch.isfinite(scene).all() and torch.isfinite(embeddings).all()


def test_sample_cnn_checkpoint(tiny_checkpoint):
    model = hear.load_model(str(tiny_checkpoint))
    assert isinstance(model, torch.nn.Module) and not model.training
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (8000, 32, 32)
    audio = torch.rand(3, 8000) * 2 - 1
    check_hear_outputs(model, audio, hop_ms=50.0)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape[1] == 20  # 1 s every 50 ms
    model.train()
    assert not model.encoder.training


def test_sample_cnn_layers_and_hop(tiny_checkpoint):
    model = hear.load_model(str(tiny_checkpoint), layer="all", hop_ms=250)
    assert model.scene_embedding_size == 7 * 32
    check_hear_outputs(model, torch.rand(2, 6000) - 0.5, hop_ms=250.0)
    assert hear.load_model(str(tiny_checkpoint), layer=2).scene_embedding_size == 8


def test_original_clmr_checkpoint(clmr_checkpoint):
    model = hear.load_model(str(clmr_checkpoint), hop_ms=500)
    assert (model.sample_rate, model.scene_embedding_size) == (22050, 512)
    check_hear_outputs(model, torch.rand(2, 22050) - 0.5, hop_ms=500.0)  # 1 s: shorter than one 59,049 window


def test_random_baseline():
    model = hear.load_model("random", seed=3)
    assert model.sample_rate == 22050 and model.scene_embedding_size == 512
    again = hear.load_model("random", seed=3)
    audio = torch.rand(1, 59049) - 0.5
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), hear.get_scene_embeddings(audio, again))


def test_musicfm():
    model = hear.load_model(str(MUSICFM / "checkpoint.pt"), stats_path=str(MUSICFM / "stats.json"), layer=1)
    assert (model.sample_rate, model.scene_embedding_size, model.timestamp_embedding_size) == (24000, 64, 64)
    audio = torch.rand(2, 24000) - 0.5
    check_hear_outputs(model, audio, hop_ms=40.0)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    torch.testing.assert_close(embeddings, model.encoder.model.get_latent(audio, 1))
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), embeddings.mean(dim=1))
    everything = hear.load_model(str(MUSICFM / "checkpoint.pt"), stats_path=str(MUSICFM / "stats.json"), layer="all")
    assert everything.scene_embedding_size == 3 * 64
    scene = hear.get_scene_embeddings(audio, everything)
    torch.testing.assert_close(scene[:, 64:128], hear.get_scene_embeddings(audio, model))


def test_musicfm_takes_hear_sample_rates():
    model = hear.load_model(str(MUSICFM / "checkpoint.pt"), stats_path=str(MUSICFM / "stats.json"), layer=2,
                            input_sample_rate=48000)
    assert model.sample_rate == 48000 and model.encoder.sample_rate == 24000
    audio = torch.rand(2, 48000) - 0.5  # 1 s at 48 kHz
    check_hear_outputs(model, audio, hop_ms=40.0)
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape[1] == 25 and timestamps[0, -1].item() == pytest.approx(960.0)
    from clmr_lib.models.protocol import resample

    torch.testing.assert_close(hear.get_scene_embeddings(audio, model),
                               model.encoder.clip_embeddings(resample(audio, 48000, 24000)))


class Loudness(AudioEncoder):
    """A toy encoder registered "later": RMS and peak of 0.1 s windows, only the protocol's hooks written."""

    sample_rate, audio_length, num_layers, frame_rate = 1000, 100, 1, 10.0

    def __init__(self):
        super().__init__()
        self.layer = 0

    @property
    def layer_dims(self):
        return [2]

    def _features(self, x):
        return torch.stack([x.pow(2).mean(-1).sqrt(), x.abs().amax(-1)], dim=-1)

    def _clip_embeddings(self, x):
        return self._features(x)

    def _frame_embeddings(self, x):
        frames = self._features(x.unfold(-1, 100, 100))
        return frames, torch.arange(frames.shape[1], dtype=torch.float64) / 10 + 0.05


def test_any_protocol_encoder_gets_the_hear_api():
    model = hear.HearModel(Loudness())
    audio = torch.ones(2, 1000) * torch.tensor([[0.5], [-0.25]])
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), torch.tensor([[0.5, 0.5], [0.25, 0.25]]))
    embeddings, timestamps = hear.get_timestamp_embeddings(audio, model)
    assert embeddings.shape == (2, 10, 2) and timestamps[1, :2].tolist() == [50.0, 150.0]


def one_line_error(call, text: str) -> None:
    with pytest.raises(UserError) as info:
        call()
    assert "\n" not in str(info.value) and text in str(info.value)


def test_mistakes_are_one_line_errors(tiny_checkpoint, tmp_path):
    one_line_error(lambda: hear.load_model(""), "model_file_path")
    one_line_error(lambda: hear.load_model(str(tiny_checkpoint), hop=3), "hop")
    one_line_error(lambda: hear.load_model(str(tiny_checkpoint), layer=9), "layer=9")
    one_line_error(lambda: hear.load_model(str(tiny_checkpoint), encoder="wav2vec"), "wav2vec")
    one_line_error(lambda: hear.load_model(str(MUSICFM / "checkpoint.pt"), encoder="musicfm"), "stats_path")
    one_line_error(lambda: hear.load_model(str(MUSICFM / "checkpoint.pt")), "stats_path='msd_stats.json'")
    one_line_error(lambda: hear.load_model(str(MUSICFM / "checkpoint.pt"), stats_path=str(MUSICFM / "stats.json"),
                                           hop_ms=20), "40 ms")
    one_line_error(lambda: hear.load_model(str(tmp_path / "missing.ckpt")), "missing.ckpt")
    one_line_error(lambda: hear.load_model(str(tiny_checkpoint), input_sample_rate=-1), "input_sample_rate")
    model = hear.load_model(str(tiny_checkpoint))
    with pytest.raises(ValueError):
        hear.get_scene_embeddings(torch.zeros(8000), model)
    with pytest.raises(ValueError):
        hear.get_timestamp_embeddings(torch.zeros(1, 8000), model.encoder)
