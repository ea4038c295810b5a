"""Random high-pass or low-pass filter, applied in the frequency domain."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._spectral import next_fast_length
from .base import BatchAugmentation, Params, check_range, check_sample_rate


class HighLowPass(BatchAugmentation):
    """With equal chance, a high-pass or a low-pass filter with a random cutoff.

    As torchaudio-augmentations' ``HighLowPass`` used by CLMR: the high-pass cutoff is
    uniform in [200, 1200] Hz and the low-pass cutoff uniform in [2200, 4000] Hz.

    Response: zero phase, with the magnitude of a digital Butterworth filter of ``order``
    (bilinear transform with a prewarped cutoff)::

        |H(f)| = 1 / sqrt(1 + (tan(pi f / fs) / tan(pi fc / fs)) ** (2 * order))   low-pass
        |H(f)| = 1 / sqrt(1 + (tan(pi fc / fs) / tan(pi f / fs)) ** (2 * order))   high-pass

    i.e. -3 dB at the cutoff and ``6 * order`` dB per octave beyond it: the magnitude of
    ``scipy.signal.butter(order, fc, fs=fs)`` (audiomentations' ``HighPassFilter`` and
    ``LowPassFilter`` with a roll-off of ``6 * order`` dB/octave, and for ``order=2``
    torchaudio's ``highpass_biquad``/``lowpass_biquad`` with Q = 1/sqrt(2)), without its
    phase shift. torchaudio-augmentations filtered with julius' zero-phase windowed-sinc
    FIR, which is much steeper (-6 dB at the cutoff, a transition band a fraction of the
    cutoff wide); its first, essentia-based version used first-order filters (6 dB per
    octave). The default ``order=4`` (24 dB/octave) is the steep end of audiomentations'
    range.

    The filter is one batched real FFT: each clip is zero-padded by at least eight periods
    of the lowest cutoff (so the filter's ringing does not wrap around), multiplied by its
    own response and transformed back.

    Args:
        sample_rate: Sample rate of the clips in Hz.
        min_highpass_hz: Lowest high-pass cutoff in Hz.
        max_highpass_hz: Highest high-pass cutoff in Hz.
        min_lowpass_hz: Lowest low-pass cutoff in Hz.
        max_lowpass_hz: Highest low-pass cutoff in Hz.
        order: Butterworth order of the magnitude response (6 dB/octave per order).
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, sample_rate: int, min_highpass_hz: float = 200.0,
                 max_highpass_hz: float = 1200.0, min_lowpass_hz: float = 2200.0,
                 max_lowpass_hz: float = 4000.0, order: int = 4, p: float = 0.8,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        self.sample_rate = check_sample_rate(sample_rate)
        nyquist = self.sample_rate / 2
        check_range("highpass_hz", min_highpass_hz, max_highpass_hz, lower=0.0)
        check_range("lowpass_hz", min_lowpass_hz, max_lowpass_hz, lower=0.0)
        for name, value in (("min_highpass_hz", min_highpass_hz),
                            ("min_lowpass_hz", min_lowpass_hz)):
            if value <= 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        for name, value in (("max_highpass_hz", max_highpass_hz),
                            ("max_lowpass_hz", max_lowpass_hz)):
            if value >= nyquist:
                raise ValueError(
                    f"{name} must be below the Nyquist frequency {nyquist} Hz, got {value}")
        if int(order) != order or order < 1:
            raise ValueError(f"order must be a positive integer, got {order}")
        self.min_highpass_hz = float(min_highpass_hz)
        self.max_highpass_hz = float(max_highpass_hz)
        self.min_lowpass_hz = float(min_lowpass_hz)
        self.max_lowpass_hz = float(max_lowpass_hz)
        self.order = int(order)
        lowest = min(self.min_highpass_hz, self.min_lowpass_hz)
        self.padding = math.ceil(8 * self.sample_rate / lowest)
        self._log_tan_cache: dict[tuple, Tensor] = {}

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask, ``"lowpass"`` (bool) and ``"cutoff_hz"`` per example."""
        params = super().sample_params(batch_size, device)
        lowpass = torch.rand(batch_size, device=device, generator=self.generator) < 0.5
        u = torch.rand(batch_size, device=device, generator=self.generator)
        high = self.min_highpass_hz + (self.max_highpass_hz - self.min_highpass_hz) * u
        low = self.min_lowpass_hz + (self.max_lowpass_hz - self.min_lowpass_hz) * u
        params["lowpass"] = lowpass
        params["cutoff_hz"] = torch.where(lowpass, low, high)
        return params

    def _log_tan(self, n_fft: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """``log(tan(pi f / fs))`` on the rfft grid (``-inf`` at 0 Hz, ``+inf`` at Nyquist)."""
        key = (n_fft, str(device), dtype)
        if key not in self._log_tan_cache:
            k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
            log_tan = torch.log(torch.tan(math.pi * k / n_fft))
            if n_fft % 2 == 0:
                log_tan[-1] = math.inf  # tan(pi/2) is a pole, not a large finite number
            self._log_tan_cache[key] = log_tan.to(device=device, dtype=dtype)
        return self._log_tan_cache[key]

    def response(self, n_fft: int, params: Params, dtype: torch.dtype = torch.float32) -> Tensor:
        """Magnitude response of every example on the ``rfft`` grid of length ``n_fft``.

        Args:
            n_fft: FFT length.
            params: ``"lowpass"`` and ``"cutoff_hz"`` per example.
            dtype: Real dtype of the result.

        Returns:
            ``(n, n_fft // 2 + 1)`` gains in [0, 1].
        """
        cutoff = params["cutoff_hz"].to(torch.float64)
        log_tan_cutoff = torch.log(torch.tan(math.pi * cutoff / self.sample_rate)).to(dtype)
        sign = torch.where(params["lowpass"], 2.0 * self.order, -2.0 * self.order).to(dtype)
        log_tan = self._log_tan(n_fft, cutoff.device, dtype)
        # |H|^2 = 1 / (1 + ratio^(2 order)) = sigmoid(-2 order log ratio): no overflow at the
        # band edges, and the infinities at 0 Hz and Nyquist give exact 0 or 1.
        log_ratio_scaled = (log_tan - log_tan_cutoff[:, None]).mul_(sign[:, None])
        return torch.sigmoid(log_ratio_scaled.neg_()).sqrt_()

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Filters every example with its own zero-phase response."""
        n = x.shape[-1]
        n_fft = next_fast_length(n + self.padding)
        spectrum = torch.fft.rfft(x, n=n_fft)
        gain = self.response(n_fft, params, x.dtype)
        torch.view_as_real(spectrum).mul_(gain[..., None])
        return torch.fft.irfft(spectrum, n=n_fft)[..., :n]

    def extra_repr(self) -> str:
        """Shows the cutoff ranges, order and ``p``."""
        return (f"sample_rate={self.sample_rate}, highpass_hz=[{self.min_highpass_hz}, "
                f"{self.max_highpass_hz}], lowpass_hz=[{self.min_lowpass_hz}, "
                f"{self.max_lowpass_hz}], order={self.order}, p={self.p}")
