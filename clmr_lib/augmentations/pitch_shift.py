"""Pitch shift with the duration kept: resampling followed by a batched WSOLA time stretch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import BatchAugmentation, Params, check_range, check_sample_rate

# sox's `tempo` defaults for music: 82 ms segments overlapping by 12 ms, and a best
# overlap searched within 14.68 ms.
SEGMENT_S = 0.082
OVERLAP_S = 0.012
SEARCH_S = 0.01468


class PitchShift(BatchAugmentation):
    """Shifts the pitch of each selected clip by a random number of semitones, same length.

    CLMR called ``sox pitch <cents>`` through WavAugment with cents uniform in [-700, 700];
    sox's ``pitch`` is its ``tempo`` effect (WSOLA time stretching) followed by ``rate``
    (resampling). Here the two steps run in the other order, which gives the same result
    and keeps every output on one length:

    1. Resample: for a shift of ``s`` semitones, ``alpha = 2 ** (s / 12)`` and the clip is
       read ``alpha`` times faster (linear interpolation), so its pitch is multiplied by
       ``alpha`` and its length divided by it.
    2. Stretch back to the input length by WSOLA (waveform-similarity overlap-add, as sox's
       ``tempo``): output segments of 82 ms overlapping by 12 ms (raised-cosine
       cross-fades) are copied from positions within +-7.3 ms of their nominal position,
       choosing the position whose start best continues the previous segment (least
       squared difference over the overlap).

    Batched form: every example has its own ``alpha``; the output segment grid is the same
    for all. The similarity of every candidate position of every segment is computed in
    one grouped convolution (over every other sample of the overlap), assuming that the
    signal's short-time similarity at a given lag changes little within the 7 ms search
    range: the candidate scores are measured against the previous segment at its nominal
    position, and only the cheap choice of the best candidate, which depends on the
    previous choice, runs as a loop over the ~40 segments (on tiny tensors).

    Differences from sox: linear interpolation instead of sox's band-limited ``rate``
    (upward shifts alias a little of the content above ``fs / (2 alpha)``, which ``rate``
    would remove; interpolation positions are float32, accurate to about 1e-3 samples on
    a 3 s clip), continuous semitones rounded to cents, and the last segments, which would
    read past the end of the resampled clip, are clamped to its end.

    Args:
        sample_rate: Sample rate of the clips in Hz.
        min_semitones: Smallest shift in semitones (>= -24).
        max_semitones: Largest shift in semitones (<= 24).
        p: Probability of applying the transform to each example.
        generator: Optional random generator on the batches' device.
    """

    def __init__(self, sample_rate: int, min_semitones: float = -7.0, max_semitones: float = 7.0,
                 p: float = 0.6, generator: torch.Generator | None = None) -> None:
        super().__init__(p, generator)
        self.sample_rate = check_sample_rate(sample_rate)
        check_range("semitones", min_semitones, max_semitones, -24.0, 24.0)
        self.min_semitones = float(min_semitones)
        self.max_semitones = float(max_semitones)
        # The overlap is even so that the similarity can use every other sample.
        self.overlap = max(2, 2 * round(OVERLAP_S * self.sample_rate / 2))
        self.stride = max(1, round((SEGMENT_S - OVERLAP_S) * self.sample_rate))
        self.search = max(1, round(SEARCH_S * self.sample_rate / 2))
        ramp = (torch.arange(self.overlap, dtype=torch.float64) + 0.5) / self.overlap
        self._fade_in = torch.sin(0.5 * math.pi * ramp) ** 2

    def sample_params(self, batch_size: int, device: torch.device) -> Params:
        """Draws the mask and ``"semitones"`` (a whole number of cents) per example."""
        params = super().sample_params(batch_size, device)
        semitones = self._uniform(batch_size, device, self.min_semitones, self.max_semitones)
        params["semitones"] = torch.round(semitones * 100.0) / 100.0
        return params

    def apply(self, x: Tensor, params: Params) -> Tensor:
        """Shifts every example by its ``"semitones"``; the length is unchanged."""
        n, length = x.shape
        if length < 2:
            return x.clone()
        alpha = torch.exp2(params["semitones"].to(torch.float64) / 12.0)
        # Zero margins so that every template, search region and segment can be copied.
        left = 2 * self.search
        right = self.stride + 2 * self.overlap + 4 * self.search
        padded, valid = _resample(x, alpha, left, right)
        return self._stretch(padded, left, valid, alpha, length)

    def _stretch(self, padded: Tensor, left: int, valid: Tensor, alpha: Tensor, length: int
                 ) -> Tensor:
        """WSOLA: time-stretches each resampled row (``valid`` samples from ``left``)."""
        n, device, dtype = padded.shape[0], padded.device, padded.dtype
        stride, overlap, search = self.stride, self.overlap, self.search
        seg_len = stride + overlap
        # Enough segments that the last one's fade-out starts at or after the end.
        segments = max(1, math.ceil(length / stride))
        k = torch.arange(segments, device=device)
        # Nominal start of every segment in the resampled clip, and the latest start that
        # still leaves the samples the output needs from it.
        nominal = torch.round(k * stride / alpha[:, None]).long()
        needed = (length - k * stride).clamp(max=seg_len)
        latest = (valid[:, None] - needed).clamp(min=0)

        positions = nominal.clone()
        positions[:, 0] = 0
        if segments > 1:
            scores = self._scores(padded, nominal, left)
            # Allowed offsets keep the segment inside the resampled clip.
            lowest = (-nominal[:, 1:]).clamp(min=-search)
            highest = (latest[:, 1:] - nominal[:, 1:]).clamp(max=search)
            any_allowed = lowest <= highest
            fallback = torch.minimum(nominal[:, 1:], latest[:, 1:]) - nominal[:, 1:]
            window = torch.arange(2 * search + 1, device=device)
            previous = torch.zeros(n, dtype=torch.long, device=device)
            for i in range(segments - 1):
                # Score index j holds offset d = j - 2 search + previous: the window of
                # offsets -search..search, shifted back inside the scores if a clamped
                # segment left `previous` outside that range.
                first = (search - previous).clamp(0, 2 * search)
                candidates = scores[:, i].gather(1, first[:, None] + window)
                offsets = first[:, None] + window + (previous - 2 * search)[:, None]
                blocked = (offsets < lowest[:, i, None]) | (offsets > highest[:, i, None])
                choice = candidates.masked_fill_(blocked, -math.inf).argmax(dim=1, keepdim=True)
                best = offsets.gather(1, choice)[:, 0]
                previous = torch.where(any_allowed[:, i], best, fallback[:, i])
                positions[:, i + 1] += previous
        positions = torch.minimum(positions, latest)

        pieces = _windows(padded, positions + left, seg_len)
        fade_in = self._fade_in.to(device=device, dtype=dtype)
        weights = torch.ones(segments, seg_len, device=device, dtype=dtype)
        weights[1:, :overlap] = fade_in
        weights[:, stride:] = 1.0 - fade_in
        pieces = pieces.mul_(weights)
        # Overlap-add in place: each segment's fade-out joins the next one's fade-in.
        pieces[:, 1:, :overlap] += pieces[:, :-1, stride:]
        return pieces[:, :, :stride].reshape(n, -1)[:, :length]

    def _scores(self, padded: Tensor, nominal: Tensor, left: int) -> Tensor:
        """Similarity of every candidate start of segments 1.. with the previous segment.

        Returns:
            ``(n, segments - 1, 4 * search + 1)``: index ``j`` is the candidate starting at
            ``nominal[k] - 2 search + j`` compared with the continuation of segment ``k - 1``
            at its nominal position: ``2 <template, candidate> - |candidate|^2`` (the
            negative squared difference up to a constant), over every other sample.
        """
        n, segments = nominal.shape
        device = padded.device
        stride, overlap, search = self.stride, self.overlap, self.search
        template_start = nominal[:, :-1] + stride + left
        region_start = nominal[:, 1:] - 2 * search + left
        taps = overlap // 2
        region_len = overlap + 4 * search
        rows = n * (segments - 1)
        templates = _windows(padded, template_start, overlap)[..., ::2].reshape(rows, 1, taps)
        regions = _windows(padded, region_start, region_len).reshape(1, rows, region_len)
        lags = 4 * search + 1
        corr = F.conv1d(regions, templates, groups=rows, dilation=2)[0, :, :lags]
        # Energy of every candidate over the whole overlap (a running sum), halved to match
        # the correlation over every other sample.
        sums = F.pad(regions.reshape(rows, region_len).square().cumsum(dim=-1), (1, 0))
        energy = sums[:, overlap:overlap + lags] - sums[:, :lags]
        return (2.0 * corr).sub_(energy, alpha=0.5).reshape(n, segments - 1, lags)

    def extra_repr(self) -> str:
        """Shows the semitone range and ``p``."""
        return (f"sample_rate={self.sample_rate}, min_semitones={self.min_semitones}, "
                f"max_semitones={self.max_semitones}, p={self.p}")


def _windows(x: Tensor, starts: Tensor, size: int) -> Tensor:
    """Copies ``x[b, starts[b, k] : starts[b, k] + size]`` into a ``(n, k, size)`` tensor.

    Indexing a strided view of all windows copies whole rows, instead of gathering sample
    by sample through an index tensor as large as the result.
    """
    rows = torch.arange(x.shape[0], device=x.device)[:, None]
    return x.unfold(1, size, 1)[rows, starts]


def _resample(x: Tensor, alpha: Tensor, left: int, right: int) -> tuple[Tensor, Tensor]:
    """Reads each row of ``x`` ``alpha`` times faster, by linear interpolation.

    Args:
        x: ``(n, length)`` batch, ``length >= 2``.
        alpha: ``(n,)`` float64 speed factors.
        left: Zeros before each resampled row.
        right: Zeros at least after the longest resampled row.

    Returns:
        The resampled rows between their margins (``(n, left + max_len + right)``), and the
        number of resampled samples of each row (``(n,)`` int64).
    """
    n, length = x.shape
    valid = torch.floor((length - 1) / alpha).long() + 1
    out_len = left + int(valid.max()) + right
    # grid_sample interpolates every row at its own positions in one kernel, with zeros
    # outside the row. Positions are normalised so that -1 and 1 are the first and last
    # sample; with a height of 1 the second grid coordinate has no effect.
    step = (2.0 * alpha / (length - 1)).to(x.dtype)
    positions = torch.arange(-left, out_len - left, device=x.device, dtype=x.dtype)
    coords = positions * step[:, None] - 1.0
    grid = coords[:, None, :, None].expand(n, 1, out_len, 2)
    out = F.grid_sample(x[:, None, None, :], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)
    return out[:, 0, 0, :], valid
