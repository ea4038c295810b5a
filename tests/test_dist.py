"""Tests for clmr_lib.utils.dist and the distributed NT-Xent loss, on 2 CPU processes (gloo)."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn

from clmr_lib.losses import NTXentLoss
from clmr_lib.utils import gather_with_grad, is_distributed, rank, row_counts, world_size

WORLD = 2
LOCAL = 3  # examples per process; the global batch has WORLD * LOCAL
UNEQUAL = [3, 2]  # examples per process when dropped clips leave ranks with different batches
DIM_IN, DIM_OUT = 5, 4
SPAWN_TIMEOUT_S = 90
# Belt and braces over the spawn deadline below: no test here may hang the suite.
pytestmark = pytest.mark.timeout(180)


def _gather_inputs():
    """Rows gathered in the gather test, and a different quadratic weighting per rank."""
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(WORLD * LOCAL, 2, generator=g, dtype=torch.float64)
    weights = torch.randn(WORLD, WORLD * LOCAL, 2, generator=g, dtype=torch.float64)
    return rows, weights


def _loss_inputs():
    """Two views of the global batch, and the initial weights of the shared linear model."""
    g = torch.Generator().manual_seed(1)
    x_i = torch.randn(WORLD * LOCAL, DIM_IN, generator=g, dtype=torch.float64)
    x_j = torch.randn(WORLD * LOCAL, DIM_IN, generator=g, dtype=torch.float64)
    model = nn.Linear(DIM_IN, DIM_OUT).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(DIM_OUT, DIM_IN, generator=g, dtype=torch.float64))
        model.bias.copy_(torch.randn(DIM_OUT, generator=g, dtype=torch.float64))
    return x_i, x_j, model


def _unequal_slice(process_rank: int) -> slice:
    start = sum(UNEQUAL[:process_rank])
    return slice(start, start + UNEQUAL[process_rank])


def _anchor_subset_loss(z_i, z_j, anchors, temperature):
    """NT-Xent of some anchors (example indices, both views) against all 2N candidates."""
    z = nn.functional.normalize(torch.cat([z_i, z_j]), dim=1)
    n = len(z_i)
    terms = []
    for k in anchors:
        for anchor, positive in [(k, k + n), (k + n, k)]:
            others = [c for c in range(2 * n) if c != anchor]
            logits = torch.stack([z[anchor] @ z[c] for c in others]) / temperature
            terms.append(torch.logsumexp(logits, 0) - z[anchor] @ z[positive] / temperature)
    return torch.stack(terms).mean()


class _ContrastiveStep(nn.Module):
    """Model and loss in one forward, as Lightning's DDP wraps a whole training_step."""

    def __init__(self, model: nn.Module, loss: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.loss = loss

    def forward(self, x_i: torch.Tensor, x_j: torch.Tensor) -> torch.Tensor:
        return self.loss(self.model(x_i), self.model(x_j))


def _worker(process_rank: int, init_file: str, out_dir: str) -> None:
    """Run every distributed check in one process and save what the parent compares."""
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        "gloo",
        init_method=f"file://{init_file}",
        rank=process_rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    try:
        mine = slice(process_rank * LOCAL, (process_rank + 1) * LOCAL)
        out = {"is_distributed": is_distributed(), "rank": rank(), "world_size": world_size()}

        rows, weights = _gather_inputs()
        x = rows[mine].clone().requires_grad_(True)
        gathered = gather_with_grad(x)
        (weights[process_rank] * gathered**2).sum().backward()
        out["gathered"], out["gather_grad"] = gathered.detach(), x.grad

        x = rows[_unequal_slice(process_rank)].clone().requires_grad_(True)
        out["unequal_counts"] = row_counts(x)
        gathered = gather_with_grad(x)
        (weights[process_rank, : sum(UNEQUAL)] * gathered**2).sum().backward()
        out["unequal_gathered"], out["unequal_grad"] = gathered.detach(), x.grad

        try:
            gather_with_grad(torch.zeros(LOCAL, 2 + process_rank))
            out["mismatch_error"] = None
        except ValueError as error:
            out["mismatch_error"] = str(error)

        x_i, x_j, model = _loss_inputs()
        step = nn.parallel.DistributedDataParallel(_ContrastiveStep(model, NTXentLoss(0.5)))
        loss = step(x_i[mine], x_j[mine])
        loss.backward()
        mean_loss = loss.detach().clone()
        torch_dist.all_reduce(mean_loss)
        out["loss"], out["mean_loss"] = loss.detach(), mean_loss / WORLD
        out["grads"] = {name: p.grad.clone() for name, p in model.named_parameters()}

        local_only = NTXentLoss(0.5, gather_distributed=False)
        out["local_loss"] = local_only(model(x_i[mine]), model(x_j[mine])).detach()

        x_i, x_j, model = _loss_inputs()
        step = nn.parallel.DistributedDataParallel(_ContrastiveStep(model, NTXentLoss(0.5)))
        uneven = _unequal_slice(process_rank)
        loss = step(x_i[uneven], x_j[uneven])
        loss.backward()
        out["unequal_loss"] = loss.detach()
        out["unequal_grads"] = {name: p.grad.clone() for name, p in model.named_parameters()}

        torch.save(out, os.path.join(out_dir, f"rank{process_rank}.pt"))
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    """Per-rank outputs of ``_worker`` run on WORLD spawned processes."""
    tmp = tmp_path_factory.mktemp("dist")
    with pytest.MonkeyPatch.context() as patch:
        # Children inherit it: one OpenMP thread each, or they stall on a busy 2-core machine.
        patch.setenv("OMP_NUM_THREADS", "1")
        context = mp.start_processes(
            _worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=False,
            start_method="spawn",
        )
    deadline = time.monotonic() + SPAWN_TIMEOUT_S
    # join() raises if a child failed; its timeout lets a hang fail the test instead.
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
                process.join(5)
            pytest.fail(f"distributed workers did not finish within {SPAWN_TIMEOUT_S} s")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def test_helpers_without_process_group():
    x = torch.randn(3, 2, requires_grad=True)
    assert not is_distributed() and rank() == 0 and world_size() == 1
    assert gather_with_grad(x) is x
    assert row_counts(x) == [3]
    with pytest.raises(ValueError, match="at least one dimension"):
        row_counts(torch.tensor(1.0))


def test_helpers_report_rank_and_world_size(results):
    for r, out in enumerate(results):
        assert out["is_distributed"] and out["rank"] == r and out["world_size"] == WORLD


def test_gather_with_grad_orders_by_rank_and_routes_gradients(results):
    rows, weights = _gather_inputs()
    rows.requires_grad_(True)
    # One process seeing every rank's loss: the gradient of their sum.
    sum(weights[r] * rows**2 for r in range(WORLD)).sum().backward()
    for r, out in enumerate(results):
        torch.testing.assert_close(out["gathered"], rows.detach(), rtol=0, atol=0)
        torch.testing.assert_close(
            out["gather_grad"], rows.grad[r * LOCAL : (r + 1) * LOCAL], rtol=0, atol=1e-12
        )


def test_gather_with_grad_handles_unequal_row_counts(results):
    rows, weights = _gather_inputs()
    rows = rows[: sum(UNEQUAL)].requires_grad_(True)
    sum(weights[r, : sum(UNEQUAL)] * rows**2 for r in range(WORLD)).sum().backward()
    for r, out in enumerate(results):
        assert out["unequal_counts"] == UNEQUAL
        torch.testing.assert_close(out["unequal_gathered"], rows.detach(), rtol=0, atol=0)
        torch.testing.assert_close(
            out["unequal_grad"], rows.grad[_unequal_slice(r)], rtol=0, atol=1e-12
        )


def test_gather_with_grad_rejects_other_shape_differences_on_every_rank(results):
    for out in results:
        assert out["mismatch_error"] is not None and "differ only in dim 0" in out["mismatch_error"]


def test_distributed_loss_and_ddp_gradients_match_one_process_on_global_batch(results):
    x_i, x_j, model = _loss_inputs()
    expected = NTXentLoss(0.5)(model(x_i), model(x_j))
    expected.backward()
    for out in results:
        torch.testing.assert_close(out["mean_loss"], expected.detach(), rtol=0, atol=1e-12)
        for name, p in model.named_parameters():
            torch.testing.assert_close(out["grads"][name], p.grad, rtol=0, atol=1e-12)
    # Each rank's own value is the mean over its anchors, not the global loss.
    assert not torch.allclose(results[0]["loss"], results[1]["loss"])


def test_unequal_batches_contrast_against_the_whole_global_batch(results):
    x_i, x_j, model = _loss_inputs()
    z_i, z_j = model(x_i[: sum(UNEQUAL)]), model(x_j[: sum(UNEQUAL)])
    per_rank = [
        _anchor_subset_loss(z_i, z_j, range(sum(UNEQUAL))[_unequal_slice(r)], 0.5)
        for r in range(WORLD)
    ]
    # DDP averages over processes: the gradient of the mean of the per-process losses.
    (sum(per_rank) / WORLD).backward()
    for r, out in enumerate(results):
        torch.testing.assert_close(out["unequal_loss"], per_rank[r].detach(), rtol=0, atol=1e-12)
        for name, p in model.named_parameters():
            torch.testing.assert_close(out["unequal_grads"][name], p.grad, rtol=0, atol=1e-12)


def test_gather_distributed_false_uses_the_local_batch_only(results):
    x_i, x_j, model = _loss_inputs()
    with torch.no_grad():
        for r, out in enumerate(results):
            mine = slice(r * LOCAL, (r + 1) * LOCAL)
            expected = NTXentLoss(0.5)(model(x_i[mine]), model(x_j[mine]))
            torch.testing.assert_close(out["local_loss"], expected, rtol=0, atol=1e-12)
