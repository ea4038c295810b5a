"""Benchmark: embedding extraction with a frozen SampleCNN: clips/s and peak memory, fp32 against bf16 autocast.

What it measures: (1) encoder only: chunks per second through the frozen encoder the evaluation
builds (``clmr_lib.models.frozen.frozen_encoder_from_config``, randomly initialised: the speed does
not depend on the weights) under ``torch.no_grad`` as ``extract_embeddings`` calls it, in fp32 and
under bf16 autocast, at several batch sizes, for two layouts: CLMR's full size
(``config/config.yaml``: 59,049 samples at 22,050 Hz, 11 blocks of 128-512 channels) and the demo's
small one (``config/demo.yaml``: 19,683 samples at 16 kHz, 32-256 channels). The peak memory of
each case is measured in a fresh process that builds the encoder and embeds two batches, so cases
do not inherit each other's allocations: the RSS high-water mark while the batches run (Linux'
VmHWM, reset through ``/proc/self/clear_refs`` after the imports, whose own transient peak would
hide a small batch; where it cannot be reset, ``ru_maxrss`` of the whole process). (2) End to end: the library's
``clmr_lib.evaluation.embeddings.extract_embeddings`` over ``--files`` WAV files (44.1 kHz stereo,
decoded, down-mixed, resampled and chunked by the library), against decoding alone and the encoder
alone on the same chunks.

How to read it: throughput is ``median [min-max]`` of ``--repeats`` interleaved rounds; ``x real
time`` is seconds of audio embedded per second. ``bf16 speed-up`` is fp32 time / bf16 time, round
by round (each pair ran under the same load). ``peak MB`` is the whole process while embedding
(Python, torch, model, input and activations); ``+forward MB`` is how much embedding raised it above
the resident size before (activations, oneDNN's kernels and scratch). The bf16 error line compares
bf16 embeddings with fp32 ones on the same batch. In the end-to-end table ``outside encoder`` is the
part of the end-to-end time spent decoding, chunking and batching: when it is small, the encoder,
not the pipeline, sets the pace.

Run: ``.venv/bin/python benchmarks/bench_extraction.py [--quick] [--repeats 5] [--threads N] [--json out.json]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import DataLoader

from _common import (add_common_arguments, machine_header, median, music_like, parse_args, rates, ratios,
                     repeat_interleaved, set_threads, spread, summary, write_json)
from clmr_lib.config import load_config
from clmr_lib.data.crops import TrackChunks
from clmr_lib.data.track import Track
from clmr_lib.evaluation.embeddings import extract_embeddings
from clmr_lib.models.frozen import frozen_encoder_from_config

REPO = Path(__file__).resolve().parents[1]
#: Layouts measured: name -> config files over config/config.yaml.
LAYOUTS = {"clmr": [], "demo": [REPO / "config" / "demo.yaml"]}
PRECISIONS = ("fp32", "bf16")
SOURCE_RATE = 44100


def layout_config(layout: str) -> dict:
    """The configuration of a layout, evaluating a randomly initialised SampleCNN."""
    return {**load_config(LAYOUTS[layout]), "checkpoint_path": "random"}


def describe(config: dict) -> str:
    """``59049 samples at 22050 Hz, channels 128-512``."""
    channels = config["sample_cnn_channels"]
    return (f"{config['audio_length']} samples at {config['sample_rate']} Hz, {len(channels)} blocks of "
            f"{min(channels)}-{max(channels)} channels")


def build(layout: str) -> torch.nn.Module:
    """The frozen encoder of ``layout``, as the evaluation builds it."""
    encoder, _ = frozen_encoder_from_config(layout_config(layout))
    return encoder


def precision_context(precision: str):
    """bf16 autocast on the CPU, or nothing for fp32."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def test_batch(encoder: torch.nn.Module, batch_size: int) -> torch.Tensor:
    """Noise at -20 dBFS, ``(batch_size, audio_length)`` (the encoder's speed does not depend on content)."""
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(batch_size, int(encoder.audio_length), generator=generator)


@torch.no_grad()
def embed(encoder: torch.nn.Module, chunks: torch.Tensor, batch_size: int, precision: str) -> torch.Tensor:
    """Embeddings of ``chunks`` in batches, as ``extract_embeddings`` runs the encoder."""
    with precision_context(precision):
        return torch.cat([encoder(chunks[i:i + batch_size]).float() for i in range(0, len(chunks), batch_size)])


def status_kib(field: str) -> int:
    """A memory figure of this process from /proc/self/status (VmRSS, VmHWM), in KiB."""
    with open("/proc/self/status", encoding="utf-8") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field + ":"))


def reset_peak_rss() -> bool:
    """Reset this process's RSS high-water mark (VmHWM) to its current RSS; False where Linux does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="utf-8") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def memory_case(spec: str) -> None:
    """Child process: build one case, embed two batches, print its memory figures (MB) as JSON."""
    layout, precision, batch_size = spec.split(",")
    encoder = build(layout)
    batch = test_batch(encoder, int(batch_size))
    before, reset = status_kib("VmRSS"), reset_peak_rss()
    for _ in range(2):  # the first call also creates oneDNN's kernels
        embed(encoder, batch, int(batch_size), precision)
    process_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    peak = status_kib("VmHWM") if reset else process_peak
    print(json.dumps({"peak_mb": peak / 1024, "forward_mb": (peak - before) / 1024,
                      "process_peak_mb": process_peak / 1024, "peak_reset": reset}))


def peak_memory(layout: str, precision: str, batch_size: int, threads: int) -> dict:
    """:func:`memory_case` in a fresh process."""
    command = [sys.executable, __file__, "--_memory_case", f"{layout},{precision},{batch_size}",
               "--threads", str(threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_encoder(args: argparse.Namespace, threads: int) -> dict:
    """Encoder-only throughput of every layout, precision and batch size, interleaved; peak memory per case."""
    encoders = {layout: build(layout) for layout in LAYOUTS}
    cases, clips = {}, {}
    for layout, encoder in encoders.items():
        for batch_size in args.batch_sizes:
            calls = max(1, math.ceil(args.clips / batch_size))
            batch = test_batch(encoder, batch_size)
            clips[(layout, batch_size)] = calls * batch_size
            for precision in PRECISIONS:
                cases[(layout, precision, batch_size)] = (
                    lambda e=encoder, b=batch, n=calls, p=precision: [embed(e, b, len(b), p) for _ in range(n)])
    times = repeat_interleaved(cases, args.repeats)
    memory = {case: peak_memory(*case, threads) for case in cases}

    print(f"(1) encoder only: frozen SampleCNN, torch.no_grad, {args.clips} clips per round, median [min-max] of "
          f"{args.repeats} interleaved rounds; peak memory of a fresh process per case")
    results = {}
    for layout, encoder in encoders.items():
        print(f"\n{layout}: {describe(layout_config(layout))}")
        header = (f"{'precision':<10}{'batch':>6}{'clips/s':>22}{'x real time':>13}{'peak MB':>9}"
                  f"{'+forward MB':>13}")
        print(header + "\n" + "-" * len(header))
        seconds_per_clip = encoder.audio_length / encoder.sample_rate
        results[layout] = {"layout": describe(layout_config(layout)), "cases": {}, "bf16_speedup": {}}
        for precision in PRECISIONS:
            for batch_size in args.batch_sizes:
                case = (layout, precision, batch_size)
                per_s = rates(times[case], clips[(layout, batch_size)])
                print(f"{precision:<10}{batch_size:>6}{spread(per_s, 1):>22}{median(per_s) * seconds_per_clip:>13.1f}"
                      f"{memory[case]['peak_mb']:>9.0f}{memory[case]['forward_mb']:>13.0f}")
                results[layout]["cases"][f"{precision} batch {batch_size}"] = {
                    "clips_per_s": summary(per_s), "memory_mb": memory[case]}
        for batch_size in args.batch_sizes:
            speedup = ratios(times[(layout, "fp32", batch_size)], times[(layout, "bf16", batch_size)])
            print(f"bf16 speed-up (fp32 time / bf16 time) at batch {batch_size}: {spread(speedup)}")
            results[layout]["bf16_speedup"][f"batch {batch_size}"] = summary(speedup)
        batch = test_batch(encoder, max(args.batch_sizes))
        reference, low = embed(encoder, batch, len(batch), "fp32"), embed(encoder, batch, len(batch), "bf16")
        error = ((low - reference).norm() / reference.norm()).item()
        cosine = torch.nn.functional.cosine_similarity(low, reference, dim=1).min().item()
        print(f"bf16 against fp32 embeddings: relative L2 error {error:.1e}, lowest cosine similarity {cosine:.5f}")
        results[layout]["bf16_error"] = {"relative_l2": error, "min_cosine": cosine}
    print()
    return results


def bench_end_to_end(args: argparse.Namespace, folder: str) -> dict:
    """extract_embeddings over audio files against decoding alone and the encoder alone, per layout."""
    paths = []
    for i in range(args.files):
        paths.append(os.path.join(folder, f"track_{i}.wav"))
        sf.write(paths[-1], music_like(args.file_seconds, SOURCE_RATE, seed=i), SOURCE_RATE, subtype="PCM_16")
    tracks = [Track(path, track_id=os.path.basename(path)) for path in paths]
    print(f"(2) end to end: extract_embeddings over {args.files} WAV files of {args.file_seconds:g} s "
          f"({SOURCE_RATE} Hz stereo, 16-bit), batch {args.e2e_batch}, loader in this process (workers 0); "
          f"median [min-max] of {args.repeats} interleaved rounds")
    results = {}
    for layout in LAYOUTS:
        encoder = build(layout)
        length = int(encoder.audio_length)
        dataset = TrackChunks(tracks, encoder.sample_rate, length)
        chunks = torch.cat([dataset[i][0] for i in range(len(dataset))])
        cases = {"decode only": lambda e=encoder: list(DataLoader(TrackChunks(tracks, e.sample_rate, length),
                                                                  batch_size=None))}
        for precision in PRECISIONS:
            cases[f"encoder only {precision}"] = lambda e=encoder, p=precision: embed(e, chunks, args.e2e_batch, p)

            def end_to_end(e=encoder, p=precision):
                with precision_context(p):
                    extract_embeddings(e, tracks, length, batch_size=args.e2e_batch, progress=False)
            cases[f"end to end {precision}"] = end_to_end
        times = repeat_interleaved(cases, args.repeats)
        print(f"\n{layout}: {describe(layout_config(layout))}; {len(chunks)} chunks")
        header = f"{'case':<20}{'clips/s':>22}{'x real time':>13}{'outside encoder':>17}"
        print(header + "\n" + "-" * len(header))
        results[layout] = {"chunks": len(chunks)}
        seconds_per_clip = length / encoder.sample_rate
        for name, values in times.items():
            per_s = rates(values, len(chunks))
            share = ""
            if name.startswith("end to end"):
                outside = [1 - enc / e2e for enc, e2e in zip(times["encoder only" + name[len("end to end"):]], values)]
                share = spread([100 * s for s in outside], 0) + " %"
                results[layout][f"{name} outside_encoder_percent"] = summary(outside, scale=100)
            print(f"{name:<20}{spread(per_s, 1):>22}{median(per_s) * seconds_per_clip:>13.1f}{share:>17}")
            results[layout][name] = {"clips_per_s": summary(per_s)}
    print()
    return results


def main() -> None:
    """Parse arguments, then measure the encoder alone and (unless skipped) end to end."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_sizes", type=lambda text: [int(b) for b in text.split(",")], default=[16, 64],
                        help="comma-separated batch sizes of the encoder-only part")
    parser.add_argument("--clips", type=int, default=128, help="clips embedded per round and case (encoder only)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--files", type=int, default=8, help="audio files of the end-to-end part")
    parser.add_argument("--file_seconds", type=float, default=30.0, help="length of each file")
    parser.add_argument("--e2e_batch", type=int, default=64, help="chunks per encoder call end to end "
                        "(--embedding_batch_size)")
    parser.add_argument("--skip_end_to_end", action="store_true", help="measure the encoder alone")
    parser.add_argument("--_memory_case", help=argparse.SUPPRESS)
    add_common_arguments(parser)
    args = parse_args(parser, quick={"batch_sizes": [2], "clips": 2, "threads": 1, "files": 2, "file_seconds": 3.0,
                                     "e2e_batch": 4, "repeats": 2})
    threads = set_threads(args.threads)
    if args._memory_case:
        memory_case(args._memory_case)
        return
    print(machine_header())
    print(f"torch threads {threads} (encoder); decoding (soundfile, soxr) runs on one core\n")
    results = {"encoder_only": bench_encoder(args, threads)}
    if not args.skip_end_to_end:
        with tempfile.TemporaryDirectory() as folder:
            results["end_to_end"] = bench_end_to_end(args, folder)
    write_json(args.json, args, results)


if __name__ == "__main__":
    main()
