"""Benchmark: SampleCNN forward+backward GFLOP/s against this machine's matrix-multiply peak, measured in one run.

What it measures: one training pass (forward, backward of a scalar loss, no optimiser) of CLMR's
full-size SampleCNN (``config/config.yaml``: 59,049 samples, 11 blocks of 128-512 channels) on a
batch of random waveforms: ``eager`` in float32, ``eager bf16`` under bf16 autocast (``--precision
bf16-mixed``) and, with ``--compile``, ``torch.compile`` of the same model. As in training, freed
memory is kept for reuse (:func:`clmr_lib.utils.memory.keep_freed_memory`; ``--reuse_memory
false`` measures glibc's default, which maps and zeroes every large activation again each pass).

Alongside, in the same interleaved rounds, the machine's matrix-multiply peak for the same threads,
measured two ways, because they differ by 2x on some CPUs: ``torch.mm`` of square matrices
(``--matmul_size``; MKL's GEMM) and the same product as a 1x1 convolution (oneDNN's GEMM, the
library SampleCNN's convolutions run on). The higher of the two, round by round, is the peak.

FLOPs are the convolutions' multiply-adds (2 FLOPs each), counted from the layer shapes: forward,
plus input and weight gradients backward (the first layer has no input gradient). BatchNorm, ReLU,
pooling and the mean are not counted: time spent in them lowers the figure, as it should.

How to read it: ``GFLOP/s`` is ``median [min-max]`` over ``--repeats`` interleaved rounds; ``% of
peak`` divides each round's figure by the higher fp32 matmul figure of the same round (bf16 rows:
by the fp32 peak too, and by the bf16 peak in the last column), so both saw the same load.

Run: ``.venv/bin/python benchmarks/bench_sample_cnn.py [--quick] [--batch 16] [--repeats 5] [--threads N]
[--compile] [--reuse_memory false] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import copy
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (add_common_arguments, machine_header, median, parse_args, ratios, repeat_interleaved,  # noqa: E402
                     set_threads, spread, summary, write_json)
from clmr_lib.config import load_config  # noqa: E402
from clmr_lib.models import SampleCNN  # noqa: E402
from clmr_lib.utils.memory import keep_freed_memory  # noqa: E402

FULL_SIZE = load_config()


def conv_flops(model: SampleCNN, batch: int, length: int) -> tuple[float, float]:
    """(forward, forward+backward) convolution FLOPs of ``batch`` waveforms of ``length`` samples."""
    shapes: list[tuple[nn.Conv1d, int]] = []
    hooks = [conv.register_forward_hook(lambda m, _, out: shapes.append((m, out.shape[-1])))
             for conv in model.modules() if isinstance(conv, nn.Conv1d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, length))
    for hook in hooks:
        hook.remove()
    per_layer = [2.0 * batch * m.out_channels * frames * m.in_channels // m.groups * m.kernel_size[0]
                 for m, frames in shapes]
    forward = sum(per_layer)
    # Backward: a weight gradient per layer and an input gradient for all but the first.
    return forward, forward + forward + (forward - per_layer[0])


def full_size(length: int) -> SampleCNN:
    """CLMR's SampleCNN in training mode."""
    return SampleCNN(channels=FULL_SIZE["sample_cnn_channels"], strides=FULL_SIZE["sample_cnn_strides"],
                     sample_rate=int(FULL_SIZE["sample_rate"]), audio_length=length).train()


def training_pass(model: nn.Module, x: torch.Tensor, precision: str) -> None:
    """Forward, then backward of the mean representation (gradients cleared first)."""
    for p in model.parameters():
        p.grad = None
    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with context:
        out = model(x)
    out.float().square().mean().backward()


def matmul(size: int, dtype: torch.dtype, calls: int, as_convolution: bool):
    """A callable doing ``calls`` square matrix products of ``size`` (and its FLOPs).

    ``as_convolution``: the product as a 1x1 convolution of ``(1, size, size)`` by ``(size, size, 1)``.
    """
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(dtype)
    b = torch.randn(size, size, generator=generator).to(dtype)
    out = torch.empty(size, size, dtype=dtype)
    signal, kernel = b.unsqueeze(0), a.unsqueeze(-1)

    def run():
        for _ in range(calls):
            if as_convolution:
                torch.nn.functional.conv1d(signal, kernel)
            else:
                torch.mm(a, b, out=out)
    return run, 2.0 * size ** 3 * calls


def main() -> None:
    """Measure every variant and the matmul peaks, interleaved; print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=16, help="waveforms per pass")
    parser.add_argument("--length", type=int, default=int(FULL_SIZE["audio_length"]), help="samples per waveform")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--matmul_size", type=int, default=2048, help="side of the square matrices of the peak")
    parser.add_argument("--matmul_calls", type=int, default=8, help="products per timed matmul call")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile of the eager model")
    parser.add_argument("--reuse_memory", default="true", choices=["true", "false"],
                        help="keep freed memory for reuse, as training does (false: glibc's default)")
    add_common_arguments(parser)
    args = parse_args(parser, quick={"batch": 2, "matmul_size": 256, "matmul_calls": 2, "repeats": 2})
    threads = set_threads(args.threads)
    reused = keep_freed_memory() if args.reuse_memory == "true" else False
    print(machine_header(reuse_memory=reused))
    torch.manual_seed(0)
    x = 0.1 * torch.randn(args.batch, args.length)
    eager = full_size(args.length)
    forward_flops, flops = conv_flops(eager, args.batch, args.length)
    print(f"SampleCNN {FULL_SIZE['sample_cnn_channels'][0]}-{max(FULL_SIZE['sample_cnn_channels'])} channels, "
          f"batch {args.batch} x {args.length} samples, torch threads {threads}; convolution FLOPs per pass: "
          f"{forward_flops / 1e9:.1f} G forward, {flops / 1e9:.1f} G forward+backward")
    variants = {"eager": (eager, "fp32"), "eager bf16": (eager, "bf16")}
    if args.compile:
        compiled = torch.compile(copy.deepcopy(eager))
        print("compiling (the first passes are untimed)...")
        for _ in range(2):
            training_pass(compiled, x, "fp32")
        variants["compiled"] = (compiled, "fp32")
    cases = {name: (lambda m=m, p=p: training_pass(m, x, p)) for name, (m, p) in variants.items()}
    work = {name: flops for name in variants}
    for dtype, label in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        for as_convolution, how in ((False, "mm"), (True, "1x1 conv")):
            name = f"{how} {label}"
            cases[name], work[name] = matmul(args.matmul_size, dtype, args.matmul_calls, as_convolution)
    times = repeat_interleaved(cases, args.repeats)
    gflops = {name: [work[name] / t / 1e9 for t in values] for name, values in times.items()}
    peak = {label: [max(a, b) for a, b in zip(gflops[f"mm {label}"], gflops[f"1x1 conv {label}"])]
            for label in ("fp32", "bf16")}

    print(f"\nmedian [min-max] of {args.repeats} interleaved rounds; peak = the faster matmul of each round")
    header = (f"{'case':<14}{'s per call':>22}{'GFLOP/s':>24}{'% of fp32 peak':>22}{'% of bf16 peak':>22}"
              f"{'speed-up':>20}")
    print(header + "\n" + "-" * len(header))
    results = {"conv_gflop_per_pass": flops / 1e9, "batch": args.batch, "threads": threads, "reuse_memory": reused,
               "peak_gflops": {label: summary(values) for label, values in peak.items()}}
    for name, values in times.items():
        percent = {label: [100 * g / p for g, p in zip(gflops[name], peak[label])] for label in peak}
        speedup = ratios(times["eager"], values) if name in variants else None
        bf16 = spread(percent["bf16"], 1) if "bf16" in name else ""
        print(f"{name:<14}{spread(values, 3):>22}{spread(gflops[name], 1):>24}{spread(percent['fp32'], 1):>22}"
              f"{bf16:>22}{spread(speedup) if speedup else '':>20}")
        results[name] = {"seconds": summary(values), "gflops": summary(gflops[name]),
                         "percent_of_fp32_peak": summary(percent["fp32"]),
                         "percent_of_bf16_peak": summary(percent["bf16"])}
        if speedup:
            results[name]["speedup_over_eager"] = summary(speedup)
    figure = median(results["eager"]["percent_of_fp32_peak"]["values"])
    print(f"\nSampleCNN fp32 forward+backward: {figure:.0f} % of the fp32 matmul peak "
          f"({median(peak['fp32']):.0f} GFLOP/s; target: at least 40 %); bf16: "
          f"{median(results['eager bf16']['gflops']['values']):.0f} GFLOP/s, "
          f"{median(results['eager bf16']['speedup_over_eager']['values']):.2f}x the fp32 pass")
    write_json(args.json, args, results)


if __name__ == "__main__":
    main()
