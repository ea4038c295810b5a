"""Audio files on disk: listing a folder and checking every file's header in parallel, with skip reports."""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from tqdm import tqdm

from clmr_lib.data.audio_io import AUDIO_EXTENSIONS, AudioInfo, AudioReadError, audio_info
from clmr_lib.data.processed import MANIFEST_NAME, PROCESSED_DIR
from clmr_lib.data.report import SkipReport
from clmr_lib.errors import UserError

logger = logging.getLogger(__name__)


def _is_hidden(name: str) -> bool:
    # Also covers macOS "._name" resource forks, which carry an audio extension but no audio.
    return name.startswith(".")


def _is_converted_copy(folder: str, files: Sequence[str]) -> bool:
    """Whether ``folder`` is ``preprocess.py``'s output: ``processed/<rate>/`` holding its manifest."""
    return MANIFEST_NAME in files and os.path.basename(os.path.dirname(os.path.abspath(folder))) == PROCESSED_DIR


def find_audio_files(root: str) -> list[str]:
    """List the audio files under ``root``, recursively, in a deterministic (sorted) order.

    Files are matched by extension (:data:`AUDIO_EXTENSIONS`, any letter case); hidden files and
    folders (names starting with ``.``) are skipped. Symbolic links to folders are followed, once.
    The converted copies ``preprocess.py`` writes (``processed/<rate>/`` with its ``manifest.json``)
    are left out, so a dataset folder that was preprocessed does not list every track twice.

    Args:
        root: The folder to search.

    Returns:
        Sorted absolute paths.

    Raises:
        UserError: ``root`` does not exist, is not a folder, or holds no audio files.
    """
    extensions = ", ".join(AUDIO_EXTENSIONS)
    if not os.path.exists(root):
        raise UserError(f"audio folder {root} does not exist; pass the folder that holds your audio files "
                        "(--dataset_dir)")
    if not os.path.isdir(root):
        raise UserError(f"{root} is a file, not a folder; pass the folder that holds your audio files "
                        "(--dataset_dir)")
    root = os.path.abspath(root)
    found, visited = [], set()

    def warn(error: OSError) -> None:
        logger.warning("skipping unreadable folder %s: %s", error.filename, error.strerror)

    for folder, subfolders, files in os.walk(root, onerror=warn, followlinks=True):
        real = os.path.realpath(folder)
        if real in visited:
            # A symbolic link back up the tree would otherwise be walked forever.
            subfolders[:] = []
            continue
        visited.add(real)
        if _is_converted_copy(folder, files):
            logger.info("leaving out %s: files converted by preprocess.py, copies of the originals", folder)
            subfolders[:] = []
            continue
        # Sorted, so that when two links reach one folder the same one is listed on every run.
        subfolders[:] = sorted(name for name in subfolders if not _is_hidden(name))
        found.extend(os.path.join(folder, name) for name in files
                     if not _is_hidden(name) and name.lower().endswith(AUDIO_EXTENSIONS))
    if not found:
        raise UserError(f"no audio files ({extensions}) found in {root}; point --dataset_dir at the folder "
                        "with your audio or convert the files to one of these formats")
    return sorted(found)


def _check_file(path: str, sample_rate: int, min_samples: int, verify_end: bool):
    """Header check of one file: ``(info, None)`` if usable, else ``(None, reason)``."""
    try:
        info = audio_info(path, verify_end=verify_end)
    except AudioReadError as error:
        return None, error.reason
    if min_samples > 0 and info.num_samples(sample_rate) < min_samples:
        return None, (f"too short: {info.duration:.2f} s < {min_samples / sample_rate:.2f} s crop "
                      f"({info.num_samples(sample_rate)} < {min_samples} samples at {sample_rate} Hz)")
    return info, None


def scan_audio_files(paths: Sequence[str], sample_rate: int, min_samples: int = 0, workers: int = 4,
                     progress: bool = True, verify_end: bool = True
                     ) -> tuple[list[tuple[str, AudioInfo]], SkipReport]:
    """Check every file's header in parallel; keep the readable ones, report the others.

    Threads suffice: soundfile calls libsndfile through cffi, which releases the GIL, so header
    reads and decoding overlap (measured: a Python thread keeps running during a decode).

    Args:
        paths: The files, in the order the caller wants them back.
        sample_rate: Rate at which lengths are measured (the training sample rate).
        min_samples: With a positive value, files shorter than this at ``sample_rate`` are
            reported as too short.
        workers: Threads; 1 or less checks the files one by one in this thread.
        progress: Show a tqdm progress bar.
        verify_end: Also decode a little at the start and end of each file (see
            :func:`~clmr_lib.data.audio_io.audio_info`), so that truncated files are reported
            now rather than failing crop by crop during training. Costs about one crop read.

    Returns:
        ``(usable, report)``: ``usable`` lists ``(path, info)`` for the files that passed, in
        input order and with the caller's path strings unchanged; ``report`` holds every other
        file with its reason.
    """
    paths = list(paths)
    report = SkipReport()
    usable = []

    def check(path: str):
        return _check_file(path, sample_rate, min_samples, verify_end)

    with tqdm(total=len(paths), desc="Checking audio files", unit="file", disable=not progress) as bar:
        if workers <= 1 or len(paths) <= 1:
            results = map(check, paths)
            executor = None
        else:
            executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="audio-scan")
            results = executor.map(check, paths)
        try:
            # map() yields in input order, whatever order the threads finish in.
            for path, (info, reason) in zip(paths, results):
                if info is None:
                    report.add(path, reason)
                else:
                    usable.append((path, info))
                bar.update()
        finally:
            if executor is not None:
                executor.shutdown(cancel_futures=True)
    return usable, report
