"""Self-supervised losses."""

from clmr_lib.losses.ntxent import NTXentLoss

__all__ = ["NTXentLoss"]
