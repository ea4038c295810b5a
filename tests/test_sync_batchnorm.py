"""Tests for clmr_lib.training.sync_batchnorm: global-batch BatchNorm on CPU processes (gloo)."""
from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn

from clmr_lib.training.sync_batchnorm import GlobalBatchNorm, GlobalBatchNormSync

WORLD, LOCAL, CHANNELS = 2, 3, 4
pytestmark = pytest.mark.timeout(180)


def _inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(WORLD * LOCAL, CHANNELS, 5, generator=g, dtype=torch.float64) * 3 + 1
    weights = torch.randn(WORLD * LOCAL, CHANNELS, 5, generator=g, dtype=torch.float64)
    return x, weights


def _layer(cls):
    layer = cls(CHANNELS, momentum=0.3).double()
    with torch.no_grad():
        layer.weight.copy_(torch.linspace(0.5, 2.0, CHANNELS))
        layer.bias.copy_(torch.linspace(-1.0, 1.0, CHANNELS))
    return layer


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD,
                                  timeout=timedelta(seconds=60))
    try:
        x, weights = _inputs()
        mine = slice(rank * LOCAL, (rank + 1) * LOCAL)
        layer = nn.parallel.DistributedDataParallel(_layer(GlobalBatchNorm))
        part = x[mine].clone().requires_grad_(True)
        out = layer(part)
        (out * weights[mine]).sum().backward()
        torch.save({"out": out.detach(), "x_grad": part.grad, "weight_grad": layer.module.weight.grad,
                    "bias_grad": layer.module.bias.grad, "running_mean": layer.module.running_mean,
                    "running_var": layer.module.running_var},
                   os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        torch_dist.destroy_process_group()


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("syncbn")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        context = mp.start_processes(_worker, args=(str(tmp / "init"), str(tmp)), nprocs=WORLD, join=False,
                                     start_method="spawn")
    deadline = time.monotonic() + 120
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail("distributed workers did not finish within 120 s")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.slow
def test_two_processes_normalise_and_differentiate_like_one_process_on_the_global_batch(results):
    x, weights = _inputs()
    layer = _layer(nn.BatchNorm1d)
    x.requires_grad_(True)
    out = layer(x)
    # DDP averages parameter gradients over processes: the gradient of the mean of their losses.
    ((out * weights).sum() / WORLD).backward()
    for rank, got in enumerate(results):
        mine = slice(rank * LOCAL, (rank + 1) * LOCAL)
        torch.testing.assert_close(got["out"], out.detach()[mine], rtol=0, atol=1e-12)
        torch.testing.assert_close(got["x_grad"], x.grad[mine] * WORLD, rtol=0, atol=1e-12)
        torch.testing.assert_close(got["weight_grad"], layer.weight.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(got["bias_grad"], layer.bias.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(got["running_mean"], layer.running_mean, rtol=0, atol=1e-12)
        torch.testing.assert_close(got["running_var"], layer.running_var, rtol=0, atol=1e-12)


def test_without_a_process_group_it_is_an_ordinary_batchnorm():
    x, _ = _inputs()
    ours, reference = _layer(GlobalBatchNorm), _layer(nn.BatchNorm1d)
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)
    torch.testing.assert_close(ours.running_var, reference.running_var, rtol=0, atol=0)
    ours.eval(), reference.eval()
    torch.testing.assert_close(ours(x), reference(x), rtol=0, atol=0)


def test_apply_and_revert_keep_parameters_buffers_and_state_dict_keys():
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Sequential(nn.BatchNorm2d(2)))
    weight, keys = model[1].weight, list(model.state_dict())
    converted = GlobalBatchNormSync().apply(model)
    assert isinstance(converted[1], GlobalBatchNorm) and isinstance(converted[2][0], GlobalBatchNorm)
    assert converted[1].weight is weight and list(converted.state_dict()) == keys
    reverted = GlobalBatchNormSync().revert(converted)
    assert type(reverted[1]) is nn.BatchNorm1d and type(reverted[2][0]) is nn.BatchNorm2d
    assert reverted[1].weight is weight and list(reverted.state_dict()) == keys
