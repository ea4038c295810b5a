"""SampleCNN: CLMR's exact layout, parameter count, shapes and configurable strides."""
import pytest
import torch

from clmr_lib.errors import UserError
from clmr_lib.models import SampleCNN
from clmr_lib.models.sample_cnn import minimum_length, output_frames


def test_clmr_layout_and_parameter_count():
    model = SampleCNN()
    assert sum(p.numel() for p in model.parameters()) == 2_368_512
    sd = model.state_dict()
    assert len(sd) == 77  # + projector.0/2 = CLMR's 79 keys
    assert tuple(sd["sequential.0.0.weight"].shape) == (128, 1, 3)
    assert tuple(sd["sequential.3.0.weight"].shape) == (256, 128, 3)
    assert tuple(sd["sequential.9.0.weight"].shape) == (512, 256, 3)
    assert tuple(sd["sequential.10.0.weight"].shape) == (512, 512, 3)
    assert isinstance(model.sequential[1][3], torch.nn.MaxPool1d)
    assert len(model.sequential[10]) == 3  # no pooling in the last block
    assert model.sequential[0][0].stride == (3,) and model.sequential[0][0].padding == (0,)


@pytest.mark.parametrize("shape", [(2, 59049), (2, 1, 59049)])
def test_representation_shape(shape):
    model = SampleCNN().eval()
    with torch.no_grad():
        out = model(torch.randn(*shape))
    assert out.shape == (2, 512)


def test_one_frame_per_clip_with_clmr_strides():
    assert output_frames(59049, [3] * 9) == 1
    assert output_frames(59048, [3] * 9) == 0
    assert minimum_length([3] * 9) == 59049


def test_smaller_preset_for_other_lengths():
    model = SampleCNN(channels=[16, 16, 32, 32, 32, 32, 32, 64, 64], strides=[3] * 7, sample_rate=8000,
                      audio_length=6561).eval()
    assert model.embedding_dim == 64 and model.sample_rate == 8000
    with torch.no_grad():
        assert model(torch.randn(3, 6561)).shape == (3, 64)
        # Longer input leaves several frames, which are averaged.
        assert model(torch.randn(3, 6561 * 3)).shape == (3, 64)


def test_too_short_audio_length_is_a_user_error():
    with pytest.raises(UserError, match="audio_length 100"):
        SampleCNN(audio_length=100)


def test_supervised_head_and_from_state_dict():
    model = SampleCNN(n_classes=50, dropout=0.5)
    assert model.fc.out_features == 50
    rebuilt = SampleCNN.from_state_dict(model.state_dict())
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    assert rebuilt.channels == model.channels and rebuilt.fc.out_features == 50
