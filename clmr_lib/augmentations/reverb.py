"""Reverb: sox's freeverb network, evaluated per example in the frequency domain."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from ._spectral import next_fast_length
from .base import BatchAugmentation, Params, check_range, check_sample_rate

# Freeverb's delay lengths in samples at 44.1 kHz, as used by sox's `reverb` effect.
COMB_LENGTHS = (1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617)
ALLPASS_LENGTHS = (225, 341, 441, 556)
ALLPASS_FEEDBACK = 0.5
WET_GAIN = 0.015  # sox scales the network's output by 0.015 (at a wet gain of 0 dB)

# Level (dB) by which the reverb tail that would wrap around the circular FFT is damped.
# Larger values damp wrap-around more but amplify float32 round-off at the clip's end by
# the same factor; 50 dB balances both near -50 dB of the wet signal.
WRAP_ATTENUATION_DB = 50.0

# Examples x combs x frequency bins processed at once on the CPU. One thread: small
# enough to stay in a core's cache. Several threads: fewer, larger kernels, since every
# parallel kernel waits for all threads and a busy machine stalls such waits.
_CHUNK_ELEMENTS = 1 << 18
_CHUNK_ELEMENTS_THREADED = 1 << 21


def sox_feedback(reverberance: Tensor) -> Tensor:
    """Comb feedback of sox's reverb for a reverberance in percent (0 -> 0.3, 100 -> 0.98)."""
    # sox 14.4.2 (the release WavAugment ran) fits 1 - exp((r - b) / (a b)) through
    # (0 %, 0.3) and (100 %, 0.98); later development versions raised the minimum to 0.5.
    a = -1.0 / math.log(1.0 - 0.3)
    b = 100.0 / (math.log(1.0 - 0.98) * a + 1.0)
    return 1.0 - torch.exp((reverberance - b) / (a * b))


def sox_damping(damping: Tensor) -> Tensor:
    """One-pole low-pass coefficient in sox's combs for HF damping in percent (0.2 to 0.5)."""
    return 0.2 + 0.3 * damping / 100.0


def sox_comb_delays(room_size: Tensor, sample_rate: int) -> Tensor:
    """Comb delays in samples for a room scale in percent, rounded like sox (``(n, 8)``)."""
    scale = 0.1 + 0.9 * room_size.to(torch.float64) / 100.0
    lengths = torch.tensor(COMB_LENGTHS, dtype=torch.float64, device=room_size.device)
    delays = torch.floor(scale[:, None] * (sample_rate / 44100.0) * lengths + 0.5)
    return delays.clamp(min=1.0)


class Reverb(BatchAugmentation):
    """sox's ``reverb`` effect (freeverb) with random reverberance, damping and room size.

    CLMR applied ``sox reverb <reverberance> <damping> <room_size>`` through WavAugment,
    each drawn in [0, 100] %. sox's reverb is Jezar's freeverb: eight parallel comb
    filters, each with a one-pole low-pass in its feedback loop, followed by four
    freeverb all-pass stages; the output is ``dry + 0.015 * network(dry)``. The parameters
    map exactly as in sox:

    * reverberance (%) sets the comb feedback ``1 - exp((r - b) / (a b))``, from 0.3 at
      0 % to 0.98 at 100 % (the tail's level drops by 10 dB per comb round trip at 0 % and
      by 0.18 dB at 100 %, at low frequencies), as in sox 14.4.2;
    * damping (%) sets the comb low-pass coefficient ``0.2 + 0.3 * damping / 100``, so high
      frequencies die out faster than low ones, more so with more damping;
    * room size (%) scales the comb delays by ``0.1 + 0.9 * room_size / 100`` (at 100 %:
      25 to 37 ms), so a larger room has sparser, longer-lasting echoes.

    Instead of running the recursive filters sample by sample, the network's transfer
    function is evaluated on the FFT grid for every example (a few dozen element-wise
    operations per frequency bin) and applied with one batched FFT convolution. To make
    the circular convolution causal without padding to twice the length, signal and
    transfer function are evaluated on a circle of radius ``r > 1`` (the signal is
    weighted by ``r**-n`` before the FFT and the result by ``r**n`` after it): whatever
    would wrap around is damped by ``WRAP_ATTENUATION_DB``. The dry signal is added in the
    time domain. In float32 the result equals a sample-by-sample freeverb with sox's
    parameters to -50 dB of the wet signal or better (the two error sources, wrap-around
    and round-off, are balanced by ``WRAP_ATTENUATION_DB``); against the ``sox`` 14.4.2
    command (stereo depth 0) the difference measured -56 to -70 dB of the wet signal.

    Differences from CLMR's sox call: the output keeps the input length (the tail past the
    end is dropped); sox's default stereo depth made two slightly detuned networks whose
    outputs WavAugment averaged back to mono, here there is one (the first, undetuned
    one); parameters are continuous instead of integers.

    Args:
        sample_rate: Sample rate of the clips in Hz.
        min_reverberance: Smallest reverberance in percent.
        max_reverberance: Largest reverberance in percent.
        min_damping: Smallest high-frequency damping in percent.
        max_damping: Largest high-frequency damping in percent.
        min_room_size: Smallest room scale in percent.
        max_room_size: Largest room scale in percent.
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, sample_rate: int, min_reverberance: float = 0.0,
                 max_reverberance: float = 100.0, min_damping: float = 0.0,
                 max_damping: float = 100.0, min_room_size: float = 0.0,
                 max_room_size: float = 100.0, p: float = 0.6,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        self.sample_rate = check_sample_rate(sample_rate)
        check_range("reverberance", min_reverberance, max_reverberance, 0.0, 100.0)
        check_range("damping", min_damping, max_damping, 0.0, 100.0)
        check_range("room_size", min_room_size, max_room_size, 0.0, 100.0)
        self.min_reverberance = float(min_reverberance)
        self.max_reverberance = float(max_reverberance)
        self.min_damping = float(min_damping)
        self.max_damping = float(max_damping)
        self.min_room_size = float(min_room_size)
        self.max_room_size = float(max_room_size)
        self._cache: dict[tuple, tuple[Tensor, ...]] = {}

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask, ``"reverberance"``, ``"damping"`` and ``"room_size"`` (in %)."""
        params = super().sample_params(batch_size, device)
        params["reverberance"] = self._uniform(batch_size, device, self.min_reverberance,
                                               self.max_reverberance)
        params["damping"] = self._uniform(batch_size, device, self.min_damping, self.max_damping)
        params["room_size"] = self._uniform(batch_size, device, self.min_room_size,
                                            self.max_room_size)
        return params

    def _tables(self, n_fft: int, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, ...]:
        """Per-length constants: weights, frequency grid, z^-1 and the all-pass chain."""
        key = (n_fft, str(device), dtype)
        if key not in self._cache:
            log_r = WRAP_ATTENUATION_DB / 20.0 * math.log(10.0) / n_fft
            t = torch.arange(n_fft, dtype=torch.float64)
            down = torch.exp(-log_r * t)
            up = torch.exp(log_r * t)
            omega = 2.0 * math.pi * torch.arange(n_fft // 2 + 1, dtype=torch.float64) / n_fft
            # z^-1 on the circle of radius r.
            inv_z = torch.exp(torch.complex(torch.full_like(omega, -log_r), -omega))
            # The all-pass stages do not depend on the random parameters: one product for all.
            chain = torch.ones_like(inv_z)
            for length in ALLPASS_LENGTHS:
                delay = math.floor(length * self.sample_rate / 44100.0 + 0.5)
                z_d = inv_z ** delay
                chain = chain * ((1.0 + ALLPASS_FEEDBACK) * z_d - 1.0)
                chain = chain / (1.0 - ALLPASS_FEEDBACK * z_d)
            chain = chain * WET_GAIN
            self._cache[key] = tuple(
                v.to(device=device, dtype=dtype) for v in
                (down, up, omega, inv_z.real, inv_z.imag, chain.real, chain.imag)
            ) + (torch.tensor(log_r, dtype=dtype, device=device),)
        return self._cache[key]

    def wet_transfer(self, n_fft: int, params: Params, dtype: torch.dtype = torch.float32,
                     spectrum: Tensor | None = None) -> Tensor:
        """Transfer function of the wet path of every example on the weighted FFT grid.

        Args:
            n_fft: FFT length.
            params: ``"reverberance"``, ``"damping"`` and ``"room_size"`` per example.
            dtype: Real dtype of the result.
            spectrum: Optional ``(n, n_fft // 2 + 1)`` complex spectra; if given, they are
                multiplied by the transfer function in place (while it is in cache) and
                returned.

        Returns:
            ``(n, n_fft // 2 + 1)`` complex transfer functions, or the multiplied spectra.
        """
        device = params["reverberance"].device
        tables = self._tables(n_fft, device, dtype)
        _, _, omega, inv_z_re, inv_z_im, chain_re, chain_im, log_r = tables
        feedback = sox_feedback(params["reverberance"].to(dtype))
        damping = sox_damping(params["damping"].to(dtype))
        delays = sox_comb_delays(params["room_size"], self.sample_rate).to(dtype)
        n, bins = feedback.shape[0], omega.shape[0]
        if spectrum is None:
            spectrum = torch.ones(n, bins, dtype=torch.complex64 if dtype == torch.float32
                                  else torch.complex128, device=device)
        out = torch.view_as_real(spectrum)
        r_d = torch.exp(delays * log_r)[:, :, None]
        # Blocks of examples x combs x bins (on a GPU, one block: the whole batch).
        if device.type != "cpu":
            budget = 1 << 62
        elif torch.get_num_threads() == 1:
            budget = _CHUNK_ELEMENTS
        else:
            budget = _CHUNK_ELEMENTS_THREADED
        rows = max(1, budget // (len(COMB_LENGTHS) * bins))
        block = max(1, budget // (len(COMB_LENGTHS) * rows))
        for start in range(0, n, rows):
            e = slice(start, start + rows)
            d = damping[e, None]
            g = (feedback[e] * (1.0 - damping[e]))[:, None]
            for lo in range(0, bins, block):
                f = slice(lo, lo + block)
                # Loop filter of the combs: q = g (1 - d) / (1 - d z^-1), shared by all combs.
                den_re = 1.0 - d * inv_z_re[f]
                den_im = d * inv_z_im[f]
                scale = (den_re * den_re).addcmul_(den_im, den_im).reciprocal_().mul_(g)
                q_re = den_re.mul_(scale)[:, None, :]
                q_im = den_im.mul_(scale)[:, None, :]
                # Comb: z^-D / (1 - q z^-D) = 1 / (z^D - q) with z^D = r^D e^{i omega D}.
                # In-place updates rather than addcmul: broadcasting three-operand kernels
                # run several times slower on the CPU.
                theta = delays[e, :, None] * omega[f]
                a = torch.cos(theta).mul_(r_d[e]).sub_(q_re)
                b = theta.sin_().mul_(r_d[e]).sub_(q_im)
                inv_mag = (a * a).addcmul_(b, b).reciprocal_()
                sum_re = a.mul_(inv_mag).sum(dim=1)
                sum_im = b.mul_(inv_mag).sum(dim=1).neg_()
                # Times the all-pass chain (with the wet gain), then times the spectrum.
                h_re = sum_re * chain_re[f] - sum_im * chain_im[f]
                h_im = sum_re * chain_im[f] + sum_im * chain_re[f]
                x_re = out[e, f, 0].clone()
                x_im = out[e, f, 1]
                out[e, f, 0] = x_re * h_re - x_im * h_im
                out[e, f, 1] = x_re * h_im + x_im * h_re
        return spectrum

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Returns ``x`` plus its freeverb wet signal, truncated to the input length."""
        n = x.shape[-1]
        n_fft = next_fast_length(n)
        down, up = self._tables(n_fft, x.device, x.dtype)[:2]
        spectrum = torch.fft.rfft(x * down[:n], n=n_fft)
        wet = torch.fft.irfft(self.wet_transfer(n_fft, params, x.dtype, spectrum), n=n_fft)
        return torch.addcmul(x, wet[..., :n], up[:n])

    def extra_repr(self) -> str:
        """Shows the parameter ranges and ``p``."""
        return (f"sample_rate={self.sample_rate}, reverberance=[{self.min_reverberance}, "
                f"{self.max_reverberance}], damping=[{self.min_damping}, {self.max_damping}], "
                f"room_size=[{self.min_room_size}, {self.max_room_size}], p={self.p}")
