"""Benchmark: pretraining throughput end to end against the encoder's own step on in-memory tensors.

What it measures, in interleaved rounds:

- ``end to end``: ``pretrain.py`` as a user runs it (CLMR's full-size config, ``config/config.yaml``,
  batch ``--batch`` tracks x 2 views) on a folder of ``--files`` WAV files of ``--file_seconds`` at
  22,050 Hz mono 16-bit (what ``preprocess.py`` writes): the DataLoader reads two random crops per
  track by seeking, the module augments them batched (all eight CLMR transforms at CLMR's
  probabilities), SampleCNN + projector forward, NT-Xent, backward, the non-finite check, the
  optimiser step, logging, the progress bar off. A step's time is the wall-clock interval between
  the TensorBoard events of consecutive steps (``--log_every_n_steps 1``), so it includes waiting for
  the next batch; the first ``--skip`` intervals of each run are left out (start-up, oneDNN kernels,
  and the heap's warm-up: with freed memory kept for reuse, the first steps still grow the heap,
  and every new page costs a page fault — measured here, steps 1-3 of a full-size run take 1.0M,
  0.3M and 0.24M faults and 3-9x a steady step; from step 4 on a step takes ~30, with an occasional
  step that grows the heap again as the augmentations' varying buffer sizes fragment it).
- ``encoder only``: in a fresh process of its own, the same module's encoder + projector + NT-Xent
  forward, backward and Adam step on a fixed in-memory batch of ``2 x --batch`` views: no reading,
  cropping, augmenting, Lightning or logging. The lower bound of a step. (One process at a time:
  with freed memory kept for reuse, a full-size fp32 step holds about 16 GB.)
- ``augment`` and ``read + crop``: the two pipeline parts alone (the module's augmentation chain on
  one batch; one batch from the DataLoader ``pretrain.py`` builds), to show where overhead comes from.

Both precisions are measured (``--precisions``): the faster the encoder (bf16), the larger the
pipeline's share. How to read it: times are ``median [min-max]`` over ``--repeats`` rounds;
``overhead`` is end-to-end step time / encoder-only step time - 1, round by round (each pair ran
under the same load). The target is at most 10 %.

Run: ``.venv/bin/python benchmarks/bench_pretraining.py [--quick] [--repeats 5] [--batch 48]
[--precisions 32-true,bf16-mixed] [--workers 0] [--json out.json]``. At full size a round takes about
3 minutes in fp32 on 2 cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (add_common_arguments, machine_header, music_like, parse_args, ratios, repeat_interleaved,  # noqa: E402
                     set_threads, spread, summary, timed, write_json)
from bf16_loss_curve import read_step_times  # noqa: E402
from clmr_lib.config import load_config  # noqa: E402
from clmr_lib.data import get_dataset  # noqa: E402
from clmr_lib.training.pretrain import build_module, crop_loader  # noqa: E402
from clmr_lib.utils.memory import keep_freed_memory  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 22050
#: Every end-to-end run: per-step logs, no validation or periodic checkpoints, no progress bar.
RUN_FLAGS = ["--log_every_n_steps", "1", "--checkpoint_every_n_steps", "1000000", "--checkpoint_every_n_epochs",
             "0", "--progress", "false", "--max_epochs", "1000"]
#: The quick check: a small SampleCNN (2,187-sample crops) so the script's wiring runs in seconds.
QUICK_MODEL = {"audio_length": 2187, "sample_cnn_channels": [16, 16, 16, 16, 16, 16, 16, 32],
               "sample_cnn_strides": [3, 3, 3, 3, 3, 3]}


def write_folder(folder: str, files: int, seconds: float) -> None:
    """``files`` WAV files of music-like audio at 22,050 Hz, mono, 16-bit (preprocess.py's output format)."""
    os.makedirs(folder, exist_ok=True)
    for i in range(files):
        audio = music_like(seconds, SAMPLE_RATE, seed=i)[:, 0]
        sf.write(os.path.join(folder, f"track_{i:04d}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")


def model_flags(args: argparse.Namespace) -> list[str]:
    """Flags of the model and batch under test (the quick check's small model with --quick)."""
    flags = ["--batch_size", str(args.batch), "--workers", str(args.workers)]
    if args.quick:
        for key, value in QUICK_MODEL.items():
            flags += [f"--{key}", str(value)]
    return flags


def end_to_end(args: argparse.Namespace, folder: str, log_dir: str, precision: str, run: int) -> list[float]:
    """Seconds of each timed step of one ``pretrain.py`` run."""
    name = f"e2e_{precision}_{run}"
    command = [sys.executable, str(REPO / "pretrain.py"), "--dataset", "audio", "--dataset_dir", folder,
               "--log_dir", log_dir, "--run_name", name, "--precision", precision, "--seed", str(run),
               "--max_steps", str(args.skip + args.steps + 1), *RUN_FLAGS, *model_flags(args)]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"FAIL: {' '.join(command)}\n" + "\n".join(done.stderr.strip().splitlines()[-12:]))
    intervals = np.diff(read_step_times(Path(log_dir) / name))
    return [float(t) for t in intervals[args.skip:]]


def run_config(args: argparse.Namespace, folder: str, precision: str) -> dict:
    """The configuration ``pretrain.py`` builds from the same flags."""
    config = load_config()
    config.update(dataset="audio", dataset_dir=folder, precision=precision, batch_size=args.batch,
                  workers=args.workers)
    if args.quick:
        config.update(QUICK_MODEL)
    return config


class EncoderOnly:
    """Encoder + projector + NT-Xent forward, backward and Adam step of a module on a fixed batch."""

    def __init__(self, config: dict, precision: str):
        self.module = build_module(config).train()
        self.optimizer = self.module.configure_optimizers()["optimizer"]
        generator = torch.Generator().manual_seed(0)
        self.views = 0.1 * torch.randn(2 * int(config["batch_size"]), int(config["audio_length"]),
                                       generator=generator)
        self.context = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if precision == "bf16-mixed" \
            else nullcontext

    def step(self) -> None:
        """One optimiser step."""
        half = self.views.shape[0] // 2
        with self.context():
            z = self.module.projector(self.module.encoder(self.views))
            loss = self.module.criterion(z[:half].float(), z[half:].float())
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def encoder_only_child(args: argparse.Namespace, folder: str, precision: str) -> None:
    """In the child process: untimed steps, then ``--steps`` timed ones; prints their seconds as JSON.

    As many untimed steps as an end-to-end run has before its first timed interval (its first step,
    then ``--skip`` intervals): the first builds oneDNN's kernels and Adam's state, the next ones
    still grow the reused heap, so fewer would make the encoder look slower than it is.
    """
    keep_freed_memory()  # as pretrain.py does (--reuse_memory true)
    steps = EncoderOnly(run_config(args, folder, precision), precision)
    for _ in range(1 + args.skip):
        steps.step()
    print(json.dumps([timed(steps.step) for _ in range(args.steps)]))


def encoder_only(args: argparse.Namespace, folder: str, precision: str) -> list[float]:
    """Seconds of each timed encoder-only step, measured in a fresh process."""
    command = [sys.executable, __file__, "--_encoder_only", precision, "--_folder", folder, *sys.argv[1:]]
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode:
        sys.exit(f"FAIL: {' '.join(command)}\n" + "\n".join(done.stderr.strip().splitlines()[-12:]))
    return json.loads(done.stdout.strip().splitlines()[-1])


def pipeline_parts(config: dict, module) -> dict:
    """Callables timing the augmentation chain on one batch, and reading one batch as pretrain.py does."""
    tracks = get_dataset(config).tracks("train")
    loader = crop_loader(tracks, config, shuffle=True)
    batches = iter(loader)
    audio = next(batches)[0]
    views = torch.cat([audio[:, 0], audio[:, 1]])

    def read():
        nonlocal batches
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            next(batches)

    def augment():
        with torch.no_grad():
            module.augment(views)
    return {"read + crop": read, "augment": augment}


def main() -> None:
    """Write the audio folder, then time the cases round after round; print and save the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=48, help="tracks per batch (2 views each)")
    parser.add_argument("--files", type=int, default=240, help="WAV files in the training folder")
    parser.add_argument("--file_seconds", type=float, default=30.0, help="seconds per file (MagnaTagATune: 29)")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per end-to-end run and round")
    parser.add_argument("--skip", type=int, default=4,
                        help="first step intervals of a run left out (heap warm-up, see above)")
    parser.add_argument("--precisions", default="32-true,bf16-mixed", help="comma-separated Lightning precisions")
    parser.add_argument("--workers", type=int, default=int(load_config()["workers"]),
                        help="DataLoader workers (config default)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--_encoder_only", help=argparse.SUPPRESS)
    parser.add_argument("--_folder", help=argparse.SUPPRESS)
    add_common_arguments(parser)
    args = parse_args(parser, quick={"batch": 4, "files": 12, "file_seconds": 2.0, "steps": 2, "repeats": 1})
    threads = set_threads(args.threads)
    if args._encoder_only:
        encoder_only_child(args, args._folder, args._encoder_only)
        return
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    print(machine_header())
    with tempfile.TemporaryDirectory() as scratch:
        folder = os.path.join(scratch, "audio")
        write_folder(folder, args.files, args.file_seconds)
        config = run_config(args, folder, precisions[0])
        print(f"CLMR pretraining, batch {args.batch} x 2 views of {config['audio_length']} samples, "
              f"SampleCNN {config['sample_cnn_channels'][0]}-{max(config['sample_cnn_channels'])} channels; "
              f"{args.files} WAV files of {args.file_seconds:g} s; workers {args.workers}; torch threads {threads}; "
              f"{args.steps} timed steps per case and round, {args.repeats} rounds\n")
        parts = pipeline_parts(config, build_module(config))
        times: dict[str, list[float]] = {}
        for round_ in range(args.repeats):
            order = precisions if round_ % 2 == 0 else precisions[::-1]
            for precision in order:
                start = time.perf_counter()
                steps = end_to_end(args, folder, scratch, precision, round_)
                times.setdefault(f"end to end {precision}", []).append(float(np.median(steps)))
                steps = encoder_only(args, folder, precision)
                times.setdefault(f"encoder only {precision}", []).append(float(np.median(steps)))
                print(f"round {round_ + 1}/{args.repeats} {precision}: end to end "
                      f"{times[f'end to end {precision}'][-1]:.3f} s/step, encoder only "
                      f"{times[f'encoder only {precision}'][-1]:.3f} s/step ({time.perf_counter() - start:.0f} s)")
        times.update(repeat_interleaved(parts, args.repeats))

    views = 2 * args.batch
    print(f"\nmedian [min-max] of {args.repeats} rounds")
    header = f"{'case':<26}{'s per step':>26}{'views/s':>28}{'overhead':>26}"
    print(header + "\n" + "-" * len(header))
    results: dict = {"views_per_step": views}
    for name, values in times.items():
        line = f"{name:<26}{spread(values, 3):>26}"
        results[name] = {"seconds": summary(values)}
        if name.startswith(("end to end", "encoder only")):
            line += f"{spread([views / t for t in values], 2):>28}"
            results[name]["views_per_s"] = summary([views / t for t in values])
        if name.startswith("end to end"):
            precision = name[len("end to end "):]
            overhead = [r - 1 for r in ratios(values, times[f"encoder only {precision}"])]
            line += f"{spread([100 * o for o in overhead], 1) + ' %':>26}"
            results[name]["overhead_percent"] = summary(overhead, scale=100)
        print(line)
    for precision in precisions:
        figure = results[f"end to end {precision}"]["overhead_percent"]["median"]
        print(f"{precision}: the pipeline adds {figure:.1f} % to the encoder's step (target: at most 10 %)")
    write_json(args.json, args, results)


if __name__ == "__main__":
    main()
