"""BatchNorm over the global batch on any device and backend (torch's SyncBatchNorm needs GPUs)."""
from __future__ import annotations

import torch
from lightning.pytorch.plugins.layer_sync import LayerSync
from torch import nn

from clmr_lib.utils import dist


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the batches of all processes together.

    In training mode under torch.distributed, every process computes the count, mean and sum of
    squared deviations of its batch, all processes exchange them (one all-gather of
    ``2 × channels + 1`` numbers, with gradients), and each normalises with the combined mean and
    (biased) variance, as one process holding the global batch would; the running statistics are
    updated with the unbiased global variance. The gradient of the exchange is summed over
    processes (:func:`clmr_lib.utils.dist.gather_with_grad`), the convention under which DDP's
    averaging gives the gradient of the global-batch loss. Outside training or without a process
    group it is an ordinary BatchNorm.

    Same parameters and buffers as ``nn.BatchNorm1d/2d/3d``: state dicts are interchangeable. It
    does what ``torch.nn.SyncBatchNorm`` does, which refuses CPU tensors (gloo).
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (batch, channels, ...) input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        world = dist.world_size()
        if not (self.training and world > 1):
            return super().forward(input)
        self._check_input_dim(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        # Statistics of half-precision activations are taken in float32, as torch's BatchNorm does.
        x = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        count = x.numel() // channels
        mean = x.mean(dims)
        squares = (x - mean.view(shape)).pow(2).sum(dims)
        mine = torch.cat([mean.new_full((1,), float(count)), mean, squares]).unsqueeze(0)
        rows = dist.gather_with_grad(mine, counts=[1] * world)
        counts, means, all_squares = rows[:, :1], rows[:, 1:channels + 1], rows[:, channels + 1:]
        total = counts.sum()
        # Chan et al.'s parallel variance: exact combination of the per-process statistics.
        global_mean = (counts * means).sum(0) / total
        global_var = (all_squares.sum(0) + (counts * (means - global_mean).pow(2)).sum(0)) / total
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = global_var * (total / (total - 1)).clamp(min=0) if total > 1 else global_var
                self.running_mean.mul_(1 - factor).add_(global_mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.detach(), alpha=factor)
        out = (x - global_mean.view(shape)) * torch.rsqrt(global_var.view(shape) + self.eps)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        return out.to(input.dtype)


def _swap(module: nn.Module, make) -> nn.Module:
    converted = make(module)
    for name, child in module.named_children():
        converted.add_module(name, _swap(child, make))
    return converted


def _to_global(module: nn.Module) -> nn.Module:
    if not isinstance(module, nn.modules.batchnorm._BatchNorm) or isinstance(module, GlobalBatchNorm):
        return module
    converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                module.track_running_stats)
    # The same parameter and buffer objects: optimisers and state dicts see no difference.
    if module.affine:
        converted.weight, converted.bias = module.weight, module.bias
    converted.running_mean, converted.running_var = module.running_mean, module.running_var
    converted.num_batches_tracked = module.num_batches_tracked
    converted.train(module.training)
    converted._original_class = type(module)
    return converted


def _to_original(module: nn.Module) -> nn.Module:
    if not isinstance(module, GlobalBatchNorm):
        return module
    original = getattr(module, "_original_class", nn.BatchNorm1d)(
        module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
    if module.affine:
        original.weight, original.bias = module.weight, module.bias
    original.running_mean, original.running_var = module.running_mean, module.running_var
    original.num_batches_tracked = module.num_batches_tracked
    original.train(module.training)
    return original


class GlobalBatchNormSync(LayerSync):
    """Lightning plugin turning every BatchNorm into :class:`GlobalBatchNorm` while a DDP run trains.

    Lightning's ``sync_batchnorm=True`` uses ``torch.nn.SyncBatchNorm``, which only runs on GPUs;
    this plugin does the same on CPUs (gloo). ``revert`` restores the original classes.
    """

    def apply(self, model: nn.Module) -> nn.Module:
        return _swap(model, _to_global)

    def revert(self, model: nn.Module) -> nn.Module:
        return _swap(model, _to_original)
