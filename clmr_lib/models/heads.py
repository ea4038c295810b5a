"""Heads on top of an encoder: the SimCLR projector and the linear / MLP probes."""
from __future__ import annotations

from torch import nn


class ProjectionHead(nn.Sequential):
    """SimCLR's projector g(·) (Chen et al., 2020): Linear → ReLU → Linear, no biases.

    Its parameter names (``0.weight``, ``2.weight``) match CLMR's ``projector`` so original
    checkpoints load.
    """

    def __init__(self, in_dim: int = 512, hidden_dim: int = 512, out_dim: int = 64):
        super().__init__(nn.Linear(in_dim, hidden_dim, bias=False), nn.ReLU(), nn.Linear(hidden_dim, out_dim, bias=False))


class ProbeHead(nn.Sequential):
    """Linear probe, or an MLP probe with one hidden layer (CLMR's ``finetuner_mlp``).

    Parameter names (``0.*``; ``0.*`` and ``2.*`` for the MLP) match CLMR's linear evaluation
    checkpoints.
    """

    def __init__(self, in_dim: int, n_classes: int, mlp: bool = False, hidden_dim: int = 512):
        if mlp:
            super().__init__(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, n_classes))
        else:
            super().__init__(nn.Linear(in_dim, n_classes))
