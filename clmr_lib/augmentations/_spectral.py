"""FFT helpers shared by the frequency-domain augmentations."""
from __future__ import annotations


def next_fast_length(n: int) -> int:
    """Returns the smallest integer >= ``n`` whose only prime factors are 2, 3 and 5.

    FFTs of such lengths are fast in every backend (pocketfft, MKL, cuFFT); a prime length
    can be many times slower.

    Args:
        n: Minimum length (positive).

    Returns:
        The fast length.
    """
    if n <= 1:
        return 1
    best = 2 * n  # a power of two <= 2n always exists
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            # Smallest power of two that lifts power35 to at least n.
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best
