"""MusicFM's log-mel front-end: 128-band dB mel spectrogram at 100 frames/s, normalised by two scalars."""
import contextlib

import torch
import torchaudio
from torch import nn


class MelFrontEnd(nn.Module):
    """Waveform to normalised log-mel spectrogram, as in MusicFM (Won et al., ICASSP 2024).

    ``torchaudio.transforms.MelSpectrogram`` with torchaudio's defaults (periodic Hann window of
    ``n_fft`` samples, centred frames with reflect padding, power 2, HTK mel scale without filter
    normalisation, 0 Hz to Nyquist), then ``AmplitudeToDB()`` (``10 * log10(max(x, 1e-10))``).
    The last frame is dropped, so ``N`` samples give ``N // hop_length`` frames, and the result is
    normalised with the dataset-wide mean and standard deviation (in dB) of the pre-training data.

    The attribute names ``mel_stft.spectrogram.window`` and ``mel_stft.mel_scale.fb`` are those of
    the official checkpoints (``preprocessor_melspec_2048.*``).

    Args:
        sample_rate: Sample rate of the input waveform in Hz.
        n_fft: FFT size and window length in samples.
        hop_length: Hop between frames in samples.
        n_mels: Number of mel bands.
        mean: Mean of the dB mel spectrogram over the pre-training data.
        std: Standard deviation of the dB mel spectrogram over the pre-training data.
    """

    def __init__(
        self,
        sample_rate: int = 24000,
        n_fft: int = 2048,
        hop_length: int = 240,
        n_mels: int = 128,
        mean: float = 0.0,
        std: float = 1.0,
    ) -> None:
        super().__init__()
        self.n_fft = n_fft
        self.hop_length = hop_length
        self.mean = float(mean)
        self.std = float(std)
        # torchaudio checks the filterbank with a data-dependent `.item()`, which a meta tensor
        # cannot answer; when the model is laid out on the meta device (to load a checkpoint
        # without initialising 330M parameters) these two small buffers are built on the CPU.
        on_meta = torch.empty(0).device.type == "meta"
        with torch.device("cpu") if on_meta else contextlib.nullcontext():
            self.mel_stft = torchaudio.transforms.MelSpectrogram(
                sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels
            )
            self.amplitude_to_db = torchaudio.transforms.AmplitudeToDB()

    @property
    def min_samples(self) -> int:
        """Shortest input: reflect padding of ``n_fft // 2`` needs more samples than the pad."""
        return self.n_fft // 2 + 1

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Compute the normalised log-mel spectrogram, always in float32.

        Args:
            wav: Waveforms ``(batch, samples)`` at ``sample_rate``.

        Returns:
            ``(batch, n_mels, samples // hop_length)`` float32 tensor.
        """
        if wav.shape[-1] < self.min_samples:
            raise ValueError(
                f"MusicFM needs at least {self.min_samples} samples per clip, got {wav.shape[-1]}"
            )
        # dB of tiny powers is ill-conditioned in half precision: like the original, the front-end
        # stays float32 whatever the dtype of the rest of the model or an active autocast.
        if self.mel_stft.mel_scale.fb.dtype != torch.float32:
            self.mel_stft.float()
        with torch.autocast(device_type=wav.device.type, enabled=False):
            mel = self.amplitude_to_db(self.mel_stft(wav.float()))
        return (mel[..., :-1] - self.mean) / self.std
