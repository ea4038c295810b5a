"""Fused training-mode BatchNorm/ReLU/MaxPool: same outputs, gradients and running statistics as the eager modules."""
import copy

import pytest
import torch
from torch import nn

from clmr_lib.models import SampleCNN
from clmr_lib.models.fused_block import batch_norm_relu_max_pool
from clmr_lib.training.sync_batchnorm import GlobalBatchNorm


def eager(y, norm, stride):
    return nn.MaxPool1d(stride)(torch.relu(norm(y)))


@pytest.mark.parametrize("stride, length", [(3, 27), (3, 29), (2, 16)])
def test_matches_the_eager_chain_forward_backward_and_running_statistics(stride, length):
    torch.manual_seed(0)
    norm = nn.BatchNorm1d(6)
    with torch.no_grad():  # some negative scales: there the window's minimum is selected
        norm.weight.copy_(torch.tensor([1.5, -0.7, 0.3, -2.0, 1.0, 0.01]))
        norm.bias.copy_(torch.randn(6))
    reference = copy.deepcopy(norm)
    y = torch.randn(4, 6, length, dtype=torch.float64, requires_grad=True)
    norm, reference = norm.double(), reference.double()
    y_ref = y.detach().clone().requires_grad_(True)

    out = batch_norm_relu_max_pool(y, norm, stride)
    expected = eager(y_ref, reference, stride)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected)

    upstream = torch.randn_like(out)
    (out * upstream).sum().backward()
    (expected * upstream).sum().backward()
    torch.testing.assert_close(y.grad, y_ref.grad)
    torch.testing.assert_close(norm.weight.grad, reference.weight.grad)
    torch.testing.assert_close(norm.bias.grad, reference.bias.grad)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)
    assert norm.num_batches_tracked == reference.num_batches_tracked == 1


def test_gradcheck():
    torch.manual_seed(1)
    norm = nn.BatchNorm1d(3).double()
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.8, -1.2, 0.5], dtype=torch.float64))
    y = torch.randn(2, 3, 12, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: batch_norm_relu_max_pool(t, norm, 3), (y,))


def test_sample_cnn_training_step_is_the_same_fused_or_not():
    torch.manual_seed(2)
    fused = SampleCNN(channels=[8, 8, 16, 16, 32], strides=[3, 3, 3], audio_length=243)
    plain = copy.deepcopy(fused)
    plain.fused = False
    x = torch.randn(5, 243)
    fused(x).pow(2).sum().backward()
    plain(x).pow(2).sum().backward()
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
    for (name, a), b in zip(fused.named_buffers(), plain.buffers()):
        torch.testing.assert_close(a, b, msg=name)


def test_a_synchronised_batch_norm_is_never_fused(monkeypatch):
    model = SampleCNN(channels=[8, 8, 16, 16], strides=[3, 3], audio_length=81)
    for block in model.sequential:
        old = block[1]
        block[1] = GlobalBatchNorm(old.num_features)
    monkeypatch.setattr("clmr_lib.models.sample_cnn.batch_norm_relu_max_pool",
                        lambda *a, **k: pytest.fail("GlobalBatchNorm went through the fused path"))
    model(torch.randn(3, 81)).sum().backward()


def test_bf16_autocast_matches_the_eager_chain():
    torch.manual_seed(3)
    fused = SampleCNN(channels=[8, 8, 16, 16, 32], strides=[3, 3, 3], audio_length=243)
    plain = copy.deepcopy(fused)
    plain.fused = False
    x = torch.randn(6, 243)
    outputs = []
    for model in (fused, plain):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
        assert out.dtype == torch.bfloat16
        out.float().pow(2).sum().backward()
        outputs.append(out.float())
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0.05, atol=0.05)
    for (name, a), b in zip(fused.named_buffers(), plain.buffers()):
        assert a.dtype == b.dtype, name
        torch.testing.assert_close(a.float(), b.float(), rtol=0.02, atol=0.02, msg=name)
    for (name, a), b in zip(fused.named_parameters(), plain.parameters()):
        assert a.grad.dtype == torch.float32, name
        cosine = torch.nn.functional.cosine_similarity(a.grad.flatten(), b.grad.flatten(), dim=0)
        assert cosine > 0.99, name
