"""Tests for clmr_lib.losses.ntxent (single process; the distributed path is in test_dist.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from clmr_lib.losses import NTXentLoss


def reference_ntxent(z_i: np.ndarray, z_j: np.ndarray, temperature: float) -> float:
    """NT-Xent written out anchor by anchor, as in SimCLR's Algorithm 1 (Chen et al., 2020)."""
    z = np.concatenate([z_i, z_j]).astype(np.float64)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n = len(z)
    total = 0.0
    for anchor in range(two_n):
        positive = (anchor + two_n // 2) % two_n
        denominator = 0.0
        for candidate in range(two_n):
            if candidate != anchor:
                denominator += math.exp(z[anchor] @ z[candidate] / temperature)
        total += -math.log(math.exp(z[anchor] @ z[positive] / temperature) / denominator)
    return total / two_n


@pytest.fixture
def views():
    """Two random views of a batch of 5 embeddings of size 8, in float64."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 5, 8, generator=g, dtype=torch.float64)
    return z[0], z[1]


@pytest.mark.parametrize("batch_size", [2, 3, 7])
@pytest.mark.parametrize("temperature", [0.1, 0.5, 1.0])
def test_matches_reference(batch_size, temperature):
    g = torch.Generator().manual_seed(batch_size)
    z_i = torch.randn(batch_size, 6, generator=g, dtype=torch.float64)
    z_j = torch.randn(batch_size, 6, generator=g, dtype=torch.float64)
    loss = NTXentLoss(temperature)(z_i, z_j)
    assert loss.shape == ()
    expected = reference_ntxent(z_i.numpy(), z_j.numpy(), temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_same_module_accepts_changing_batch_sizes():
    loss_fn = NTXentLoss(0.5)
    for batch_size in [7, 3, 2, 7]:
        z_i, z_j = torch.randn(batch_size, 4), torch.randn(batch_size, 4)
        expected = reference_ntxent(z_i.numpy(), z_j.numpy(), 0.5)
        assert loss_fn(z_i, z_j).item() == pytest.approx(expected, rel=1e-5)


def test_symmetric_in_the_two_views(views):
    z_i, z_j = views
    loss_fn = NTXentLoss(0.5)
    torch.testing.assert_close(loss_fn(z_i, z_j), loss_fn(z_j, z_i), rtol=0, atol=1e-12)


def test_identical_embeddings_give_log_of_candidate_count():
    # All similarities equal: the positive is one of 2N - 1 equally likely candidates.
    n = 4
    z = torch.ones(n, 3)
    assert NTXentLoss(0.5)(z, z).item() == pytest.approx(math.log(2 * n - 1), rel=1e-6)


def test_aligned_orthogonal_pairs_closed_form():
    # Positives have similarity 1, the 2N - 2 negatives similarity 0.
    n, temperature = 3, 0.2
    z = torch.eye(n, 5)
    expected = -1 / temperature + math.log(math.exp(1 / temperature) + 2 * n - 2)
    assert NTXentLoss(temperature)(z, z).item() == pytest.approx(expected, rel=1e-6)


def test_invariant_to_scaling_embeddings(views):
    z_i, z_j = views
    loss_fn = NTXentLoss(0.5)
    row_scales = torch.tensor([[0.01], [3.0], [100.0], [1.0], [7.5]], dtype=torch.float64)
    torch.testing.assert_close(loss_fn(z_i * row_scales, 42.0 * z_j), loss_fn(z_i, z_j))


def test_batch_of_one_gives_zero_loss_and_zero_gradient():
    z_i = torch.randn(1, 4, requires_grad=True)
    loss = NTXentLoss(0.5)(z_i, torch.randn(1, 4))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(z_i.grad, torch.zeros_like(z_i))


@pytest.mark.parametrize("temperature", [0, -0.5, float("nan"), float("inf"), "0.5"])
def test_rejects_bad_temperature(temperature):
    with pytest.raises(ValueError, match="temperature"):
        NTXentLoss(temperature)


@pytest.mark.parametrize(
    "shape_i, shape_j", [((4, 3), (5, 3)), ((4, 3), (4, 2)), ((4,), (4,)), ((0, 3), (0, 3))]
)
def test_rejects_bad_shapes(shape_i, shape_j):
    with pytest.raises(ValueError, match="same shape"):
        NTXentLoss()(torch.randn(shape_i), torch.randn(shape_j))


def test_gradcheck():
    g = torch.Generator().manual_seed(1)
    z_i = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    z_j = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(NTXentLoss(0.3), (z_i, z_j))


def test_loss_decreases_under_sgd():
    # Two noisy views of the same points: a linear projection can learn to match them.
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    view_i, view_j = x + 0.1 * torch.randn_like(x), x + 0.1 * torch.randn_like(x)
    torch.manual_seed(1)
    model = nn.Linear(8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    loss_fn = NTXentLoss(0.5)
    losses = []
    for _ in range(20):
        loss = loss_fn(model(view_i), model(view_j))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # About 2.08 -> 1.69 here; the loss cannot go far below that with 15 negatives at tau 0.5.
    assert losses[-1] < 0.9 * losses[0]
