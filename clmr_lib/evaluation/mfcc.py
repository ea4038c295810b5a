"""MFCC statistics: the classical hand-crafted baseline, as an encoder with the embedding protocol."""
from __future__ import annotations

import math

import torch
import torchaudio
from torch import nn


class MFCCStatistics(nn.Module):
    """Mean and standard deviation over time of MFCCs and their frame-to-frame deltas.

    The classical timbre summary of music classification (Tzanetakis & Cook, 2002, "Musical genre
    classification of audio signals"): ``n_mfcc`` coefficients from a ``n_mels``-band log-mel
    spectrogram (window ``n_fft``, hop ``n_fft / 4``), their first differences, and the mean and
    standard deviation of both over the chunk: ``4 * n_mfcc`` values. It has no trainable
    weights; it follows the encoder protocol so the same chunking, probes and tables apply.

    Args:
        sample_rate: Input sample rate in Hz.
        audio_length: Chunk length in samples the evaluation cuts tracks into.
        n_mfcc: Coefficients per frame.
        n_mels: Mel bands.
        n_fft: FFT window; 2048 samples (93 ms at 22,050 Hz) by default, shortened to fit chunks
            shorter than that (with at most ``n_fft / 8`` mel bands, so that none is empty).
    """

    def __init__(self, sample_rate: int = 22050, audio_length: int = 59049, n_mfcc: int = 20, n_mels: int = 128,
                 n_fft: int = 2048):
        super().__init__()
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        n_fft = min(int(n_fft), 2 ** int(math.floor(math.log2(max(self.audio_length, 16)))))
        self.n_mfcc, self.n_mels, self.n_fft = int(n_mfcc), min(int(n_mels), n_fft // 8), n_fft
        self.embedding_dim = 4 * self.n_mfcc
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=self.sample_rate, n_mfcc=self.n_mfcc, log_mels=True,
            melkwargs={"n_fft": self.n_fft, "hop_length": self.n_fft // 4, "n_mels": self.n_mels,
                       "f_max": self.sample_rate / 2})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, samples)`` or ``(batch, 1, samples)`` → ``(batch, 4 * n_mfcc)``."""
        if x.dim() == 3:
            x = x[:, 0]
        coefficients = self.mfcc(x.float())  # (batch, n_mfcc, frames)
        deltas = coefficients[..., 1:] - coefficients[..., :-1]
        if deltas.shape[-1] == 0:
            deltas = torch.zeros_like(coefficients)
        return torch.cat([coefficients.mean(-1), coefficients.std(-1, unbiased=False),
                          deltas.mean(-1), deltas.std(-1, unbiased=False)], dim=1)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, audio_length={self.audio_length}, n_mfcc={self.n_mfcc}, "
                f"n_mels={self.n_mels}, n_fft={self.n_fft}")
