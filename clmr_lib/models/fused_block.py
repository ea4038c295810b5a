"""Training-mode BatchNorm → ReLU → MaxPool of a SampleCNN block in fewer passes over memory.

In training, SampleCNN's middle blocks run BatchNorm with batch statistics, ReLU and a max-pool of
stride ``s`` on full-resolution activations; on a CPU these element-wise passes cost about as much
as the convolutions. Since ReLU and a per-channel affine map with a non-negative scale are
non-decreasing, ``maxpool(relu(a * y + b)) == relu(a * maxpool(y) + b)`` (min-pool where ``a < 0``):
the normalisation and ReLU then run on the pooled, ``s`` times smaller tensor. The backward pass is
written out by hand (BatchNorm's gradient through its batch statistics reduces to per-channel
sums over the pooled tensor), so the full-resolution work is: statistics and pool forward, one
fused multiply-add and one scatter backward. Only the input, the pooled output and ``uint8`` pool
indices are kept for backward (the eager chain keeps three full-size tensors).

The result equals the eager modules' up to float rounding; running statistics are updated as
:class:`torch.nn.BatchNorm1d` does (unbiased variance, ``momentum``).
"""
from __future__ import annotations

import torch
from torch import nn


class _BatchNormReLUMaxPool(torch.autograd.Function):
    """``maxpool(relu(batch_norm(y)))`` with batch statistics; updates the running statistics in place."""

    @staticmethod
    def forward(ctx, y, weight, bias, running_mean, running_var, stride: int, momentum: float, eps: float):
        # Under autocast the convolution gives bfloat16/float16: statistics and the affine map are
        # taken in the parameters' precision (float32), as torch's BatchNorm does; the output and
        # the input gradient keep the input's dtype.
        compute = weight.dtype
        var, mean = torch.var_mean(y.to(compute), dim=(0, 2), unbiased=False)
        count = y.shape[0] * y.shape[2]
        if running_mean is not None:
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_((var * (count / max(count - 1, 1))).to(running_var.dtype), momentum)
        rstd = (var + eps).rsqrt()
        scale = weight * rstd
        pooled_length = y.shape[-1] // stride
        windows = y[..., :pooled_length * stride].unflatten(-1, (pooled_length, stride))
        pooled, index = windows.max(dim=-1)
        negative = (scale < 0).nonzero().flatten()
        if len(negative):  # where the scale is negative, the window's minimum becomes the maximum
            low, low_index = windows[:, negative].min(dim=-1)
            pooled[:, negative], index[:, negative] = low, low_index
        normalised = pooled.to(compute).sub_(mean[:, None]).mul_(rstd[:, None])
        out = torch.relu(torch.addcmul(bias[:, None], normalised, weight[:, None]))
        ctx.save_for_backward(y, normalised, index.to(torch.uint8), mean, rstd, weight, bias)
        ctx.stride = stride
        return out.to(y.dtype)

    @staticmethod
    def backward(ctx, grad_out):
        y, normalised, index, mean, rstd, weight, bias = ctx.saved_tensors
        count = y.shape[0] * y.shape[2]
        grad = grad_out.to(normalised.dtype).masked_fill(
            torch.addcmul(bias[:, None], normalised, weight[:, None]) <= 0, 0)
        grad_bias = grad.sum(dim=(0, 2))
        grad_weight = (grad * normalised).sum(dim=(0, 2))
        scale = weight * rstd
        # Through the batch statistics: grad_y = k1 * y + k0 everywhere (see the module docstring),
        # plus the pooled gradient scattered back to each window's selected position.
        k1 = -scale * rstd * grad_weight / count
        k0 = -scale * grad_bias / count - k1 * mean
        grad_y = torch.addcmul(k0[:, None], y.to(k1.dtype), k1[:, None])
        pooled_length = normalised.shape[-1]
        windows = grad_y[..., :pooled_length * ctx.stride].unflatten(-1, (pooled_length, ctx.stride))
        windows.scatter_add_(-1, index.long().unsqueeze(-1), (grad * scale[:, None]).unsqueeze(-1))
        return grad_y.to(y.dtype), grad_weight, grad_bias, None, None, None, None, None


def batch_norm_relu_max_pool(y: torch.Tensor, norm: nn.BatchNorm1d, stride: int) -> torch.Tensor:
    """``MaxPool1d(stride)(ReLU()(norm(y)))`` for a BatchNorm in training mode, in fewer memory passes.

    Args:
        y: ``(batch, channels, length)`` convolution output.
        norm: The block's BatchNorm (its affine parameters and running statistics are used and updated).
        stride: Pool size and stride.
    """
    if norm.momentum is None:
        raise ValueError("batch_norm_relu_max_pool needs a BatchNorm with a momentum (not cumulative averaging)")
    if norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
    running_mean = norm.running_mean if norm.track_running_stats else None
    running_var = norm.running_var if norm.track_running_stats else None
    return _BatchNormReLUMaxPool.apply(y, norm.weight, norm.bias, running_mean, running_var, int(stride),
                                       float(norm.momentum), float(norm.eps))
