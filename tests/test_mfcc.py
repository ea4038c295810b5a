"""MFCC-statistics baseline encoder: protocol, shape, determinism, and that it hears pitch."""
import numpy as np
import torch

from clmr_lib.evaluation.cache import encoder_fingerprint
from clmr_lib.evaluation.mfcc import MFCCStatistics
from clmr_lib.models.frozen import frozen_encoder_from_config


def _tone(freq, n=19683, sr=16000):
    return torch.sin(2 * torch.pi * freq * torch.arange(n) / sr)


def test_protocol_and_shapes():
    encoder = MFCCStatistics(16000, 19683)
    assert encoder.embedding_dim == 80 and encoder.sample_rate == 16000 and encoder.audio_length == 19683
    x = torch.stack([_tone(220), _tone(880)])
    out = encoder(x)
    assert out.shape == (2, 80) and torch.isfinite(out).all()
    torch.testing.assert_close(encoder(x[:, None]), out)  # (batch, 1, samples) too


def test_short_chunks_shrink_the_window():
    encoder = MFCCStatistics(16000, 729)
    assert encoder.n_fft == 512 and encoder(torch.randn(3, 729)).shape == (3, 80)


def test_pitch_changes_the_statistics_more_than_a_gain_change():
    encoder = MFCCStatistics(16000, 19683)
    low, low_quiet, high = encoder(torch.stack([_tone(200), 0.5 * _tone(200), _tone(2000)]))
    assert torch.dist(low, high) > 3 * torch.dist(low[1:20], low_quiet[1:20])


def test_built_by_the_config_frozen_and_fingerprinted_by_its_settings():
    config = {"checkpoint_path": "mfcc", "sample_rate": 22050, "audio_length": 59049, "seed": 0}
    encoder, name = frozen_encoder_from_config(config)
    encoder.train()
    assert name == "mfcc" and not encoder.training and isinstance(encoder, MFCCStatistics)
    assert encoder_fingerprint(encoder) == encoder_fingerprint(MFCCStatistics(22050, 59049))
    assert encoder_fingerprint(encoder) != encoder_fingerprint(MFCCStatistics(22050, 59049, n_mfcc=13))
    assert np.isfinite(encoder(torch.randn(1, 59049)).numpy()).all()
