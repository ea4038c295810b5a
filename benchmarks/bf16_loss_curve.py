"""Check: bf16-mixed pretraining's loss curve tracks fp32's, and what bf16 saves per step.

What it runs: the same short CLMR pretraining (``--steps`` steps, the demo's layout and settings
from ``config/demo.yaml``, the embedded synthetic data) through ``pretrain.py`` as a user runs it,
three times: ``--precision 32-true``, ``--precision bf16-mixed`` with the same seed (same weights at
step 0, same batches, crops and augmentations), and a control: 32-true with another seed. The
control measures how far two fp32 runs of the same recipe drift apart anyway; bf16 passes when it
stays as close to fp32 as that. Losses are read from each run's CSV log (``log_every_n_steps 1``);
the seconds of each step from the wall times of its TensorBoard log. Then ``--repeats`` pairs of
short timing runs (``--timing_steps``; fp32 and bf16 in alternating order) give the per-step
speed-up with its spread. Validation and periodic checkpoints are switched off: they would only
add the same time to both.

How to read it: the window table is the mean loss of each block of ``--window`` steps. Curves are
compared smoothed (trailing mean over ``--window`` steps), after ``--warmup`` steps. PASS needs
(1) every run's smoothed loss to fall by more than the limit below from the first full window to
the last (two flat curves would track each other trivially), and (2) the largest gap between the
smoothed bf16 and fp32 curves after warm-up to stay within the limit: ``--factor`` times the gap
between fp32 and the control (at least 0.02 nats), or ``--tolerance`` nats with
``--no_control``. The step-time figures are ``median [min-max]`` over the timing pairs; ``bf16
speed-up`` is fp32 step time / bf16 step time, pair by pair. The plot and the figures are saved as
PNG and JSON (``--json``; default ``runs/benchmarks/bf16_loss_curve.json``).

Run: ``.venv/bin/python benchmarks/bf16_loss_curve.py [--quick] [--steps 600] [--repeats 3] [--threads N]
[-- PRETRAIN FLAGS]`` (flags after ``--`` go to every ``pretrain.py`` run, e.g. ``-- --batch_size 48``).
"""
from __future__ import annotations

import argparse
import csv
import glob
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import (add_common_arguments, machine_header, parse_args, ratios, set_threads, spread, summary,
                     write_json)
from clmr_lib.config import load_config
from clmr_lib.data.labelled_folder import dataset_root
from clmr_lib.data.synthetic import SYNTHETIC_DEFAULTS, generate_synthetic

REPO = Path(__file__).resolve().parents[1]
PRECISIONS = {"fp32": "32-true", "bf16": "bf16-mixed"}
#: Smallest limit on the bf16-fp32 gap (nats) when the control's gap sets it: two runs that
#: happen to stay very close must not make ordinary rounding differences fail the check.
MIN_LIMIT = 0.02
#: Steps left out at the start of a run when timing it (data loader start, oneDNN kernel creation).
TIMING_SKIP = 5

#: Overrides of every run: per-step logs, no validation, no periodic checkpoints, no progress bar.
RUN_FLAGS = ["--log_every_n_steps", "1", "--check_val_every_n_epoch", "1000000", "--checkpoint_every_n_steps",
             "1000000", "--checkpoint_every_n_epochs", "0", "--progress", "false"]
#: The quick check's tiny data and batches.
QUICK_DATA = {"num_pieces": 24, "seconds": 2.0, "workers": 1}
QUICK_FLAGS = ["--batch_size", "8", "--workers", "0"]


def prepare_data(dataset_dir: str, config: dict, overrides: dict) -> str:
    """Generate the synthetic dataset under ``dataset_dir`` unless it is there; returns its folder.

    Generating it here, not in the first run, keeps the generation out of that run's time.
    """
    root = dataset_root(dataset_dir, "synthetic", "dataset.json")
    if not os.path.exists(os.path.join(root, "dataset.json")):
        options = {key: config[f"synthetic_{key}"] for key in SYNTHETIC_DEFAULTS}
        options.update(overrides)
        print(f"generating the synthetic dataset in {root} ({options['num_pieces']} pieces)")
        generate_synthetic(root, progress=False, **options)
    return root


def pretrain(name: str, precision: str, seed: int, steps: int, settings: dict) -> dict:
    """Run ``pretrain.py`` to ``steps`` steps; returns its losses, step wall times and total seconds."""
    command = [sys.executable, str(REPO / "pretrain.py"), "--config", settings["config"], "--dataset", "synthetic",
               "--dataset_dir", settings["dataset_dir"], "--log_dir", settings["log_dir"], "--run_name", name,
               "--precision", precision, "--seed", str(seed), "--max_steps", str(steps), *RUN_FLAGS,
               *settings["flags"]]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if settings["threads"]:
        env["OMP_NUM_THREADS"] = str(settings["threads"])
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        tail = "\n".join(done.stderr.strip().splitlines()[-12:])
        sys.exit(f"FAIL: run {name} (--precision {precision}) stopped with exit status {done.returncode}\n"
                 f"command: {' '.join(command)}\nend of its stderr:\n{tail}")
    run_dir = Path(settings["log_dir"]) / name
    steps_logged, losses = read_losses(run_dir)
    if len(losses) < steps:
        print(f"warning: run {name} logged {len(losses)} of {steps} steps (raise --max_epochs after --)")
    return {"steps": steps_logged, "loss": losses, "wall_times": read_step_times(run_dir), "seconds": seconds}


def read_losses(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Steps and training losses from the run's CSV log."""
    path = sorted(glob.glob(str(run_dir / "csv" / "version_*" / "metrics.csv")))[-1]
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("train/loss")]
    return np.array([int(row["step"]) for row in rows]), np.array([float(row["train/loss"]) for row in rows])


def read_step_times(run_dir: Path) -> np.ndarray:
    """Wall-clock time at which each step's loss was logged, from the TensorBoard event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = sorted(glob.glob(str(run_dir / "tensorboard" / "version_*")))[-1]
    events = EventAccumulator(folder, size_guidance={"scalars": 0})
    events.Reload()
    return np.array([event.wall_time for event in events.Scalars("train/loss")])


def step_seconds(run: dict) -> float:
    """Median seconds per step, leaving out the first steps of the run."""
    durations = np.diff(run["wall_times"])
    return float(np.median(durations[min(TIMING_SKIP, len(durations) - 1):]))


def smooth(loss: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps; the first ``window - 1`` steps are NaN (no full window yet)."""
    out = np.full(len(loss), np.nan)
    if len(loss) >= window:
        out[window - 1:] = np.convolve(loss, np.ones(window) / window, mode="valid")
    return out


def compare(runs: dict, window: int, warmup: int, factor: float, tolerance: float) -> dict:
    """Gaps between the smoothed curves, how much each fell, the limit and the verdict."""
    curves = {name: smooth(run["loss"], window) for name, run in runs.items()}
    start = max(warmup, window - 1)
    after = slice(start, min(len(c) for c in curves.values()))

    def gap(a: str, b: str) -> float:
        return float(np.nanmax(np.abs(curves[a][after] - curves[b][after])))

    figures = {"bf16_gap": gap("bf16", "fp32"), "compared_from_step": start, "smoothed": curves}
    if "control" in runs:
        figures["control_gap"] = gap("control", "fp32")
        figures["limit"] = max(factor * figures["control_gap"], MIN_LIMIT)
        figures["limit_rule"] = f"max({factor:g} x control gap, {MIN_LIMIT:g})"
    else:
        figures["limit"], figures["limit_rule"] = tolerance, "--tolerance"
    figures["decrease"] = {name: float(c[window - 1] - c[-1]) for name, c in curves.items()}
    figures["final"] = {name: float(c[-1]) for name, c in curves.items()}
    checks = {f"{name} loss falls by more than the limit": drop > figures["limit"]
              for name, drop in figures["decrease"].items()}
    checks["bf16 gap within the limit"] = figures["bf16_gap"] <= figures["limit"]
    figures["checks"] = checks
    figures["passed"] = all(checks.values())
    return figures


def print_windows(runs: dict, window: int) -> None:
    """Mean loss of each block of ``window`` steps, side by side."""
    names = list(runs)
    header = f"{'steps':>11}" + "".join(f"{name:>10}" for name in names) + f"{'bf16-fp32':>11}"
    print(header + "\n" + "-" * len(header))
    length = min(len(run["loss"]) for run in runs.values())
    for first in range(0, length, window):
        means = {name: float(np.mean(run["loss"][first:first + window])) for name, run in runs.items()}
        last = min(first + window, length) - 1
        print(f"{first:>5}-{last:<5}" + "".join(f"{means[name]:>10.4f}" for name in names)
              + f"{means['bf16'] - means['fp32']:>+11.4f}")


def plot(runs: dict, figures: dict, path: str, title: str) -> None:
    """Raw (faint) and smoothed curves of every run, the warm-up boundary, the verdict in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {"fp32": ("tab:blue", "-"), "bf16": ("tab:orange", "-"), "control": ("tab:gray", "--")}
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, run in runs.items():
        color, line = styles[name]
        ax.plot(run["steps"], run["loss"], color=color, alpha=0.25, linewidth=0.8)
        ax.plot(run["steps"], figures["smoothed"][name], color=color, linestyle=line, linewidth=2, label=name)
    ax.axvline(figures["compared_from_step"], color="black", linewidth=0.8, linestyle=":", label="compared from")
    ax.set_xlabel("step")
    ax.set_ylabel("NT-Xent loss (train)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"plot written to {path}")


def timing_pairs(settings: dict, seed: int, steps: int, repeats: int) -> dict:
    """``repeats`` short fp32 and bf16 runs, alternating which goes first; seconds per step of each run."""
    times = {"fp32": [], "bf16": []}
    for round_ in range(repeats):
        for name in ("fp32", "bf16") if round_ % 2 == 0 else ("bf16", "fp32"):
            run = pretrain(f"timing_{name}_{round_}", PRECISIONS[name], seed, steps, settings)
            times[name].append(step_seconds(run))
    return times


def report_curves(runs: dict, figures: dict, args: argparse.Namespace) -> None:
    """The window table and the comparison of the smoothed curves."""
    control = "" if "control" not in runs else f" (control: fp32, seed {args.seed + 1})"
    print(f"mean training loss per {args.window} steps{control}")
    print_windows(runs, args.window)
    print(f"\nsmoothed over {args.window} steps, compared from step {figures['compared_from_step']}:")
    for name in runs:
        print(f"  {name:<8} falls {figures['decrease'][name]:.4f} (from the first full window to the last), "
              f"final {figures['final'][name]:.4f}")
    print(f"  largest gap bf16-fp32 {figures['bf16_gap']:.4f}"
          + (f", control-fp32 {figures['control_gap']:.4f}" if "control_gap" in figures else "")
          + f"; limit {figures['limit']:.4f} ({figures['limit_rule']})")
    print(f"  final bf16 - fp32: {figures['final']['bf16'] - figures['final']['fp32']:+.4f}")


def report_timing(runs: dict, timing: dict | None, args: argparse.Namespace) -> dict:
    """Wall time and step time of the compared runs, the speed-up of the timing pairs; their figures."""
    wall = {name: runs[name]["seconds"] for name in PRECISIONS}
    step = {name: step_seconds(runs[name]) for name in PRECISIONS}
    print(f"\ncompared runs: wall time fp32 {wall['fp32']:.1f} s, bf16 {wall['bf16']:.1f} s (ratio "
          f"{wall['fp32'] / wall['bf16']:.2f}, start-up included); median step fp32 {step['fp32'] * 1e3:.0f} ms, "
          f"bf16 {step['bf16'] * 1e3:.0f} ms (ratio {step['fp32'] / step['bf16']:.2f})")
    if not timing:
        return {}
    speedup = ratios(timing["fp32"], timing["bf16"])
    print(f"timing runs ({args.repeats} x fp32 and bf16, {args.timing_steps} steps each, first {TIMING_SKIP} left "
          f"out): s/step fp32 {spread(timing['fp32'], 3)}, bf16 {spread(timing['bf16'], 3)}; bf16 speed-up "
          f"{spread(speedup)}")
    return {"fp32_step_s": summary(timing["fp32"]), "bf16_step_s": summary(timing["bf16"]),
            "bf16_speedup": summary(speedup)}


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600,
                        help="training steps of the compared runs (200 fall too little to tell tracking apart)")
    parser.add_argument("--window", type=int, default=20, help="steps per table row and smoothing window")
    parser.add_argument("--warmup", type=int, default=None, help="steps left out of the comparison (default: "
                        "a fifth of --steps)")
    parser.add_argument("--factor", type=float, default=1.5, help="allowed bf16 gap / control gap")
    parser.add_argument("--tolerance", type=float, default=0.1, help="allowed gap in nats with --no_control")
    parser.add_argument("--no_control", action="store_true", help="skip the fp32 run with another seed")
    parser.add_argument("--timing_steps", type=int, default=30, help="steps of each timing run (0: no timing runs)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the training processes "
                        "(OMP_NUM_THREADS; default: torch's choice)")
    parser.add_argument("--config", default=str(REPO / "config" / "demo.yaml"), help="pretraining config")
    parser.add_argument("--dataset_dir", default=None, help="folder of the synthetic data (default: the demo's "
                        "./data; --quick: a small dataset in a temporary folder)")
    parser.add_argument("--log_dir", default=None, help="keep the runs here (default: a temporary folder)")
    parser.add_argument("flags", nargs=argparse.REMAINDER, help="after --: flags for every pretrain.py run")
    add_common_arguments(parser)
    parser.set_defaults(json=str(REPO / "runs" / "benchmarks" / "bf16_loss_curve.json"))
    return parser


def main() -> None:
    """Run the three pretrainings and the timing pairs, compare, print, plot and save."""
    parser = build_parser()
    args = parse_args(parser, quick={"steps": 12, "window": 3, "timing_steps": 8, "repeats": 1, "threads": 1,
                                     "json": str(REPO / "runs" / "benchmarks" / "bf16_loss_curve_quick.json")})
    args.warmup = args.steps // 5 if args.warmup is None else args.warmup
    flags = (QUICK_FLAGS if args.quick else []) + [f for f in args.flags if f != "--"]
    threads = set_threads(args.threads)
    print(machine_header())
    print(f"torch threads {threads} in each training process (OMP_NUM_THREADS; loader workers use 1)")
    config = load_config([args.config])
    with tempfile.TemporaryDirectory() as scratch:
        dataset_dir = args.dataset_dir or (os.path.join(scratch, "data") if args.quick else str(REPO / "data"))
        root = prepare_data(dataset_dir, config, QUICK_DATA if args.quick else {})
        settings = {"config": args.config, "dataset_dir": dataset_dir, "log_dir": args.log_dir or scratch,
                    "threads": args.threads, "flags": flags}
        print(f"config {args.config} {' '.join(flags)}; data {root}; {args.steps} steps, seed {args.seed}"
              f"{'' if args.no_control else f', control seed {args.seed + 1}'}\n")
        runs = {name: pretrain(name, precision, args.seed, args.steps, settings)
                for name, precision in PRECISIONS.items()}
        if not args.no_control:
            runs["control"] = pretrain("control", PRECISIONS["fp32"], args.seed + 1, args.steps, settings)
        timing = timing_pairs(settings, args.seed, args.timing_steps, args.repeats) if args.timing_steps else None

    figures = compare(runs, args.window, args.warmup, args.factor, args.tolerance)
    report_curves(runs, figures, args)
    results = {"steps": args.steps, "window": args.window, "warmup": args.warmup,
               "runs": {name: {"loss": run["loss"].tolist(), "seconds": run["seconds"],
                               "median_step_s": step_seconds(run)} for name, run in runs.items()},
               **{key: value for key, value in figures.items() if key != "smoothed"},
               "timing": report_timing(runs, timing, args)}
    verdict = "PASS" if figures["passed"] else "FAIL"
    print(f"\n{verdict}: " + "; ".join(f"{check} {'yes' if ok else 'NO'}" for check, ok in figures["checks"].items()))
    write_json(args.json, args, results)
    plot(runs, figures, str(Path(args.json).with_suffix(".png")),
         f"{verdict}: bf16-mixed vs 32-true, {args.steps} steps; smoothed gap {figures['bf16_gap']:.3f} "
         f"(limit {figures['limit']:.3f})")


if __name__ == "__main__":
    main()
