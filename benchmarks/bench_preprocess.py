"""Benchmark: preprocessing throughput, crop reads from converted files vs originals, DataLoader memory.

Three measurements, each printed with the ratios it supports (``median [min-max]`` of interleaved
rounds, measured in one run on this machine):

(a) ``preprocess`` throughput in hours of audio per minute, 1 and N worker processes, on 30 s
    clips in the formats of the standard datasets (MagnaTagATune: 16 kHz mono MP3; FMA: 44.1 kHz
    stereo MP3); and soxr against torchaudio's resampler on one such clip.
(b) Random 59,049-sample crops per second at 22,050 Hz from the converted files (16-bit WAV,
    FLAC) and from the originals, against what SampleCNN training consumes per core.
(c) Peak memory (PSS of the main process and the DataLoader workers, summed) while iterating a
    DataLoader of random crops over a preprocessed dataset of ``--tracks`` listed tracks (files
    reused through hard links), compared with a dataset of a tenth the size, and the time to open it.

How to read it: (a) says how long ``preprocess.py`` takes per hour of a dataset's audio; (b) how
many crops one loader worker delivers from each kind of file, and how many cores of SampleCNN
training it keeps busy; (c) whether loader memory grows with the number of listed tracks (it
should not: the 10x larger dataset should cost about the index's memory more, not 10x).

Run: ``.venv/bin/python benchmarks/bench_preprocess.py [--quick] [--repeats 5] [--json out.json]`` (about
5 minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (add_common_arguments, machine_header, median, music_like, parse_args,  # noqa: E402
                     repeat_interleaved, set_threads, spread, summary, write_json)

from clmr_lib.data.audio_io import RESAMPLE_QUALITY, audio_info, read_audio  # noqa: E402
from clmr_lib.data.crops import RandomCrops, worker_init  # noqa: E402
from clmr_lib.data.processed import Manifest, processed_dir, processed_path  # noqa: E402
from clmr_lib.data.standard import DatasetIndex, Entry, StandardDataset  # noqa: E402
from clmr_lib.models.sample_cnn import SampleCNN  # noqa: E402
from clmr_lib.preprocessing.convert import convert_dataset  # noqa: E402

SAMPLE_RATE, CROP = 22050, 59049
SOURCES = {"MTT-like (16 kHz mono MP3)": (16000, 1), "FMA-like (44.1 kHz stereo MP3)": (44100, 2)}


def write_sources(folder: str, count: int, seconds: float, rate: int, channels: int) -> list[str]:
    """``count`` distinct MP3 clips (music-like test audio) under ``folder``; relative paths."""
    relatives = []
    for i in range(count):
        audio = music_like(seconds, rate, seed=i)
        audio = audio[:, 0] if channels == 1 else audio
        relative = f"{i % 16:x}/clip_{i:04d}.mp3"
        os.makedirs(os.path.join(folder, os.path.dirname(relative)), exist_ok=True)
        sf.write(os.path.join(folder, relative), audio, rate)
        relatives.append(relative)
    return relatives


def index_of(root: str, relatives: list[str], n_classes: int = 50) -> DatasetIndex:
    rng = np.random.default_rng(0)
    entries = [Entry("train", r, str(i), (rng.random(n_classes) < 0.06).astype(np.float32))
               for i, r in enumerate(relatives)]
    return DatasetIndex("bench", root, "tags", "multilabel", [f"tag{i}" for i in range(n_classes)], entries, "bench")


def bench_throughput(folder: str, files: int, seconds: float, workers: int, repeats: int) -> dict:
    print(f"(a) preprocessing throughput: {files} clips of {seconds:g} s -> 16-bit mono WAV at {SAMPLE_RATE} Hz "
          f"(median [min-max] of {repeats} interleaved runs)")
    indexes = {}
    for name, (rate, channels) in SOURCES.items():
        root = os.path.join(folder, name.split()[0])
        indexes[name] = index_of(root, write_sources(root, files, seconds, rate, channels))

    def run(name, n):
        def convert():
            shutil.rmtree(processed_dir(indexes[name].root, SAMPLE_RATE), ignore_errors=True)
            report = convert_dataset(indexes[name], SAMPLE_RATE, workers=n, progress=False)
            assert report.converted == files and not report.failed
        return convert

    # Every conversion starts from an empty output folder, so no warm-up round.
    times = repeat_interleaved({(name, n): run(name, n) for name in SOURCES for n in sorted({1, workers})}, repeats,
                               warmup=0)
    header = f"{'source':<32}{'workers':>8}{'files/s':>9}{'h audio/min':>22}"
    print(header + "\n" + "-" * len(header))
    figures = {}
    for (name, n), values in times.items():
        hours_per_minute = [files * seconds / 3600 / (t / 60) for t in values]
        print(f"{name:<32}{n:>8}{files / median(values):>9.1f}{spread(hours_per_minute):>22}")
        figures[f"{name}, {n} workers"] = {"hours_of_audio_per_minute": summary(hours_per_minute),
                                           "files_per_s": files / median(values)}
    rate = 44100
    clip = music_like(seconds, rate)[:, 0].copy()
    tensor = torch.from_numpy(clip)
    times = repeat_interleaved({"soxr": lambda: soxr.resample(clip, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY),
                                "torchaudio": lambda: torchaudio.functional.resample(tensor, rate, SAMPLE_RATE)},
                               repeats)
    print(f"resampling one {seconds:g} s clip 44.1 -> 22.05 kHz: soxr {RESAMPLE_QUALITY} "
          f"{spread(times['soxr'], 1, 1e3)} ms, torchaudio {spread(times['torchaudio'], 1, 1e3)} ms "
          f"({median(times['torchaudio']) / median(times['soxr']):.1f}x slower)\n")
    figures["resampling_ms"] = {side: summary(values, scale=1e3) for side, values in times.items()}
    return figures


def bench_crops(folder: str, seconds: float, repeats: int, reads: int) -> dict:
    rng = np.random.default_rng(1)
    audio = music_like(seconds, 44100)
    paths = {}
    paths["original MP3 44.1k stereo"] = os.path.join(folder, "orig.mp3")
    sf.write(paths["original MP3 44.1k stereo"], audio, 44100)
    paths["original FLAC 44.1k stereo"] = os.path.join(folder, "orig.flac")
    sf.write(paths["original FLAC 44.1k stereo"], audio, 44100)
    mono = read_audio(paths["original FLAC 44.1k stereo"], SAMPLE_RATE)
    paths["converted WAV 16-bit"] = os.path.join(folder, "conv.wav")
    sf.write(paths["converted WAV 16-bit"], mono, SAMPLE_RATE, subtype="PCM_16")
    paths["converted FLAC 16-bit"] = os.path.join(folder, "conv.flac")
    sf.write(paths["converted FLAC 16-bit"], mono, SAMPLE_RATE, subtype="PCM_16")
    infos = {name: audio_info(path) for name, path in paths.items()}

    def crops(name):
        def run():
            length = infos[name].num_samples(SAMPLE_RATE)
            for _ in range(reads):
                read_audio(paths[name], SAMPLE_RATE, int(rng.integers(0, length - CROP)), CROP, info=infos[name])
        return run

    times = repeat_interleaved({name: crops(name) for name in paths}, repeats)
    encoder = SampleCNN()
    batch = torch.randn(8, 1, CROP)

    def step():
        encoder.zero_grad()
        encoder(batch).sum().backward()

    model = median(repeat_interleaved({"model": step}, max(3, repeats // 2))["model"]) / 8
    print(f"(b) random {CROP}-sample crops at {SAMPLE_RATE} Hz from a {seconds:g} s track, 1 thread "
          f"(median [min-max] of {repeats} rounds of {reads} reads)")
    header = f"{'file':<30}{'ms/crop':>19}{'crops/s':>9}{'vs WAV':>8}{'disk MB/h':>11}"
    print(header + "\n" + "-" * len(header))
    wav = median(times["converted WAV 16-bit"]) / reads
    figures = {}
    for name, values in times.items():
        per_crop = median(values) / reads
        mb_per_hour = os.path.getsize(paths[name]) / 1e6 * 3600 / seconds
        print(f"{name:<30}{spread(values, 2, 1e3 / reads):>19}{1 / per_crop:>9.0f}{per_crop / wav:>7.1f}x"
              f"{mb_per_hour:>11.0f}")
        figures[name] = {"ms_per_crop": summary(values, scale=1e3 / reads), "crops_per_s": 1 / per_crop,
                         "disk_mb_per_hour": mb_per_hour}
    print(f"SampleCNN (CLMR size) forward+backward on 1 thread: {model * 1e3:.0f} ms per crop "
          f"({1 / model:.1f} crops/s) -> one loader worker reading WAV crops feeds "
          f"{model / wav:.0f} such cores\n")
    figures["sample_cnn_train_ms_per_crop"] = model * 1e3
    return figures


class PeakMemory:
    """Samples the summed PSS of this process and its children every 50 ms; keeps the peak.

    PSS (proportional set size) splits each page shared between processes among them, so the
    sum is the memory the loader really uses; summed RSS would count the pages forked workers
    share with the main process once per process.
    """

    def __init__(self):
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _pss(pid: int) -> int:
        try:
            with open(f"/proc/{pid}/smaps_rollup", encoding="utf-8") as handle:
                for line in handle:
                    if line.startswith("Pss:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def total(self) -> int:
        """PSS of this process plus its children (the DataLoader workers), in bytes."""
        pids = [os.getpid()]
        try:
            with open(f"/proc/{os.getpid()}/task/{os.getpid()}/children", encoding="utf-8") as handle:
                pids += [int(p) for p in handle.read().split()]
        except OSError:
            pass
        return sum(self._pss(p) for p in pids)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.total())
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def preprocessed_tree(folder: str, tracks: int, distinct: int = 20, seconds: float = 30.0) -> DatasetIndex:
    """A converted dataset of ``tracks`` listed files: ``distinct`` real WAVs, the rest hard links to them."""
    root = os.path.join(folder, f"big{tracks}")
    out = processed_dir(root, SAMPLE_RATE)
    manifest = Manifest(SAMPLE_RATE, "wav")
    relatives = [f"{i // 1000:03d}/{i:06d}.mp3" for i in range(tracks)]
    originals = []
    for i in range(distinct):
        path = os.path.join(folder, f"distinct_{i}.wav")
        if not os.path.exists(path):
            sf.write(path, music_like(seconds, SAMPLE_RATE, seed=i)[:, 0], SAMPLE_RATE, subtype="PCM_16")
        originals.append(path)
    for i, relative in enumerate(relatives):
        target = processed_path(out, relative, "wav")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.link(originals[i % distinct], target)
        manifest.files[relative] = {"frames": int(seconds * SAMPLE_RATE), "size": os.path.getsize(target),
                                    "source_size": None, "source_mtime_ns": None}
    manifest.save(out)
    return index_of(root, relatives)


def bench_memory(folder: str, tracks: int, batches: int, workers: int, batch_size: int, seconds: float) -> dict:
    print(f"(c) DataLoader of random crops (2 views x {CROP} samples, 50 tags) over a preprocessed dataset, "
          f"{workers} workers, batch {batch_size}, {batches or 'an epoch of'} batches")
    header = f"{'listed tracks':>14}{'open s':>8}{'index MB':>10}{'peak PSS MB':>13}{'PSS at 1/4':>12}{'at end':>9}" \
             f"{'crops/s':>9}"
    print(header + "\n" + "-" * len(header))
    figures = {}
    for n in (tracks // 10, tracks):
        index = preprocessed_tree(folder, n, seconds=seconds)
        gc.collect()
        monitor = PeakMemory()
        before = monitor.total()
        started = time.perf_counter()
        dataset = StandardDataset(index, SAMPLE_RATE, CROP, workers=4, progress=False)
        opened = time.perf_counter() - started
        train = dataset.tracks("train")
        assert dataset.processed == n and len(train) == n
        index_mb = (monitor.total() - before) / 1e6
        del index, dataset
        loader = torch.utils.data.DataLoader(RandomCrops(train, SAMPLE_RATE, CROP, num_classes=50),
                                             batch_size=batch_size, shuffle=True, num_workers=workers,
                                             worker_init_fn=worker_init, persistent_workers=True)
        with monitor:
            started, trace = time.perf_counter(), []
            for step, (audio, _, _, ok) in enumerate(loader):
                assert bool(ok.all())
                trace.append(monitor.total())
                if step + 1 == batches:  # batches 0: a whole epoch
                    break
            elapsed = time.perf_counter() - started
        del loader
        print(f"{n:>14}{opened:>8.1f}{index_mb:>10.0f}{monitor.peak / 1e6:>13.0f}{trace[len(trace) // 4] / 1e6:>12.0f}"
              f"{trace[-1] / 1e6:>9.0f}{len(trace) * batch_size * 2 / elapsed:>9.0f}")
        figures[f"{n} tracks"] = {"open_s": opened, "index_mb": index_mb, "peak_pss_mb": monitor.peak / 1e6,
                                  "pss_at_quarter_mb": trace[len(trace) // 4] / 1e6, "pss_at_end_mb": trace[-1] / 1e6,
                                  "crops_per_s": len(trace) * batch_size * 2 / elapsed}
        del train
        gc.collect()
    print()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=16, help="clips per source format for (a)")
    parser.add_argument("--seconds", type=float, default=30.0, help="clip length")
    parser.add_argument("--workers", type=int, default=2, help="processes for (a), DataLoader workers for (c)")
    parser.add_argument("--tracks", type=int, default=100_000, help="listed tracks for (c)")
    parser.add_argument("--batches", type=int, default=150, help="batches iterated in (c); 0: a whole epoch")
    parser.add_argument("--batch_size", type=int, default=48)
    parser.add_argument("--reads", type=int, default=50, help="random crops per round in (b)")
    parser.add_argument("--only", choices=("a", "b", "c"), help="run one part")
    add_common_arguments(parser)
    args = parse_args(parser, quick={"files": 2, "seconds": 4.0, "repeats": 2, "tracks": 200, "batches": 3,
                                     "batch_size": 4, "reads": 3})
    set_threads(1)
    versions = {"libsndfile": sf.__libsndfile_version__, "soxr": soxr.__version__}
    print(machine_header(**versions) + "\n")
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        if args.only in (None, "a"):
            results["a_throughput"] = bench_throughput(os.path.join(folder, "a"), args.files, args.seconds,
                                                       args.workers, args.repeats)
        if args.only in (None, "b"):
            os.makedirs(os.path.join(folder, "b"))
            results["b_crops"] = bench_crops(os.path.join(folder, "b"), args.seconds, args.repeats, args.reads)
        if args.only in (None, "c"):
            os.makedirs(os.path.join(folder, "c"))
            results["c_memory"] = bench_memory(os.path.join(folder, "c"), args.tracks, args.batches, args.workers,
                                               args.batch_size, args.seconds)
    write_json(args.json, args, results, **versions)


if __name__ == "__main__":
    main()
