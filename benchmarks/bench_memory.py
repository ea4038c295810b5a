"""Benchmark: what reusing freed memory buys a CPU training step, and what it costs in resident memory.

What it measures: SampleCNN (CLMR's full size) training passes (forward + backward, as in
``bench_sample_cnn.py``) in a fresh process per case, the cases taking turns round after round:

- ``glibc default``: every activation above glibc's mmap threshold (at most 32 MiB) is a fresh
  ``mmap``, unmapped when freed: the kernel maps and zeroes it again on every pass;
- ``reuse (library default)``: :func:`clmr_lib.utils.memory.keep_freed_memory` (``--reuse_memory
  true``, what ``pretrain.py`` and ``linear_evaluation.py`` do): no mmap, no trimming;
- ``THP``: glibc's default with torch's transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``): 512x
  fewer page faults, the zeroing remains;
- ``tcmalloc`` / ``jemalloc (no decay)``: the allocators preloaded (``LD_PRELOAD``), where installed
  (Debian: ``libtcmalloc-minimal4``, ``libjemalloc2``).

Each case reports the median seconds of its timed passes (after ``--warmup`` untimed ones, which
fill the allocator's caches) and the peak resident size of its process (``ru_maxrss``).

How to read it: ``speed-up`` is the glibc-default pass time / the case's, and ``memory`` the case's
peak / glibc default's, round by round.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--quick] [--batch 48] [--repeats 3] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import add_common_arguments, machine_header, parse_args, ratios, spread, summary, write_json  # noqa: E402

LIBRARIES = Path("/usr/lib/x86_64-linux-gnu"), Path("/usr/lib/aarch64-linux-gnu"), Path("/usr/lib")


def find_library(name: str) -> str | None:
    """Path of a shared library in the usual Debian folders, or None."""
    for folder in LIBRARIES:
        if (folder / name).exists():
            return str(folder / name)
    return None


def cases() -> dict[str, dict]:
    """``name -> {"mode": child's malloc setting, "env": extra environment}`` of the cases available here."""
    found = {"glibc default": {"mode": "default", "env": {}},
             "reuse (library default)": {"mode": "reuse", "env": {}},
             "THP": {"mode": "default", "env": {"THP_MEM_ALLOC_ENABLE": "1"}}}
    tcmalloc = find_library("libtcmalloc_minimal.so.4")
    if tcmalloc:
        found["tcmalloc"] = {"mode": "default", "env": {"LD_PRELOAD": tcmalloc}}
    jemalloc = find_library("libjemalloc.so.2")
    if jemalloc:
        found["jemalloc (no decay)"] = {"mode": "default", "env": {
            "LD_PRELOAD": jemalloc, "MALLOC_CONF": "dirty_decay_ms:-1,muzzy_decay_ms:-1"}}
    return found


def child(mode: str, batch: int, passes: int, warmup: int, length: int) -> None:
    """In the child process: the passes; prints their median seconds and the peak RSS (GB) as JSON."""
    if mode == "reuse":
        from clmr_lib.utils.memory import keep_freed_memory

        keep_freed_memory()
    import torch

    from bench_sample_cnn import full_size, training_pass

    torch.manual_seed(0)
    model = full_size(length)
    x = 0.1 * torch.randn(batch, length)
    times = []
    for i in range(warmup + passes):
        start = time.perf_counter()
        training_pass(model, x, "fp32")
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(json.dumps({"seconds": statistics.median(times), "peak_gb": peak}))


def run_case(case: dict, args: argparse.Namespace) -> dict:
    """One case in a fresh process."""
    command = [sys.executable, __file__, "--_child", case["mode"], "--batch", str(args.batch), "--passes",
               str(args.passes), "--warmup", str(args.warmup), "--length", str(args.length)]
    env = dict(os.environ, **case["env"])
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"FAIL: {' '.join(command)}\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    """Every case, interleaved over rounds; the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=48, help="waveforms per pass (CLMR: 48 tracks = 96 views)")
    parser.add_argument("--length", type=int, default=59049, help="samples per waveform")
    parser.add_argument("--passes", type=int, default=2, help="timed passes per process")
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (fill the caches)")
    parser.add_argument("--_child", help=argparse.SUPPRESS)
    add_common_arguments(parser, repeats=3)
    args = parse_args(parser, quick={"batch": 2, "passes": 1, "warmup": 1, "repeats": 1})
    if args._child:
        child(args._child, args.batch, args.passes, args.warmup, args.length)
        return
    print(machine_header())
    available = cases()
    print(f"SampleCNN full size, fp32 forward+backward of {args.batch} x {args.length} samples; {args.warmup} "
          f"untimed + {args.passes} timed passes per process; {args.repeats} rounds; cases: {', '.join(available)}")
    figures: dict[str, dict[str, list[float]]] = {name: {"seconds": [], "peak_gb": []} for name in available}
    names = list(available)
    for round_ in range(args.repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            result = run_case(available[name], args)
            for key in figures[name]:
                figures[name][key].append(result[key])
    base = figures["glibc default"]
    header = f"{'case':<26}{'s per pass':>24}{'speed-up':>22}{'peak RSS GB':>24}{'memory':>22}"
    print(f"\nmedian [min-max] of {args.repeats} rounds\n{header}\n" + "-" * len(header))
    results = {}
    for name, values in figures.items():
        speedup = ratios(base["seconds"], values["seconds"])
        memory = ratios(values["peak_gb"], base["peak_gb"])
        print(f"{name:<26}{spread(values['seconds'], 2):>24}{spread(speedup):>22}{spread(values['peak_gb']):>24}"
              f"{spread(memory):>22}")
        results[name] = {"seconds": summary(values["seconds"]), "speedup": summary(speedup),
                         "peak_gb": summary(values["peak_gb"]), "memory_ratio": summary(memory)}
    write_json(args.json, args, results)


if __name__ == "__main__":
    main()
