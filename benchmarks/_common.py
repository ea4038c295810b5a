"""Shared by the benchmarks: machine header, interleaved repeated timing, median/spread, --quick and --json.

Every benchmark prints figures measured in one run on this machine: the cases it compares are
timed in turn, round after round (:func:`repeat_interleaved`), so a load that drifts during the
run slows them alike, and each figure is printed as ``median [min-max]`` over the rounds.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Callable, Hashable, Mapping, Optional, Sequence

import numpy as np
import torch

from clmr_lib.utils.atomic import atomic_write_bytes


def cpu_name() -> str:
    """Model name of the CPU, from /proc/cpuinfo where available."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine(**extra) -> dict:
    """What the figures were measured on: CPU, cores, torch and its threads, load, date; plus ``extra``."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "date": datetime.datetime.now().isoformat(timespec="seconds"),
            **extra}


def machine_header(**extra) -> str:
    """One line describing :func:`machine`, to print before any figure (``extra`` as ``key value``)."""
    info = machine()
    line = (f"machine: {info['cpu']}, {info['cores']} cores; torch {info['torch']}, threads {info['threads']}; "
            f"load average {info['load_average']:.2f}; {info['date']}")
    return line + "".join(f"; {key.replace('_', ' ')} {value}" for key, value in extra.items())


def timed(function: Callable[[], object]) -> float:
    """Seconds taken by one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def repeat_interleaved(cases: Mapping[Hashable, Callable[[], object]], repeats: int,
                       warmup: int = 1) -> dict[Hashable, list[float]]:
    """Seconds of every call of every case, the cases taking turns.

    Each round calls every case once, starting one case later than the round before, so that
    no case always runs first or right after the same neighbour, and a load that drifts during
    the run hits all cases alike. ``warmup`` untimed rounds come first (allocator, caches, lazy
    imports); pass 0 when a call is expensive and starts from scratch anyway.

    Args:
        cases: ``name -> callable`` taking no argument.
        repeats: Timed rounds.
        warmup: Untimed rounds before them.

    Returns:
        ``name -> [seconds of round 1, round 2, ...]``.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    times: dict[Hashable, list[float]] = {name: [] for name in names}
    for round_ in range(repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(timed(cases[name]))
    return times


def median(values: Sequence[float]) -> float:
    """Median of ``values``."""
    return float(statistics.median(values))


def rates(seconds: Sequence[float], amount: float) -> list[float]:
    """``amount`` per second in each round (e.g. clips/s from the seconds a batch took)."""
    return [amount / s for s in seconds]


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Round-by-round ratios of two interleaved cases (each pair ran under the same load)."""
    return [a / b for a, b in zip(numerators, denominators)]


def spread(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """``median [min-max]`` of ``values`` times ``scale``."""
    scaled = [v * scale for v in values]
    return f"{median(scaled):.{digits}f} [{min(scaled):.{digits}f}-{max(scaled):.{digits}f}]"


def summary(values: Sequence[float], scale: float = 1.0) -> dict:
    """Median, min, max and every value (times ``scale``), for the JSON output."""
    scaled = [float(v) * scale for v in values]
    return {"median": median(scaled), "min": min(scaled), "max": max(scaled), "values": scaled}


def add_common_arguments(parser: argparse.ArgumentParser, repeats: int = 5) -> None:
    """``--quick``, ``--repeats`` and ``--json``, the options every benchmark has."""
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and repeats: checks that the script runs; its figures mean nothing")
    parser.add_argument("--repeats", type=int, default=repeats, help="interleaved rounds (median and spread printed)")
    parser.add_argument("--json", metavar="PATH", help="also write the figures, settings and machine to this file")


def parse_args(parser: argparse.ArgumentParser, quick: Mapping[str, object],
               argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse the command line; with ``--quick``, options left at their default take the values of ``quick``."""
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def set_threads(threads: Optional[int]) -> int:
    """Set torch's intra-op threads (``None``: keep torch's default) and return the number in use."""
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def write_json(path: Optional[str], args: argparse.Namespace, results: dict, **machine_extra) -> None:
    """Write ``results`` with the settings and the machine to ``path`` (atomically); nothing when ``path`` is None."""
    if not path:
        return
    payload = {"script": os.path.basename(sys.argv[0]), "command": sys.argv, "machine": machine(**machine_extra),
               "settings": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "results": results}
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write_bytes(json.dumps(payload, indent=2, default=str).encode("utf-8"), path)
    print(f"figures written to {path}")


def music_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Stereo test audio with some structure (notes, noise bursts, quiet passages), float32 ``(frames, 2)``."""
    rng = np.random.default_rng(seed)
    frames = int(seconds * sample_rate)
    time_axis = np.arange(frames) / sample_rate
    audio = np.zeros(frames)
    for start in np.arange(0, seconds, 0.25):
        note = (time_axis >= start) & (time_axis < start + 0.5)
        audio[note] += 0.2 * np.sin(2 * np.pi * rng.uniform(80, 1500) * time_axis[note]) * np.exp(
            -3 * (time_axis[note] - start))
    audio += 0.02 * rng.standard_normal(frames) * (1 + np.sin(2 * np.pi * 0.1 * time_axis))
    return np.stack([audio, np.roll(audio, 441)], axis=1).astype(np.float32)
