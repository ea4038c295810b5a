"""Benchmark: crop reads against whole-file decodes per format, header checks, soxr against torchaudio.

What it measures, with the library's reader (``clmr_lib.data.audio_io.read_audio``): the time to
read one random 59,049-sample crop at 22,050 Hz (what a training step asks per view) from a
``--seconds`` long file in WAV, FLAC, OGG and MP3, written at 44.1 kHz stereo and at 22,050 Hz
mono; the time to decode the whole file instead; soundfile alone (``raw``: no down-mix, no
resampling); the header scan (``info``, ``info+verify`` also checks the end of the file); and
soxr against torchaudio resampling a crop and a whole file.

How to read it: figures are ``median [min-max]`` over ``--repeats`` interleaved rounds (a crop
figure is the mean of ``--reads`` random crops in one round). ``crops/s`` is what one loader
worker delivers from that format; ``whole/crop`` is how many crops cost as much as one
whole-file decode. Training reads crops by seeking, so crops/s, not the whole-file time, bounds
the data pipeline. Raw MP3 crops seek without the library's lead-in, so libmpg123 may print
``part2_3_length ... too large`` on stderr: the reason the library decodes a lead-in.

Run: ``.venv/bin/python benchmarks/bench_audio_io.py [--quick] [--repeats 9] [--json out.json]``.
"""
import argparse
import os
import tempfile

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio

from _common import (add_common_arguments, machine_header, median, music_like, parse_args, repeat_interleaved,
                     set_threads, spread, summary, write_json)
from clmr_lib.data import audio_io
from clmr_lib.data.audio_io import audio_info, read_audio

SAMPLE_RATE = 22050
CROP = 59049
FORMATS = (".wav", ".flac", ".ogg", ".mp3")
#: Source files: (sample rate, channels).
SOURCES = ((44100, 2), (SAMPLE_RATE, 1))
CASES = ("crop", "whole", "raw crop", "raw whole", "info", "info+verify")


def write_files(folder: str, seconds: float, rate: int, channels: int) -> dict:
    """One test file per format (those libsndfile can write) at ``rate`` with ``channels``: ``extension -> path``."""
    audio = music_like(seconds, rate)
    audio = audio[:, 0].copy() if channels == 1 else audio
    paths = {}
    for extension in FORMATS:
        if extension[1:].upper() not in sf.available_formats():
            print(f"libsndfile {sf.__libsndfile_version__} cannot write {extension[1:].upper()}; skipped")
            continue
        paths[extension] = os.path.join(folder, f"bench_{rate}_{channels}{extension}")
        sf.write(paths[extension], audio, rate)
    return paths


def read_cases(paths: dict, reads: int, rng: np.random.Generator) -> dict:
    """``(extension, case) -> callable`` for every file; crop cases read ``reads`` random crops per call."""
    infos = {extension: audio_info(path) for extension, path in paths.items()}

    def crop(extension):
        length = infos[extension].num_samples(SAMPLE_RATE)

        def run():
            for _ in range(reads):
                read_audio(paths[extension], SAMPLE_RATE, offset=int(rng.integers(0, length - CROP)),
                           num_samples=CROP, info=infos[extension])
        return run

    def raw_crop(extension):
        source_crop = CROP * infos[extension].sample_rate // SAMPLE_RATE

        def run():
            with sf.SoundFile(paths[extension]) as handle:
                for _ in range(reads):
                    handle.seek(int(rng.integers(0, handle.frames - source_crop)))
                    handle.read(source_crop, dtype="float32")
        return run

    cases = {}
    for extension in paths:
        cases[(extension, "crop")] = crop(extension)
        cases[(extension, "whole")] = lambda e=extension: read_audio(paths[e], SAMPLE_RATE)
        cases[(extension, "raw crop")] = raw_crop(extension)
        cases[(extension, "raw whole")] = lambda e=extension: sf.read(paths[e], dtype="float32")
        cases[(extension, "info")] = lambda e=extension: audio_info(paths[e])
        cases[(extension, "info+verify")] = lambda e=extension: audio_info(paths[e], verify_end=True)
    return cases


def print_reads(label: str, paths: dict, times: dict, reads: int) -> dict:
    """The table of one source layout; returns its figures in ms (per crop for the crop cases)."""
    print(f"{label}: ms per read, median [min-max]; crop and whole include down-mix and resampling to "
          f"{SAMPLE_RATE} Hz; raw = soundfile only")
    header = (f"{'format':<7}{'crop ms':>19}{'crops/s':>9}{'whole ms':>22}{'whole/crop':>12}{'raw crop':>10}"
              f"{'raw whole':>11}{'info':>8}{'info+verify':>13}")
    print(header + "\n" + "-" * len(header))
    figures = {}
    for extension in paths:
        ms = {case: [t * 1e3 / (reads if "crop" in case else 1) for t in times[(extension, case)]] for case in CASES}
        m = {case: median(values) for case, values in ms.items()}
        print(f"{extension[1:].upper():<7}{spread(ms['crop']):>19}{1e3 / m['crop']:>9.0f}{spread(ms['whole']):>22}"
              f"{m['whole'] / m['crop']:>11.1f}x{m['raw crop']:>10.2f}{m['raw whole']:>11.2f}{m['info']:>8.2f}"
              f"{m['info+verify']:>13.2f}")
        figures[extension[1:]] = {case: summary(values) for case, values in ms.items()}
        figures[extension[1:]]["crops_per_s"] = 1e3 / m["crop"]
    print()
    return figures


def main() -> None:
    """Write test files per format and layout, time reads and resamplers in interleaved rounds, print tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the test files (a clip or a song)")
    parser.add_argument("--reads", type=int, default=10, help="random crops read per round and case")
    add_common_arguments(parser, repeats=9)
    args = parse_args(parser, quick={"seconds": 4.0, "reads": 2, "repeats": 2})
    threads = set_threads(1)  # as in DataLoader workers
    rng = np.random.default_rng(0)
    versions = {"libsndfile": sf.__libsndfile_version__, "soxr": soxr.__version__,
                "torchaudio": torchaudio.__version__}
    print(machine_header(**versions))
    print(f"files: {args.seconds:g} s; crop {CROP} samples at {SAMPLE_RATE} Hz; torch threads {threads} (as in "
          f"loader workers); median [min-max] of {args.repeats} interleaved rounds\n")
    results = {"reads": {}, "resampling": {}}
    with tempfile.TemporaryDirectory() as folder:
        for rate, channels in SOURCES:
            label = f"{rate} Hz {'stereo' if channels == 2 else 'mono'}"
            paths = write_files(folder, args.seconds, rate, channels)
            times = repeat_interleaved(read_cases(paths, args.reads, rng), args.repeats)
            results["reads"][label] = print_reads(label, paths, times, args.reads)
            if ".mp3" in paths and channels == 2:
                # The MP3 lead-in that keeps crops exact, measured against none (crops then start wrong at
                # low bit rates).
                preroll = audio_io._MP3_PREROLL
                try:
                    audio_io._MP3_PREROLL = 0
                    without = repeat_interleaved({"mp3": read_cases({".mp3": paths[".mp3"]}, args.reads, rng)[
                        (".mp3", "crop")]}, args.repeats)["mp3"]
                finally:
                    audio_io._MP3_PREROLL = preroll
                with_ms, without_ms = median(times[(".mp3", "crop")]), median(without)
                print(f"MP3 crop without the {preroll}-frame lead-in: {spread(without, scale=1e3 / args.reads)} ms "
                      f"(lead-in costs {100 * (with_ms / without_ms - 1):+.0f}%)\n")
                results["mp3_crop_without_preroll_ms"] = summary(without, scale=1e3 / args.reads)

    print("Resampling mono float32 to 22,050 Hz (ms, median [min-max], torch at 1 thread)")
    header = f"{'input':<26}{'soxr ' + audio_io.RESAMPLE_QUALITY:>22}{'torchaudio':>22}{'torchaudio/soxr':>17}"
    print(header + "\n" + "-" * len(header))
    for rate in (44100, 48000):
        for label, frames in (("crop", CROP * rate // SAMPLE_RATE), (f"{args.seconds:g} s", int(args.seconds * rate))):
            signal = rng.standard_normal(frames).astype(np.float32) * 0.1
            tensor = torch.from_numpy(signal)
            times = repeat_interleaved({
                "soxr": lambda: soxr.resample(signal, rate, SAMPLE_RATE, quality=audio_io.RESAMPLE_QUALITY),
                "torchaudio": lambda: torchaudio.functional.resample(tensor, rate, SAMPLE_RATE),
            }, args.repeats)
            name = f"{label} at {rate} Hz"
            print(f"{name:<26}{spread(times['soxr'], scale=1e3):>22}{spread(times['torchaudio'], scale=1e3):>22}"
                  f"{median(times['torchaudio']) / median(times['soxr']):>16.1f}x")
            results["resampling"][name] = {side: summary(values, scale=1e3) for side, values in times.items()}
    write_json(args.json, args, results, **versions)


if __name__ == "__main__":
    main()
