"""NT-Xent, the normalised temperature-scaled cross-entropy loss of SimCLR (Chen et al., 2020)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clmr_lib.utils import dist


class NTXentLoss(nn.Module):
    """Contrastive loss over two views of a batch (SimCLR, Chen et al., 2020, eq. 1).

    Every one of the ``2N`` embeddings is an anchor; its positive is the other view of the same
    example and its negatives are the remaining ``2N - 2`` embeddings. Similarities are cosine
    similarities divided by the temperature, and the loss is the cross-entropy of picking the
    positive among the ``2N - 1`` candidates, averaged over all ``2N`` anchors.

    The batch size is read from the inputs on every call, so a smaller last batch is fine.
    With ``N = 1`` in a single process an anchor's only candidate is its positive, so the loss
    is exactly ``log(1) = 0`` with zero gradient: a stray one-example batch (``drop_last=False``)
    contributes nothing instead of crashing an epoch.

    Under torch.distributed (and ``gather_distributed=True``) the embeddings of all processes
    are gathered, so each process's anchors are contrasted against the whole global batch.
    Each process returns the mean over its own anchors. With equal batch sizes on all
    processes, the mean of these over processes (what Lightning logs with ``sync_dist=True``)
    is the loss of one process on the concatenated global batch, and so are the gradients once
    DistributedDataParallel has averaged them. Batch sizes may differ between processes (e.g.
    after dropping unreadable clips); every process then still contrasts against the whole
    global batch, but the average weighs processes, not anchors, equally. Every process must
    call the loss at every step: it is a collective.

    Args:
        temperature: Softmax temperature ``tau`` (> 0); SimCLR and CLMR use 0.5.
        gather_distributed: Use the other processes' embeddings as negatives when
            torch.distributed is initialised. Without it each process contrasts its local batch
            only.

    Raises:
        ValueError: If ``temperature`` is not a positive finite number.
    """

    def __init__(self, temperature: float = 0.5, gather_distributed: bool = True) -> None:
        super().__init__()
        if not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0
        ):
            raise ValueError(
                f"NTXentLoss temperature must be a positive number, got {temperature!r}"
            )
        self.temperature = float(temperature)
        self.gather_distributed = gather_distributed

    def forward(self, z_i: Tensor, z_j: Tensor) -> Tensor:
        """Compute the loss for two views.

        Args:
            z_i: Projections of the first views, shape ``(N, D)``.
            z_j: Projections of the second views, shape ``(N, D)``; row ``k`` is the positive of
                row ``k`` of ``z_i``.

        Returns:
            Scalar loss: the mean over this process's ``2N`` anchors.

        Raises:
            ValueError: If the inputs are not two non-empty ``(N, D)`` tensors of equal shape.
        """
        if z_i.dim() != 2 or z_i.shape != z_j.shape or z_i.shape[0] == 0:
            raise ValueError(
                "NTXentLoss expects two non-empty (batch, dim) tensors of the same shape, "
                f"got {tuple(z_i.shape)} and {tuple(z_j.shape)}"
            )
        n = z_i.shape[0]
        # Unit vectors make the dot product the cosine similarity.
        anchors = F.normalize(torch.cat([z_i, z_j]), dim=1)
        if self.gather_distributed and dist.world_size() > 1:
            # One gather for both views: candidates are [z_i; z_j] of rank 0, then of rank 1, ...
            counts = dist.row_counts(anchors)
            candidates = dist.gather_with_grad(anchors, counts=counts)
            offset = sum(counts[: dist.rank()])
        else:
            candidates, offset = anchors, 0

        logits = anchors @ candidates.T / self.temperature
        rows = torch.arange(2 * n, device=anchors.device)
        # Our anchors sit at columns offset..offset+2n of the candidates: an anchor must not be
        # its own candidate, and its positive is the other view in our own block. Indexing by
        # rank's block (not as if all z_i came first) is what keeps the distributed loss right.
        is_self = torch.zeros_like(logits, dtype=torch.bool)
        is_self[rows, offset + rows] = True
        logits = logits.masked_fill(is_self, float("-inf"))
        positives = offset + (rows + n) % (2 * n)
        return F.cross_entropy(logits, positives)
