"""Conversion of a dataset's files to the training format: parallel, resumable, atomic, never stopped by a file.

Each listed file is decoded, down-mixed and resampled (soxr, see
:mod:`clmr_lib.data.audio_io`) once, and written as 16-bit mono WAV (or FLAC) to
``<root>/processed/<sample_rate>/<relative path>.wav`` through a temporary name and a rename, so an
interruption at any moment leaves complete files or none. ``manifest.json`` in that folder lists
every complete file with its length and its source's size and modification time; a rerun skips
them, converts the rest and retries earlier failures.
"""
from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import signal
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from tqdm import tqdm

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None

from clmr_lib.data.audio_io import AudioReadError, audio_info, read_audio, write_audio
from clmr_lib.data.processed import FORMATS, Manifest, processed_dir, processed_path, source_stamp
from clmr_lib.data.standard import DatasetIndex
from clmr_lib.errors import UserError
from clmr_lib.preprocessing.report import PreprocessReport, report_path

logger = logging.getLogger(__name__)

LOCK_NAME = ".preprocess.lock"
SAVE_EVERY = 30.0  # seconds between manifest saves, so a killed run loses little bookkeeping
# Errors of the destination, not of a source file: converting further files cannot succeed.
_FATAL_WRITE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def convert_file(source: str, destination: str, sample_rate: int, format_name: str = "wav") -> dict:
    """Convert one file; a bad source is reported in the result, never raised.

    Args:
        source: The original audio file.
        destination: The converted file to write (atomically; parent folders are created).
        sample_rate: Target sample rate in Hz.
        format_name: Key of :data:`~clmr_lib.data.processed.FORMATS`.

    Returns:
        ``{"status": "ok", "frames", "size", "source_size", "source_mtime_ns"}`` or
        ``{"status": "failed", "reason"}`` (with the source's size and time when it exists).

    Raises:
        UserError: The destination cannot be written (disk full, read-only, no permission).
    """
    stamp = source_stamp(source)
    if stamp is None:
        return {"status": "failed", "reason": "file not found"}
    stamped = {"source_size": stamp[0], "source_mtime_ns": stamp[1]}
    try:
        audio = read_audio(source, sample_rate)
    except AudioReadError as error:
        return {"status": "failed", "reason": error.reason, **stamped}
    except (MemoryError, RuntimeError, ValueError, OSError) as error:
        return {"status": "failed", "reason": f"cannot decode ({type(error).__name__}: {error})", **stamped}
    if audio.size == 0:
        return {"status": "failed", "reason": "no audio after decoding", **stamped}
    try:
        write_audio(destination, audio, sample_rate, subtype=FORMATS[format_name][1])
    except OSError as error:
        if error.errno in _FATAL_WRITE_ERRORS:
            raise UserError(f"cannot write {destination} ({error.strerror}); free space or fix the permissions of "
                            f"{os.path.dirname(destination)}, then rerun to resume") from None
        # A problem of this file's output alone (a name too long for the file system, an I/O error).
        return {"status": "failed", "reason": f"cannot write the converted file ({error.strerror or error})",
                **stamped}
    return {"status": "ok", "frames": int(audio.shape[0]), "size": os.stat(destination).st_size, **stamped}


def _convert_job(job: tuple) -> tuple:
    relative, source, destination, sample_rate, format_name = job
    return relative, convert_file(source, destination, sample_rate, format_name)


def _init_worker() -> None:
    # Ctrl-C goes to the whole process group; the parent alone decides, and workers finish
    # their current file instead of dying in the middle of it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


class _Lock:
    """One preprocessing run per output folder: an exclusive ``flock`` on a lock file holding the owner's id.

    The kernel drops the lock when its holder dies, however it dies, so a killed run never blocks
    the next one, and two runs started at the same moment cannot both get it (the check and the
    taking are one system call). Where ``fcntl`` is missing, the process id in the file is checked.
    """

    def __init__(self, folder: str):
        self.path = os.path.join(folder, LOCK_NAME)
        self._handle = None

    def _refuse(self, owner: str) -> None:
        raise UserError(f"another preprocess.py run (process {owner or 'unknown'}) is converting into "
                        f"{os.path.dirname(self.path)}; wait for it to finish")

    def __enter__(self) -> "_Lock":
        if fcntl is None:
            return self._enter_without_flock()
        while True:
            handle = open(self.path, "a+", encoding="utf-8")
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                owner = handle.read().strip()
                handle.close()
                self._refuse(owner)
            try:
                same = os.fstat(handle.fileno()).st_ino == os.stat(self.path).st_ino
            except OSError:
                same = False
            if same:
                break
            handle.close()  # the holder removed the file between our open and our lock: take the new one
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle
        return self

    def _enter_without_flock(self) -> "_Lock":
        try:
            with open(self.path, encoding="utf-8") as handle:
                owner = int(handle.read().strip() or 0)
        except (OSError, ValueError):
            owner = 0
        if owner and owner != os.getpid() and _alive(owner):
            self._refuse(str(owner))
        with open(self.path, "w", encoding="utf-8") as handle:
            handle.write(str(os.getpid()))
        return self

    def __exit__(self, *exc) -> None:
        try:
            os.remove(self.path)  # while still locked, so no other run can hold a lock on a removed file
        except OSError:
            pass
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_temporary_files(folder: str) -> int:
    """Delete leftovers of writes killed mid-way (hidden ``.<name>.<random>.tmp*`` files); returns how many."""
    removed = 0
    for current, _, files in os.walk(folder):
        for name in files:
            if name.startswith(".") and ".tmp" in name and name != LOCK_NAME:
                os.remove(os.path.join(current, name))
                removed += 1
    return removed


def _pool_context():
    # fork: workers share the parent's imported modules (torch among them) instead of importing
    # them again, which costs seconds and hundreds of MB per worker under spawn.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork") if "fork" in methods else None


def _plan(index: DatasetIndex, manifest: Manifest, folder: str, sample_rate: int, report: PreprocessReport) -> list:
    """The jobs still to do; counts and records (in the manifest) the files already converted."""
    jobs = []
    for relative in index.relatives():
        source = index.source(relative)
        destination = processed_path(folder, relative, manifest.format)
        if manifest.usable(relative, destination, source):
            report.skipped += 1
            report.audio_seconds += manifest.files[relative]["frames"] / sample_rate
            continue
        stamp = source_stamp(source)
        if relative not in manifest.files and stamp is not None and os.path.exists(destination) \
                and os.stat(destination).st_mtime_ns >= stamp[1]:
            # Written by a run killed before it saved the manifest: the rename made it complete.
            try:
                info = audio_info(destination)
            except AudioReadError:
                info = None
            if info is not None and info.sample_rate == sample_rate and info.channels == 1:
                manifest.files[relative] = {"frames": info.frames, "size": os.stat(destination).st_size,
                                            "source_size": stamp[0], "source_mtime_ns": stamp[1]}
                manifest.failed.pop(relative, None)
                report.skipped += 1
                report.audio_seconds += info.frames / sample_rate
                continue
        jobs.append((relative, source, destination, sample_rate, manifest.format))
    return jobs


def _missing_first(jobs: list) -> tuple[list, list]:
    """``(missing, present)``: jobs whose source does not exist fail at once, without a worker."""
    missing = [job for job in jobs if not os.path.exists(job[1])]
    return missing, [job for job in jobs if os.path.exists(job[1])]


def _results(jobs: list, workers: int):
    """Yield ``(relative, result)`` as jobs finish: in this process, or in a pool with bounded queueing."""
    missing, jobs = _missing_first(jobs)
    for relative, *_ in missing:
        yield relative, {"status": "failed", "reason": "file not found"}
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            yield _convert_job(job)
        return
    yield from _pool_results(jobs, workers)


def _new_pool(workers: int) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_init_worker)


def _pool_results(jobs: list, workers: int):
    """:func:`_results` in worker processes; a worker that dies (killed for memory, a decoder crash) costs one file.

    A dead worker breaks the whole pool and fails every job in flight, the culprit among them.
    The pool is replaced and those jobs are retried one at a time: the one that breaks it again
    alone is the culprit and is reported failed; the others convert normally.
    """
    pool, queue, suspects = _new_pool(workers), deque(jobs), deque()
    pending: dict = {}  # future -> (job, alone)
    try:
        while queue or suspects or pending:
            if suspects:
                if not pending:
                    job = suspects.popleft()
                    pending[pool.submit(_convert_job, job)] = (job, True)
            else:
                # A few jobs per worker in flight: enough to keep them busy, never the whole list.
                while queue and len(pending) < 4 * workers:
                    job = queue.popleft()
                    pending[pool.submit(_convert_job, job)] = (job, False)
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                job, alone = pending.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    broken = True
                    if alone:
                        yield job[0], {"status": "failed", "reason": "the worker converting it died (out of memory, "
                                                                     "or the decoder crashed)"}
                    else:
                        suspects.append(job)
                    continue
                yield result
            if broken:
                suspects.extend(job for job, _ in pending.values())
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = _new_pool(workers)
    finally:
        # On an interruption, files being converted finish (workers ignore Ctrl-C); queued ones never start.
        pool.shutdown(wait=True, cancel_futures=True)


def convert_dataset(index: DatasetIndex, sample_rate: int, format_name: str = "wav", workers: int = 1,
                    progress: bool = True, save_every: float = SAVE_EVERY) -> PreprocessReport:
    """Convert every file the index lists, skipping those converted before; never stopped by a bad file.

    Args:
        index: The dataset's metadata (:func:`build_index` of its module).
        sample_rate: Target sample rate in Hz (the training ``--sample_rate``).
        format_name: ``"wav"`` or ``"flac"`` (see :data:`~clmr_lib.data.processed.FORMATS`).
        workers: Worker processes; 1 converts in this process.
        progress: Show a progress bar.
        save_every: Seconds between manifest saves during the run.

    Returns:
        The :class:`PreprocessReport`, also saved as ``report.json`` in the output folder. If the
        run is interrupted (KeyboardInterrupt), the manifest and the report (``interrupted``) are
        saved first and the interruption propagates.

    Raises:
        UserError: The output folder holds files of another format, is being written by another
            run, or cannot be written.
    """
    folder = processed_dir(index.root, sample_rate)
    os.makedirs(folder, exist_ok=True)
    started = time.perf_counter()
    report = PreprocessReport(index.name, index.root, folder, int(sample_rate), format_name,
                              listed=len(index.relatives()), workers=max(int(workers), 1))
    with _Lock(folder):
        removed = remove_temporary_files(folder)
        if removed:
            logger.warning("removed %d incomplete temporary files left by an interrupted run in %s", removed, folder)
        manifest = Manifest.load(folder) or Manifest(int(sample_rate), format_name)
        if manifest.format != format_name and manifest.files:
            raise UserError(f"{folder} holds files converted to {manifest.format.upper()}; pass --processed_format "
                            f"{manifest.format}, or delete that folder to convert to {format_name.upper()}")
        manifest.format = format_name
        jobs = _plan(index, manifest, folder, sample_rate, report)
        splits_of = index.splits_of()
        failures: dict[str, str] = {}
        last_save = time.monotonic()
        results = _results(jobs, report.workers)
        try:
            with tqdm(total=len(jobs), desc=f"converting {index.name}", unit="file", disable=not progress) as bar:
                for relative, result in results:
                    if result["status"] == "ok":
                        manifest.files[relative] = {k: result[k] for k in
                                                    ("frames", "size", "source_size", "source_mtime_ns")}
                        manifest.failed.pop(relative, None)
                        report.converted += 1
                        seconds = result["frames"] / sample_rate
                        report.converted_seconds += seconds
                        report.audio_seconds += seconds
                    else:
                        reason = result["reason"]
                        if reason == "file not found":
                            reason = f"listed in {index.metadata} but the file is missing"
                        failures[relative] = reason
                        manifest.failed[relative] = {"reason": reason, "source_size": result.get("source_size"),
                                                     "source_mtime_ns": result.get("source_mtime_ns")}
                        if manifest.files.pop(relative, None) is not None:
                            # An older conversion of a file that changed and now fails is stale.
                            stale = processed_path(folder, relative, format_name)
                            if os.path.exists(stale):
                                os.remove(stale)
                        bar.set_postfix(failed=len(failures), refresh=False)
                    bar.update()
                    if time.monotonic() - last_save > save_every:
                        manifest.save(folder)
                        last_save = time.monotonic()
        except KeyboardInterrupt:
            report.interrupted = True
            raise
        finally:
            results.close()  # lets files being converted finish; a rerun finds and records them
            manifest.save(folder)
            # In listing order, whatever order the workers finished in.
            report.failed = [{"path": index.source(r), "reason": failures[r], "splits": splits_of.get(r, [])}
                             for r in splits_of if r in failures]
            report.excluded = [{"path": str(path), "reason": str(reason)} for path, reason in index.problems]
            report.elapsed = time.perf_counter() - started
            report.save(report_path(folder))
    return report
