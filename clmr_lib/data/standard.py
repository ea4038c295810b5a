"""The standard datasets' common part: a metadata index of entries, read as checked, labelled tracks."""
from __future__ import annotations

import importlib.resources
import logging
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from clmr_lib.data.files import scan_audio_files
from clmr_lib.data.processed import MANIFEST_NAME, PROCESSED_DIR, Manifest, processed_dir, processed_path
from clmr_lib.data.report import SkipReport
from clmr_lib.data.track import Track
from clmr_lib.errors import UserError

logger = logging.getLogger(__name__)

SPLITS = ("train", "valid", "test")


@dataclass
class Entry:
    """One file a dataset's metadata lists in one split.

    Args:
        split: ``"train"``, ``"valid"`` or ``"test"``.
        relative: Path of the audio file relative to the dataset root, with ``/`` separators
            (absolute for a file outside it, which only a labelled folder's metadata can list).
        track_id: The dataset's own identifier (clip id, track id, file name).
        label: Class index, multi-hot float32 vector, or None (unlabelled test files).
        group: Grouping key that splits never cut through (song, album), if known.
    """

    split: str
    relative: str
    track_id: str
    label: object = None
    group: Optional[str] = None


@dataclass
class DatasetIndex:
    """Everything a dataset's metadata says, before any audio is opened.

    Preprocessing converts the files of :attr:`entries`; :class:`StandardDataset` checks them and
    serves them as tracks.

    Args:
        name: Registry name (``"gtzan"``).
        root: Absolute dataset folder; every ``Entry.relative`` is under it.
        task: Name of the label set (``"tags"``, ``"genre"``, ``"artist"``).
        task_type: ``"multilabel"`` or ``"multiclass"``.
        class_names: Label names; indices and multi-hot positions refer to this list.
        entries: The listed files, in metadata order.
        metadata: Name of the file listing them, for messages (``"annotations_final.csv"``).
        problems: ``(path, reason)`` for entries the metadata itself rules out (no label, unknown
            split); they are reported as skipped.
        variant: Which version of the benchmark this is (``"pons2017 split"``, ``"small subset"``),
            named next to every reported metric; empty when there is only one.
    """

    name: str
    root: str
    task: str
    task_type: str
    class_names: list
    entries: list
    metadata: str
    problems: list = field(default_factory=list)
    variant: str = ""

    def relatives(self) -> list[str]:
        """Every listed file once, in first-listed order (a file listed in two splits is converted once)."""
        return list(dict.fromkeys(entry.relative for entry in self.entries))

    def splits_of(self) -> dict[str, list[str]]:
        """Relative path -> the splits that list it."""
        out: dict[str, list[str]] = {}
        for entry in self.entries:
            out.setdefault(entry.relative, []).append(entry.split)
        return out

    def source(self, relative: str) -> str:
        """Absolute path of a listed file (``relative`` may be absolute for a file outside the root)."""
        return relative if os.path.isabs(relative) else os.path.join(self.root, *relative.split("/"))


def parse_label_list(text: str) -> Optional[np.ndarray]:
    """A label vector written as a list literal (``[0.0, 1.0, ...]``), or None if it is not one.

    Parsed as numbers, never evaluated; about 20x faster than ``ast.literal_eval`` on the
    240,000 lines of the MSD split files.
    """
    text = text.strip()
    if len(text) < 2 or text[0] != "[" or text[-1] != "]":
        return None
    try:
        return np.array([float(value) for value in text[1:-1].split(",")], dtype=np.float32)
    except ValueError:
        return None


def read_split_file(name: str) -> str:
    """Text of a split list shipped in ``clmr_lib/data/splits`` (see its README for sources)."""
    return (importlib.resources.files("clmr_lib.data") / "splits" / name).read_text(encoding="utf-8")


def find_root(dataset_dir: str, names: Sequence[str], markers: Sequence[str], flag_hint: str) -> str:
    """The dataset folder: ``dataset_dir`` itself or ``dataset_dir/<name>``, whichever holds a marker.

    CLMR keeps each dataset in a subfolder named after it under ``--dataset_dir`` (``./data``);
    pointing ``--dataset_dir`` at the dataset's own folder works too.

    Args:
        dataset_dir: ``--dataset_dir``.
        names: Subfolder names to try, in order (``("magnatagatune",)``).
        markers: Files or folders only the dataset's own folder holds (``("annotations_final.csv",)``).
        flag_hint: What else the error message suggests (how to get the dataset).

    Raises:
        UserError: No candidate folder holds a marker.
    """
    dataset_dir = os.path.abspath(os.path.expanduser(str(dataset_dir)))
    candidates = [dataset_dir] + [os.path.join(dataset_dir, name) for name in names]
    for folder in candidates:
        if any(os.path.exists(os.path.join(folder, marker)) for marker in markers):
            return folder
    looked = " or ".join(os.path.join(c, markers[0]) for c in candidates)
    raise UserError(f"dataset not found: no {looked}; pass the folder that holds it as --dataset_dir"
                    + (f", {flag_hint}" if flag_hint else ""))


def check_task(config: dict, name: str, task: str) -> None:
    """Refuse a ``--task`` the dataset does not have (each standard dataset has one label set)."""
    wanted = str(config.get("task") or "")
    if wanted and wanted != task:
        raise UserError(f"dataset '{name}' has one task, '{task}'; drop --task {wanted} or pass --task {task}")


def _other_rates(root: str, sample_rate: int) -> list[str]:
    """Sample rates other than ``sample_rate`` that ``preprocess.py`` converted ``root`` to."""
    parent = os.path.join(root, PROCESSED_DIR)
    try:
        names = sorted(os.listdir(parent))
    except OSError:
        return []
    return [name for name in names if name.isdigit() and int(name) != sample_rate
            and os.path.isfile(os.path.join(parent, name, MANIFEST_NAME))]


def _converted(index: DatasetIndex, sample_rate: int, min_samples: int, skipped: SkipReport):
    """Split the listed files into those with a complete converted copy and those to check."""
    folder = processed_dir(index.root, sample_rate)
    manifest = Manifest.load(folder)
    relatives = index.relatives()
    if manifest is None or manifest.sample_rate != sample_rate:
        other = _other_rates(index.root, sample_rate)
        if other:
            logger.warning("%s has files converted for %s Hz but not for --sample_rate %d: reading the originals; "
                           "run preprocess.py --sample_rate %d to convert them", index.root, " and ".join(other),
                           sample_rate, sample_rate)
        return {}, relatives
    usable, to_scan = {}, []
    for relative in relatives:
        converted = processed_path(folder, relative, manifest.format)
        failure = manifest.failure(relative, index.source(relative))
        if failure is not None:
            skipped.add(index.source(relative), failure)
        elif manifest.usable(relative, converted, index.source(relative)):
            info = manifest.info(relative)
            if info.frames < min_samples:
                skipped.add(index.source(relative),
                            f"too short: {info.duration:.2f} s < {min_samples / sample_rate:.2f} s crop")
                continue
            usable[relative] = (converted, info)
        else:
            to_scan.append(relative)
    if to_scan and usable:
        logger.warning("%d of %d files of %s have no complete converted copy for %d Hz and are read from the "
                       "originals; rerun preprocess.py to convert them", len(to_scan), len(relatives), index.name,
                       sample_rate)
    return usable, to_scan


def locate_files(index: DatasetIndex, sample_rate: int, min_samples: int, skipped: SkipReport, workers: int = 4,
                 progress: bool = True, use_processed: bool = True) -> dict:
    """Where each listed file is read from, and its length; the unusable ones go to ``skipped``.

    A file is read from its converted copy when ``preprocess.py`` made a complete one for this
    sample rate (``<root>/processed/<rate>``; lengths come from the manifest, so this costs one
    ``stat`` per file), otherwise from the original, whose header is checked in parallel
    (:func:`~clmr_lib.data.files.scan_audio_files`). Files that are missing, empty, undecodable,
    failed to convert or (with a positive ``min_samples``) shorter than a crop are reported with
    their reason.

    Args:
        index: The dataset's metadata.
        sample_rate: Training sample rate (selects the converted files and measures lengths).
        min_samples: Files shorter than this many samples are skipped (0: keep all).
        skipped: Report the unusable files are added to (paths of the originals).
        workers: Threads for the header check of unconverted files.
        progress: Show a progress bar during that check.
        use_processed: Read converted files when present (false: always the originals).

    Returns:
        Relative path -> ``(path to read, AudioInfo)`` for every usable file.
    """
    usable, to_scan = _converted(index, sample_rate, min_samples, skipped) if use_processed \
        else ({}, index.relatives())
    scanned, report = scan_audio_files([index.source(r) for r in to_scan], sample_rate, min_samples,
                                       workers=workers, progress=progress)
    for path, reason in report:
        if reason == "file not found":
            reason = f"listed in {index.metadata} but the file is missing"
        skipped.add(path, reason)
    by_path = dict(scanned)
    for relative in to_scan:
        source = index.source(relative)
        if source in by_path:
            usable[relative] = (source, by_path[source])
    return usable


def count_converted(index: DatasetIndex, usable: dict) -> int:
    """How many of the files :func:`locate_files` found are read from converted copies."""
    return sum(path != index.source(relative) for relative, (path, _) in usable.items())


class StandardDataset:
    """Tracks of a :class:`DatasetIndex`, checked and labelled, split by the index.

    Files are found by :func:`locate_files` (converted copies when complete, else the originals,
    checked). A file that is missing, empty, undecodable or (with ``pad_short`` false) shorter than
    a crop is left out of *every* split that lists it and reported in :attr:`skipped` with its
    reason; the other entries keep their own labels.

    Args:
        index: The dataset's metadata.
        sample_rate: Training sample rate (selects the converted files and measures lengths).
        audio_length: Crop length in samples; with ``pad_short`` false, shorter files are skipped.
        pad_short: Keep files shorter than a crop (crops are zero-padded).
        workers: Threads for the header check of unconverted files.
        progress: Show a progress bar during that check.
        use_processed: Read converted files when present (false: always the originals).

    Attributes:
        name, root, task, task_type, class_names, variant: As in the index.
        skipped: Files left out, with reasons (paths of the original files).
        processed: How many distinct files are read from converted copies.
    """

    def __init__(self, index: DatasetIndex, sample_rate: int = 22050, audio_length: int = 59049,
                 pad_short: bool = True, workers: int = 4, progress: bool = True, use_processed: bool = True):
        self.name, self.root, self.task, self.variant = index.name, index.root, index.task, index.variant
        self.task_type, self.class_names = index.task_type, list(index.class_names)
        self.sample_rate, self.audio_length = int(sample_rate), int(audio_length)
        self.skipped = SkipReport(index.problems)
        usable = locate_files(index, self.sample_rate, 0 if pad_short else self.audio_length, self.skipped,
                              workers=workers, progress=progress, use_processed=use_processed)
        self.processed = count_converted(index, usable)
        self._tracks = {split: [] for split in SPLITS}
        # Equal labels and lengths share one object: with 100,000s of tracks the index is most of
        # what every DataLoader worker copies (measured: ~1 KB per track before sharing).
        shared: dict = {}
        for entry in index.entries:
            found = usable.get(entry.relative)
            if found is None:
                continue
            path, info = found
            label = entry.label
            if isinstance(label, np.ndarray):
                label = shared.setdefault(label.tobytes(), label)
            info = shared.setdefault(info, info)
            self._tracks[entry.split].append(Track(path=path, track_id=entry.track_id, label=label,
                                                   group=entry.group, extra={"info": info}))
        if self.skipped:
            logger.warning("%s", self.skipped.summary())
        if not any(self._tracks.values()):
            first_path, first_reason = self.skipped.items()[0] if self.skipped else (index.root, "nothing listed")
            raise UserError(f"none of the {len(index.relatives())} files of dataset '{index.name}' in {index.root} "
                            f"can be used (e.g. {first_path}: {first_reason}); check --dataset_dir")

    def tracks(self, split: str) -> list[Track]:
        """The tracks of ``split`` (``"train"``, ``"valid"`` or ``"test"``) in metadata order.

        Raises:
            UserError: Unknown split name.
        """
        if split not in SPLITS:
            raise UserError(f"unknown split '{split}'; use one of: {', '.join(SPLITS)}")
        return list(self._tracks[split])

    def __repr__(self) -> str:
        counts = ", ".join(f"{s} {len(self._tracks[s])}" for s in SPLITS)
        return f"{type(self).__name__}({self.name!r}, {self.root!r}: {counts}; {len(self.skipped)} skipped)"


def dataset_from_config(index: DatasetIndex, config: dict) -> StandardDataset:
    """Build a :class:`StandardDataset` with the config's sample rate, crop length and switches."""
    return StandardDataset(index, sample_rate=config["sample_rate"], audio_length=config["audio_length"],
                           pad_short=config.get("pad_short", True), workers=max(int(config.get("workers", 0)), 4),
                           progress=config.get("progress", True), use_processed=config.get("use_processed", True))
