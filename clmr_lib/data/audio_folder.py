"""A folder of unlabelled audio files (dataset ``audio``): every file under it, a stable hold-out split."""
from __future__ import annotations

import hashlib
import logging
import os

from clmr_lib.data.files import find_audio_files, scan_audio_files  # noqa: F401 (re-exported)
from clmr_lib.data.report import SkipReport
from clmr_lib.data.standard import DatasetIndex, Entry, count_converted, locate_files
from clmr_lib.data.track import Track
from clmr_lib.errors import UserError

logger = logging.getLogger(__name__)
NAME = "audio"

SPLITS = ("train", "valid", "test")


def _holdout_score(track_id: str) -> float:
    """A stable number in [0, 1) for a relative path: the same on every machine and Python run."""
    digest = hashlib.sha256(track_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def folder_index(root: str, valid_fraction: float = 0.0) -> DatasetIndex:
    """The index of every audio file under ``root`` (:func:`find_audio_files`), unlabelled.

    With ``valid_fraction`` > 0 a file is held out (listed as ``"valid"`` and ``"test"``) when a
    hash of its relative path falls below ``valid_fraction``; every other file is ``"train"``.
    """
    if not 0.0 <= float(valid_fraction) < 1.0:
        raise UserError(f"valid_fraction must be in [0, 1), got {valid_fraction} (--valid_fraction)")
    root = os.path.abspath(os.path.expanduser(str(root)))
    entries = []
    for path in find_audio_files(root):
        relative = os.path.relpath(path, root).replace(os.sep, "/")
        if valid_fraction > 0 and _holdout_score(relative) < valid_fraction:
            entries += [Entry("valid", relative, relative), Entry("test", relative, relative)]
        else:
            entries.append(Entry("train", relative, relative))
    return DatasetIndex(NAME, root, "", None, [], entries, "the folder listing")


def build_index(config: dict) -> DatasetIndex:
    """What ``preprocess.py --dataset audio`` converts: every audio file under ``--dataset_dir``."""
    return folder_index(config["dataset_dir"], float(config.get("valid_fraction", 0.0)))


class AudioFolder:
    """Every audio file under a folder, unlabelled: CLMR's ``audio`` dataset for pretraining.

    The folder is listed with :func:`find_audio_files`. A file is read from its converted copy when
    ``preprocess.py --dataset audio`` made a complete one for this sample rate (mono WAV in
    ``processed/<rate>/``: faster crops than MP3 and no resampling); otherwise its header is
    checked with :func:`scan_audio_files`. Unreadable files (and, with ``pad_short`` false, files
    shorter than one crop) are left out and listed in :attr:`skipped`.

    Splits: with ``valid_fraction`` > 0, a file goes to ``"valid"`` when a hash of its relative
    path falls below ``valid_fraction``. The choice depends on the path only, so it is the same on
    every run and machine, and adding or removing other files never moves a file between splits.
    ``"test"`` returns the same held-out files as ``"valid"`` (an unlabelled folder has no test set
    of its own; held-out audio is what any test-time check of a pretrained encoder needs), so
    both are empty when ``valid_fraction`` is 0.

    Args:
        root: The folder.
        sample_rate: Training sample rate in Hz (lengths are measured at it).
        audio_length: Crop length in samples at ``sample_rate``.
        pad_short: Keep files shorter than a crop (the reader zero-pads them); if false they are
            skipped and reported.
        valid_fraction: Fraction of files held out for validation, in [0, 1).
        workers: Threads for the header scan.
        progress: Show a progress bar during the scan.
        use_processed: Read converted copies when present (false: always the originals).

    Attributes:
        task_type: ``None`` (no labels).
        class_names: ``[]``.
        skipped: The files left out, with reasons.
        root: Absolute path of the folder.
        processed: How many files are read from converted copies.
    """

    task_type = None

    def __init__(self, root: str, sample_rate: int = 22050, audio_length: int = 59049, pad_short: bool = True,
                 valid_fraction: float = 0.0, workers: int = 4, progress: bool = True, use_processed: bool = True):
        if int(sample_rate) <= 0:
            raise UserError(f"sample_rate must be a positive number of Hz, got {sample_rate} (--sample_rate)")
        if int(audio_length) <= 0:
            raise UserError(f"audio_length must be a positive number of samples, got {audio_length} (--audio_length)")
        self.class_names: list[str] = []
        self.root = os.path.abspath(root)
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        self.pad_short, self.valid_fraction = bool(pad_short), float(valid_fraction)
        index = folder_index(self.root, self.valid_fraction)
        self.skipped = SkipReport()
        usable = locate_files(index, self.sample_rate, 0 if pad_short else self.audio_length, self.skipped,
                              workers=workers, progress=progress, use_processed=use_processed)
        if self.skipped:
            logger.warning("%s", self.skipped.summary())
        if not usable:
            first_path, first_reason = self.skipped.items()[0]
            raise UserError(f"none of the {len(index.relatives())} audio files in {self.root} can be used (e.g. "
                            f"{first_path}: {first_reason}); fix or replace the files"
                            + ("" if pad_short else ", or set --pad_short true to keep short files"))
        self.processed = count_converted(index, usable)
        self._entries = [(*usable[e.relative], e.relative, e.split) for e in index.entries
                         if e.relative in usable and e.split != "test"]

    def tracks(self, split: str) -> list[Track]:
        """The tracks of ``split`` (``"train"``, ``"valid"`` or ``"test"``), in path order.

        Args:
            split: Which split.

        Returns:
            New :class:`Track` objects: ``label`` None, ``track_id`` the path relative to the root
            with ``/`` separators, ``extra["info"]`` the file's :class:`AudioInfo`.

        Raises:
            UserError: Unknown split name.
        """
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; use one of: {', '.join(SPLITS)}")
        wanted = "train" if split == "train" else "valid"
        return [Track(path=path, track_id=track_id, label=None, extra={"info": info})
                for path, info, track_id, assigned in self._entries if assigned == wanted]

    def __repr__(self) -> str:
        return (f"AudioFolder({self.root!r}, {len(self._entries)} files, {len(self.skipped)} skipped, "
                f"valid_fraction={self.valid_fraction})")

    @classmethod
    def from_config(cls, config: dict) -> "AudioFolder":
        """Build from a configuration dict (``dataset_dir``, ``sample_rate``, ``valid_fraction``, ...)."""
        return cls(config["dataset_dir"], sample_rate=config["sample_rate"], audio_length=config["audio_length"],
                   pad_short=config.get("pad_short", True), valid_fraction=float(config.get("valid_fraction", 0.0)),
                   workers=max(int(config.get("workers", 0)), 4), progress=config.get("progress", True),
                   use_processed=config.get("use_processed", True))


def from_config(config: dict) -> AudioFolder:
    """The registry's constructor."""
    return AudioFolder.from_config(config)
