"""Benchmark: crop reads against whole-file decodes per format, header checks, soxr against torchaudio."""
import argparse
import os
import platform
import statistics
import tempfile
import time

import numpy as np
import soundfile as sf
import soxr
import torch
import torchaudio

from clmr_lib.data import audio_io
from clmr_lib.data.audio_io import audio_info, read_audio

SAMPLE_RATE = 22050
CROP = 59049
FORMATS = (".wav", ".flac", ".ogg", ".mp3")


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


def music_like(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """Stereo test audio with some structure (notes, noise bursts, quiet passages) for the encoders."""
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


def timed(function) -> float:
    """Seconds taken by one call."""
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def interleaved(cases: dict, repeats: int) -> dict:
    """Median seconds per case, timing every case once per round so drifting load hits all alike."""
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, function in cases.items():
            times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    """Write one file per format, time reads and resamplers with interleaved repetitions, print tables."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of the test files (a clip or a song)")
    parser.add_argument("--source-rate", type=int, default=44100, help="sample rate of the test files")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions (median reported)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in DataLoader workers
    rng = np.random.default_rng(0)
    print(f"CPU: {cpu_name()}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f}; "
          f"{sf.__libsndfile_version__ and 'libsndfile ' + sf.__libsndfile_version__}; soxr {soxr.__version__}; "
          f"torchaudio {torchaudio.__version__}")
    print(f"files: {args.seconds:g} s stereo at {args.source_rate} Hz; crop {CROP} samples at {SAMPLE_RATE} Hz; "
          f"median of {args.repeats} interleaved repetitions\n")
    with tempfile.TemporaryDirectory() as folder:
        audio = music_like(args.seconds, args.source_rate)
        paths = {}
        for extension in FORMATS:
            paths[extension] = os.path.join(folder, "bench" + extension)
            sf.write(paths[extension], audio, args.source_rate)
        infos = {extension: audio_info(path) for extension, path in paths.items()}
        length = infos[".wav"].num_samples(SAMPLE_RATE)
        source_crop = CROP * args.source_rate // SAMPLE_RATE

        def crop(extension):
            def run():
                offset = int(rng.integers(0, length - CROP))
                read_audio(paths[extension], SAMPLE_RATE, offset=offset, num_samples=CROP, info=infos[extension])
            return run

        def raw_crop(extension):
            def run():
                with sf.SoundFile(paths[extension]) as handle:
                    handle.seek(int(rng.integers(0, handle.frames - source_crop)))
                    handle.read(source_crop, dtype="float32")
            return run

        cases = {}
        for extension in FORMATS:
            cases[(extension, "crop")] = crop(extension)
            cases[(extension, "whole")] = lambda e=extension: read_audio(paths[e], SAMPLE_RATE)
            cases[(extension, "raw crop")] = raw_crop(extension)
            cases[(extension, "raw whole")] = lambda e=extension: sf.read(paths[e], dtype="float32")
            cases[(extension, "info")] = lambda e=extension: audio_info(paths[e])
            cases[(extension, "info+verify")] = lambda e=extension: audio_info(paths[e], verify_end=True)
        results = interleaved(cases, args.repeats)

        # The MP3 lead-in that keeps crops exact, measured against none (crops then start wrong at low bit rates).
        preroll = audio_io._MP3_PREROLL
        try:
            audio_io._MP3_PREROLL = 0
            without = interleaved({"mp3": crop(".mp3")}, args.repeats)["mp3"]
        finally:
            audio_io._MP3_PREROLL = preroll

    print("Reading (ms; crop and whole include down-mix and resampling to 22,050 Hz; raw = soundfile only)")
    header = f"{'format':<7}{'crop':>8}{'whole':>9}{'whole/crop':>12}{'raw crop':>10}{'raw whole':>11}" \
             f"{'info':>8}{'info+verify':>13}"
    print(header)
    print("-" * len(header))
    for extension in FORMATS:
        r = {name: results[(extension, name)] * 1e3 for name in
             ("crop", "whole", "raw crop", "raw whole", "info", "info+verify")}
        print(f"{extension[1:].upper():<7}{r['crop']:>8.2f}{r['whole']:>9.2f}{r['whole'] / r['crop']:>11.1f}x"
              f"{r['raw crop']:>10.2f}{r['raw whole']:>11.2f}{r['info']:>8.2f}{r['info+verify']:>13.2f}")
    print(f"MP3 crop without the {preroll}-frame lead-in: {without * 1e3:.2f} ms "
          f"(lead-in costs {100 * (results[('.mp3', 'crop')] / without - 1):+.0f}%)\n")

    print("Resampling mono float32 to 22,050 Hz (ms, torch at 1 thread)")
    header = f"{'input':<26}{'soxr ' + audio_io.RESAMPLE_QUALITY:>9}{'torchaudio':>12}{'torchaudio/soxr':>17}"
    print(header)
    print("-" * len(header))
    for rate in (44100, 48000):
        for label, frames in (("crop", CROP * rate // SAMPLE_RATE), (f"{args.seconds:g} s", int(args.seconds * rate))):
            signal = rng.standard_normal(frames).astype(np.float32) * 0.1
            tensor = torch.from_numpy(signal)
            times = interleaved({
                "soxr": lambda: soxr.resample(signal, rate, SAMPLE_RATE, quality=audio_io.RESAMPLE_QUALITY),
                "torchaudio": lambda: torchaudio.functional.resample(tensor, rate, SAMPLE_RATE),
            }, args.repeats)
            name = f"{label} at {rate} Hz"
            print(f"{name:<26}{times['soxr'] * 1e3:>9.2f}{times['torchaudio'] * 1e3:>12.2f}"
                  f"{times['torchaudio'] / times['soxr']:>16.1f}x")


if __name__ == "__main__":
    main()
