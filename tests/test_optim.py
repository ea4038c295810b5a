"""Tests for clmr_lib.training.optim: LARS and build_optimizer."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from clmr_lib.training.optim import LARS, build_optimizer


def _step(optimizer, param, grad):
    param.grad = grad.clone()
    optimizer.step()


def _norm(values):
    return math.sqrt(sum(v * v for v in values))


def test_lars_steps_match_hand_computation():
    lr, momentum, wd, eta, eps = 2.0, 0.9, 0.1, 0.001, 1e-8
    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    grad = [0.6, 0.8]
    optimizer = LARS([w], lr=lr, momentum=momentum, weight_decay=wd, trust_coefficient=eta, eps=eps)

    expected_w, v = [3.0, 4.0], [0.0, 0.0]
    for _ in range(3):
        g = [gk + wd * wk for gk, wk in zip(grad, expected_w)]
        trust = eta * _norm(expected_w) / (_norm(g) + eps)
        v = [momentum * vk + lr * trust * gk for vk, gk in zip(v, g)]
        expected_w = [wk - vk for wk, vk in zip(expected_w, v)]
        _step(optimizer, w, torch.tensor([grad], dtype=torch.float64))
        assert w.detach().flatten().tolist() == pytest.approx(expected_w, rel=1e-12)


def test_lars_first_step_literal_values():
    # ||w|| = 5, g = [0.6, 0.8] + 0.1 * w = [0.9, 1.2], ||g|| = 1.5, trust = 0.001 * 5 / 1.5,
    # v = 2 * trust * g = [0.006, 0.008].
    w = torch.tensor([[3.0, 4.0]], dtype=torch.float64, requires_grad=True)
    optimizer = LARS([w], lr=2.0, weight_decay=0.1, eps=0.0)
    _step(optimizer, w, torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    assert w.detach().flatten().tolist() == pytest.approx([2.994, 3.992], rel=1e-12)


def test_one_dimensional_params_get_plain_momentum_sgd():
    bias = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    optimizer = LARS([bias], lr=0.5, momentum=0.9, weight_decay=10.0)
    _step(optimizer, bias, torch.tensor([0.2, 0.4], dtype=torch.float64))
    assert bias.detach().tolist() == pytest.approx([0.9, -2.2], rel=1e-12)
    _step(optimizer, bias, torch.tensor([0.2, 0.4], dtype=torch.float64))
    # v = 0.9 * [0.1, 0.2] + 0.5 * [0.2, 0.4] = [0.19, 0.38]
    assert bias.detach().tolist() == pytest.approx([0.71, -2.58], rel=1e-12)


def test_scalar_params_excluded_too():
    scale = torch.tensor(2.0, requires_grad=True)
    optimizer = LARS([scale], lr=0.5, weight_decay=10.0)
    _step(optimizer, scale, torch.tensor(0.2))
    assert scale.item() == pytest.approx(1.9)


def test_one_dimensional_params_adapted_when_not_excluded():
    bias = torch.tensor([3.0, 4.0], dtype=torch.float64, requires_grad=True)
    optimizer = LARS([bias], lr=2.0, weight_decay=0.1, eps=0.0, exclude_bias_and_norm=False)
    _step(optimizer, bias, torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert bias.detach().tolist() == pytest.approx([2.994, 3.992], rel=1e-12)


def test_norm_layer_and_bias_excluded_in_a_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = LARS(model.parameters(), lr=0.1, momentum=0.0, weight_decay=0.5)
    model(torch.randn(6, 3)).pow(2).sum().backward()
    optimizer.step()
    for name, p in model.named_parameters():
        if p.dim() == 1:  # Linear bias, BatchNorm weight and bias: w - lr * grad exactly
            torch.testing.assert_close(p.detach(), before[name] - 0.1 * p.grad)
        else:
            g = p.grad + 0.5 * before[name]
            trust = 0.001 * before[name].norm() / (g.norm() + 1e-8)
            torch.testing.assert_close(p.detach(), before[name] - 0.1 * trust * g)


def test_zero_weights_use_trust_ratio_one():
    w = torch.zeros(2, 2, requires_grad=True)
    optimizer = LARS([w], lr=0.1, weight_decay=0.0)
    _step(optimizer, w, torch.ones(2, 2))
    torch.testing.assert_close(w.detach(), torch.full((2, 2), -0.1))


def test_lars_rejects_negative_hyperparameters():
    with pytest.raises(ValueError, match="momentum"):
        LARS([torch.zeros(2, requires_grad=True)], lr=0.1, momentum=-0.1)


def test_build_optimizer_adam_default():
    model = nn.Linear(3, 2)
    config = build_optimizer(model, "Adam", 3e-4, 1e-6, batch_size=48, max_epochs=10)
    assert set(config) == {"optimizer"}
    optimizer = config["optimizer"]
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.defaults["lr"] == 3e-4 and optimizer.defaults["weight_decay"] == 1e-6


def test_build_optimizer_lars_with_cosine_schedule_per_epoch():
    model = nn.Linear(3, 2)
    config = build_optimizer(model, "LARS", 3e-4, 1e-6, batch_size=48, max_epochs=10)
    optimizer, schedule = config["optimizer"], config["lr_scheduler"]
    assert isinstance(optimizer, LARS)
    base_lr = 0.3 * 48 / 256
    assert optimizer.param_groups[0]["lr"] == pytest.approx(base_lr)
    assert optimizer.defaults["weight_decay"] == 1e-6
    scheduler = schedule["scheduler"]
    assert isinstance(scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert schedule["interval"] == "epoch" and scheduler.T_max == 10 and scheduler.eta_min == 0
    lrs = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    assert lrs[4] == pytest.approx(base_lr / 2)  # half-way through the cosine
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_build_optimizer_lars_per_step_schedule_and_param_groups():
    params = [{"params": [nn.Parameter(torch.ones(2, 2))]}]
    config = build_optimizer(
        params, "lars", 3e-4, 0.0, batch_size=256, max_epochs=3, steps_per_epoch=5
    )
    assert config["optimizer"].param_groups[0]["lr"] == pytest.approx(0.3)
    assert config["lr_scheduler"]["interval"] == "step"
    assert config["lr_scheduler"]["scheduler"].T_max == 15


def test_build_optimizer_unknown_name():
    with pytest.raises(ValueError, match="Adam, LARS"):
        build_optimizer(nn.Linear(2, 2), "SGD", 0.1, 0.0, batch_size=8, max_epochs=1)


def test_build_optimizer_rejects_bad_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        build_optimizer(nn.Linear(2, 2), "LARS", 0.1, 0.0, batch_size=0, max_epochs=1)


def test_lightning_accepts_the_lars_config(tmp_path):
    lightning = pytest.importorskip("lightning")

    class Tiny(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(3, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return build_optimizer(self, "LARS", 3e-4, 1e-6, batch_size=4, max_epochs=2)

    data = torch.utils.data.TensorDataset(torch.randn(8, 3))
    model = Tiny()
    trainer = lightning.Trainer(
        max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
    )
    trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
    # Two epochs of a two-epoch cosine: the schedule has run out.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
