"""Benchmark: batched CLMR augmentations against a per-example audiomentations chain.

Run: ``.venv/bin/python benchmarks/bench_augmentations.py [--threads 1,2] [--repeats 7]``.

Both sides run on the CPU with the same number of threads (torch and the numpy/scipy
thread pools are set explicitly). Measurements are interleaved (ours, theirs, ours, ...)
and repeated, so a busy machine slows both alike; the median and the range over the
repetitions are printed, per view (one 59,049-sample clip at 22,050 Hz).

The audiomentations chain is the closest one to CLMR's: PolarityInversion,
AddGaussianSNR (40-80 dB, i.e. noise std 0.01-0.0001 of the signal's), Gain (-20 to -1
dB), one of HighPassFilter (200-1200 Hz) / LowPassFilter (2200-4000 Hz) at 24 dB/octave,
a numpy delay (200-450 ms, volume 0.5, averaged) through Lambda, PitchShift (+-7
semitones), and a reverb. CLMR's reverb (sox's, algorithmic) draws a new room for every
example; audiomentations' closest is RoomSimulator (a random room simulated per example, needs
pyroomacoustics: ``pip install -e '.[bench]'``). Its cheaper alternative, ApplyImpulseResponse
(convolution with recorded impulse responses, here synthetic ones), is measured beside it: a user
who has impulse-response files might choose it. Without pyroomacoustics only that one is run.
"""
from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import machine_header, repeat_interleaved, spread  # noqa: E402
from clmr_lib.augmentations import (  # noqa: E402
    Delay,
    Gain,
    HighLowPass,
    Noise,
    PitchShift,
    PolarityInversion,
    Reverb,
    build_augmentations,
)

CLMR_P = {"polarity": 0.8, "noise": 0.01, "gain": 0.3, "filters": 0.8, "delay": 0.3,
          "pitch": 0.6, "reverb": 0.6}
ALL_P = {name: 1.0 for name in CLMR_P}


def music_like(n: int, samples: int, sample_rate: int, seed: int) -> np.ndarray:
    """Random harmonic tones with a little noise, float32 ``(n, samples)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / sample_rate
    out = np.zeros((n, samples), dtype=np.float64)
    for row in out:
        for _ in range(4):
            f0 = rng.uniform(80, 800)
            for harmonic in range(1, 6):
                row += rng.uniform(0, 0.05) / harmonic * np.sin(2 * np.pi * f0 * harmonic * t
                                                                + rng.uniform(0, 2 * np.pi))
        row += 0.01 * rng.standard_normal(samples)
    return out.astype(np.float32)


def numpy_delay(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """torchaudio-augmentations' Delay in numpy: (x + 0.5 * x[n - d]) / 2."""
    offset = int(random.choice(range(200, 500, 50)) * sample_rate / 1000)
    delayed = np.zeros_like(samples)
    delayed[offset:] = samples[:-offset]
    return (samples + 0.5 * delayed) / 2


def synthetic_impulse_responses(folder: Path, sample_rate: int, count: int = 8) -> None:
    """Writes exponentially decaying noise impulse responses (0.3-2 s RT60) as WAV files."""
    import soundfile

    rng = np.random.default_rng(0)
    for i in range(count):
        rt60 = rng.uniform(0.3, 2.0)
        t = np.arange(int(rt60 * sample_rate)) / sample_rate
        ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
        ir = (ir / np.abs(ir).max()).astype(np.float32)
        soundfile.write(folder / f"ir_{i}.wav", ir, sample_rate)


def audiomentations_transforms(p: dict[str, float], sample_rate: int, ir_folder: Path | None):
    """The audiomentations equivalents of CLMR's transforms, in CLMR's order (RoomSimulator without ``ir_folder``)."""
    import audiomentations as am

    if ir_folder is None:
        reverb = am.RoomSimulator(leave_length_unchanged=True, p=p["reverb"])
    else:
        reverb = am.ApplyImpulseResponse(ir_path=str(ir_folder), leave_length_unchanged=True,
                                         p=p["reverb"])
    return {
        "polarity": am.PolarityInversion(p=p["polarity"]),
        "noise": am.AddGaussianSNR(min_snr_db=40.0, max_snr_db=80.0, p=p["noise"]),
        "gain": am.Gain(min_gain_db=-20.0, max_gain_db=-1.0, p=p["gain"]),
        "filters": am.OneOf([
            am.HighPassFilter(min_cutoff_freq=200.0, max_cutoff_freq=1200.0, min_rolloff=24,
                              max_rolloff=24, p=1.0),
            am.LowPassFilter(min_cutoff_freq=2200.0, max_cutoff_freq=4000.0, min_rolloff=24,
                             max_rolloff=24, p=1.0),
        ], p=p["filters"]),
        "delay": am.Lambda(transform=numpy_delay, p=p["delay"]),
        "pitch": am.PitchShift(min_semitones=-7.0, max_semitones=7.0, p=p["pitch"]),
        "reverb": reverb,
    }


def ours_transforms(p: float, sample_rate: int) -> dict[str, torch.nn.Module]:
    """Each of our transforms alone, at probability ``p``."""
    return {
        "polarity": PolarityInversion(p=p),
        "noise": Noise(p=p),
        "gain": Gain(p=p),
        "filters": HighLowPass(sample_rate, p=p),
        "delay": Delay(sample_rate, p=p),
        "pitch": PitchShift(sample_rate, p=p),
        "reverb": Reverb(sample_rate, p=p),
    }


def interleaved(runs: dict[str, tuple], repeats: int) -> dict[str, list[float]]:
    """Milliseconds per view of every ``(callable, views)``, the runs taking turns (after a warm-up round)."""
    times = repeat_interleaved({name: run for name, (run, _) in runs.items()}, repeats)
    return {name: [t * 1000.0 / runs[name][1] for t in values] for name, values in times.items()}


def summary(values: list[float]) -> str:
    """``median [min-max]`` in ms, padded for the tables."""
    return f"{spread(values):>23}"


def main() -> None:
    """Runs the benchmark and prints the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--samples", type=int, default=59049)
    parser.add_argument("--sample-rate", type=int, default=22050)
    parser.add_argument("--am-views", type=int, default=8,
                        help="clips per audiomentations measurement (per-example loop)")
    args = parser.parse_args()

    from threadpoolctl import threadpool_limits

    try:
        import pyroomacoustics  # noqa: F401

        reverb_name = "RoomSimulator, and ApplyImpulseResponse (synthetic IRs) beside it"
    except ImportError:
        reverb_name = "ApplyImpulseResponse (synthetic IRs; pyroomacoustics not installed: pip install -e '.[bench]')"
    sr = args.sample_rate
    batch_np = music_like(args.batch, args.samples, sr, seed=0)
    batch = torch.from_numpy(batch_np)
    print(machine_header())
    print(f"batch {args.batch} x {args.samples} samples at {sr} Hz, repeats {args.repeats}, "
          f"audiomentations reverb: {reverb_name}")

    with tempfile.TemporaryDirectory() as tmp:
        ir_folder = Path(tmp)
        synthetic_impulse_responses(ir_folder, sr)
        # name -> IR folder (None: RoomSimulator)
        reverbs = ({"RoomSimulator": None} if reverb_name.startswith("RoomSimulator") else {}) | {"IR": ir_folder}
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            with threadpool_limits(limits=threads):
                print(f"\n== threads: torch {torch.get_num_threads()}, numpy/scipy pools "
                      f"{threads} ==")
                run_chains(args, batch, batch_np, sr, reverbs)
                run_transforms(args, batch, batch_np, sr, reverbs)


def run_chains(args, batch: torch.Tensor, batch_np: np.ndarray, sr: int, reverbs: dict) -> None:
    """Whole chains, CLMR probabilities and all p = 1, with each audiomentations reverb."""
    import audiomentations as am

    torch.manual_seed(0)
    random.seed(0)
    np.random.seed(0)
    runs = {}
    for label, p in (("CLMR p", CLMR_P), ("all p=1", ALL_P)):
        ours = build_augmentations(sr, **p)
        views = batch_np[: args.am_views]
        runs[f"ours   {label}"] = (lambda ours=ours: ours(batch), args.batch)
        for reverb, ir_folder in reverbs.items():
            theirs = am.Compose(list(audiomentations_transforms(p, sr, ir_folder).values()))
            runs[f"audiom {label}, {reverb}"] = (
                lambda theirs=theirs, views=views: [theirs(v, sample_rate=sr) for v in views],
                len(views),
            )
    with torch.no_grad():
        times = interleaved(runs, args.repeats)
    print("chain (per view, ms)            median [min-max]")
    for name, values in times.items():
        print(f"  {name:28s} {summary(values)}")
    for label in ("CLMR p", "all p=1"):
        for reverb in reverbs:
            theirs = statistics.median(times[f"audiom {label}, {reverb}"])
            ratio = theirs / statistics.median(times[f"ours   {label}"])
            print(f"  speed-up ({label}, audiomentations with {reverb} reverb): {ratio:.1f}x")


def run_transforms(args, batch: torch.Tensor, batch_np: np.ndarray, sr: int, reverbs: dict) -> None:
    """Each transform alone at p = 1 (the reverb against each audiomentations reverb)."""
    ours = ours_transforms(1.0, sr)
    theirs = {reverb: audiomentations_transforms(ALL_P, sr, ir_folder) for reverb, ir_folder in reverbs.items()}
    pairs = [(name, name, next(iter(theirs.values()))[name]) for name in ours if name != "reverb"]
    pairs += [("reverb", {"IR": "reverb/IR"}.get(reverb, "reverb/room"), t["reverb"]) for reverb, t in theirs.items()]
    views = batch_np[: args.am_views]
    print("per transform at p=1 (per view, ms): ours | audiomentations | speed-up")
    for name, label, their in pairs:
        runs = {
            "ours": (lambda t=ours[name]: t(batch), args.batch),
            "theirs": (lambda t=their: [t(v, sample_rate=sr) for v in views], len(views)),
        }
        with torch.no_grad():
            times = interleaved(runs, args.repeats)
        ratio = statistics.median(times["theirs"]) / statistics.median(times["ours"])
        print(f"  {label:11s} {summary(times['ours'])} | {summary(times['theirs'])} | {ratio:6.1f}x")


if __name__ == "__main__":
    main()
