"""torch.distributed helpers: process-group queries and an all-gather that carries gradients."""

from __future__ import annotations

import math
import os

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    """Whether a torch.distributed process group is available and initialised.

    Returns:
        True inside a job started with ``init_process_group`` (e.g. Lightning's DDP strategy).
    """
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """Number of processes in the default group.

    Returns:
        The world size, or 1 without an initialised process group.
    """
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """Rank of this process in the default group.

    Returns:
        The rank, or 0 without an initialised process group.
    """
    return dist.get_rank() if is_distributed() else 0


def row_counts(x: Tensor) -> list[int]:
    """Number of rows (size of dim 0) that every process passes, by rank.

    A collective: every process must call it. It also checks that the processes agree on
    everything but the number of rows, so that a mismatch raises the same error on every rank
    instead of leaving some ranks waiting in a collective that the others abandoned.

    Args:
        x: This process's tensor, at least 1-D.

    Returns:
        ``[rows of rank 0, rows of rank 1, ...]``; ``[len(x)]`` without a process group.

    Raises:
        ValueError: If ``x`` is 0-D, or the processes' tensors differ beyond dim 0.
    """
    if x.dim() == 0:
        raise ValueError("gathering needs a tensor with at least one dimension, got a scalar")
    if not is_distributed():
        return [x.shape[0]]
    summary = torch.tensor([x.dim(), x.shape[0], math.prod(x.shape[1:])], device=x.device)
    summaries = [torch.empty_like(summary) for _ in range(dist.get_world_size())]
    dist.all_gather(summaries, summary)
    found = [tuple(s.tolist()) for s in summaries]
    if len({(ndim, row_size) for ndim, _, row_size in found}) > 1:
        raise ValueError(
            "gather_with_grad needs tensors that differ only in dim 0 on every process, got "
            f"(ndim, rows, values per row) = {found} by rank"
        )
    return [rows for _, rows, _ in found]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward routes every rank's gradient to the slice's owner."""

    @staticmethod
    def forward(ctx, x: Tensor, counts: list[int]) -> Tensor:
        """Concatenate every rank's ``x`` along dim 0, in rank order."""
        me = dist.get_rank()
        ctx.start, ctx.stop = sum(counts[:me]), sum(counts[: me + 1])
        # all_gather moves equal shapes only: pad to the longest, then trim each part.
        longest = max(counts)
        padded = x
        if x.shape[0] < longest:
            padded = torch.cat([x, x.new_zeros(longest - x.shape[0], *x.shape[1:])])
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:rows] for part, rows in zip(parts, counts)])

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:
        """Sum the gradient over ranks and return this rank's rows."""
        # Every rank used our rows in its own loss, so their gradient is the sum of all ranks'
        # gradients with respect to them. No division by the world size here: DDP divides the
        # parameter gradients by it afterwards, which turns this gradient of the *sum* of the
        # per-rank losses into that of their *mean*, i.e. the global-batch loss.
        grad = grad_output.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def gather_with_grad(x: Tensor, *, counts: list[int] | None = None) -> Tensor:
    """All-gather ``x`` from every process along dim 0, ordered by rank, keeping gradients.

    ``torch.distributed.all_gather`` returns tensors cut off from the autograd graph; here the
    backward pass sums the incoming gradient over all processes and hands each process the rows
    that came from its own ``x``. Each process therefore receives the gradient of the **sum** of
    the losses computed by all processes; DistributedDataParallel's averaging over processes
    then gives the gradient of their mean. If every process computes a mean over equally many
    local examples, that mean is the loss of one process on the whole global batch, so training
    matches single-process training exactly.

    A collective: every process must call it, with tensors that may differ in dim 0 only.

    Args:
        x: Local tensor of shape ``(n, ...)``.
        counts: Rows of every rank, as :func:`row_counts` returned them for this ``x``; saves
            that extra collective when the caller needs the counts too.

    Returns:
        Tensor of shape ``(sum(counts), ...)``: rank 0's rows first, then rank 1's, and so on.
        Without an initialised process group (or with one process), ``x`` itself.

    Raises:
        ValueError: If the processes' tensors differ beyond dim 0.
    """
    if not is_distributed() or dist.get_world_size() == 1:
        return x
    if counts is None:
        counts = row_counts(x)
    return _GatherWithGrad.apply(x, counts)


def any_process(flag: bool, device: torch.device | str | None = None) -> bool:
    """Whether ``flag`` is true on at least one process (a collective: every process must call it).

    Lets all processes take the same decision (e.g. to skip an optimiser step) from a condition
    that only some of them observed, so that none waits in a collective the others skipped.

    Args:
        flag: This process's observation.
        device: Device of the tensor exchanged (a CUDA device under the NCCL backend).

    Returns:
        The logical OR of ``flag`` over all processes; ``flag`` itself without a process group.
    """
    if not is_distributed():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def is_main_process() -> bool:
    """Whether this is the global rank-0 process, also before torch.distributed is initialised.

    Read from the process group when there is one, else from what the launcher put in the
    environment: ``RANK`` (torchrun), ``LOCAL_RANK`` and ``NODE_RANK`` (Lightning's own launcher),
    ``SLURM_PROCID`` (srun).

    Returns:
        True for rank 0 and for a process started on its own.
    """
    if is_distributed():
        return dist.get_rank() == 0
    env = os.environ
    if "RANK" in env:
        return int(env["RANK"]) == 0
    # Before SLURM_PROCID: it is also set when SLURM does not start the training processes.
    if "LOCAL_RANK" in env:
        return int(env["LOCAL_RANK"]) == 0 and int(env.get("NODE_RANK", 0) or 0) == 0
    return int(env.get("SLURM_PROCID", 0) or 0) == 0
