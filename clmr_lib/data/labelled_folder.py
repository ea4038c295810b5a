"""A labelled folder: any audio files plus a ``metadata.csv`` of path, split and labels."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Optional

import numpy as np

from clmr_lib.data.report import SkipReport
from clmr_lib.data.standard import DatasetIndex, Entry, count_converted, locate_files
from clmr_lib.data.track import Track
from clmr_lib.errors import UserError

SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
               "test": "test"}
TAG_SEPARATOR = ";"
#: Key marking a row with more fields than the header (its values cannot be trusted to be in their columns).
MALFORMED = "__malformed__"


def read_metadata(root: Path, metadata: str = "metadata.csv") -> tuple[list[dict], dict]:
    """Read ``metadata.csv`` and the optional ``dataset.json`` task description of a folder."""
    csv_path = root / metadata
    if not csv_path.is_file():
        raise UserError(f"{csv_path} not found: a labelled folder needs a metadata CSV with columns "
                        "path, split and one or more label columns (--dataset_dir)")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            extra = row.pop(None, None)
            row = {key: value or "" for key, value in row.items()}  # missing trailing fields: empty
            if extra:
                row[MALFORMED] = (f"{len(reader.fieldnames) + len(extra)} fields where the header has "
                                  f"{len(reader.fieldnames)} (quote values that contain commas)")
            rows.append(row)
    if not rows or not {"path", "split"} <= set(reader.fieldnames or ()):
        raise UserError(f"{csv_path} must have a header with at least the columns 'path' and 'split'")
    info_path = root / "dataset.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    return rows, info


def infer_tasks(rows: list[dict]) -> dict:
    """Describe each label column: multi-label if any value lists several tags, else multi-class."""
    tasks = {}
    rows = [row for row in rows if MALFORMED not in row]
    for column in rows[0] if rows else ():
        if column in {"path", "split"}:
            continue
        values = [row[column] for row in rows if row[column]]
        multilabel = column == "tags" or any(TAG_SEPARATOR in v for v in values)
        classes = sorted({t.strip() for v in values for t in v.split(TAG_SEPARATOR) if t.strip()}) if multilabel \
            else sorted(set(values))
        tasks[column] = {"type": "multilabel" if multilabel else "multiclass", "column": column, "classes": classes}
    return tasks


def parse_label(value: str, task_type: str, index: dict):
    """A ``metadata.csv`` label cell as a class index or a multi-hot vector; None if it names an unknown class."""
    if task_type == "multilabel":
        tags = [t.strip() for t in value.split(TAG_SEPARATOR) if t.strip()]
        if any(t not in index for t in tags):
            return None
        label = np.zeros(len(index), dtype=np.float32)
        label[[index[t] for t in tags]] = 1.0
        return label
    return index.get(value.strip())


def metadata_index(root: str, task: str = "", name: str = "folder") -> tuple[DatasetIndex, dict]:
    """Read a labelled folder's ``metadata.csv`` (no audio is opened): its index and all its tasks.

    Rows that are malformed, name an unknown split or carry no valid label become the index's
    problems (reported as skipped, with their line). Paths inside the folder are kept relative to
    it; a path outside it (``../``, absolute) is kept as an absolute path.
    """
    root_path = Path(root).resolve()
    if not root_path.is_dir():
        raise UserError(f"dataset folder {root_path} does not exist; pass the folder holding metadata.csv "
                        "to --dataset_dir")
    rows, info = read_metadata(root_path)
    tasks = info.get("tasks") or infer_tasks(rows)
    if not tasks:
        raise UserError(f"{root_path / 'metadata.csv'} has no label column besides path and split")
    task = task or next(iter(tasks))
    if task not in tasks:
        raise UserError(f"unknown task '{task}' (--task) for {root_path}; choose one of: {', '.join(tasks)}")
    spec = tasks[task]
    classes = list(spec["classes"])
    column, positions = spec.get("column", task), {c: i for i, c in enumerate(classes)}
    entries, problems = [], []
    for line, row in enumerate(rows, start=2):
        split = SPLIT_NAMES.get(row["split"].strip().lower())
        path = (root_path / row["path"]).resolve()
        if MALFORMED in row:
            problems.append((str(path), f"metadata.csv line {line}: {row[MALFORMED]}"))
            continue
        if split is None:
            problems.append((str(path), f"metadata.csv line {line}: unknown split '{row['split']}'"))
            continue
        label = parse_label(row.get(column, ""), spec["type"], positions)
        if label is None:
            problems.append((str(path), f"metadata.csv line {line}: no valid '{column}' label"))
            continue
        relative = path.relative_to(root_path).as_posix() if path.is_relative_to(root_path) else path.as_posix()
        entries.append(Entry(split, relative, row["path"], label, row.get("piece") or None))
    index = DatasetIndex(name, str(root_path), task, spec["type"], classes, entries, "metadata.csv", problems)
    return index, tasks


def build_index(config: dict) -> DatasetIndex:
    """What ``preprocess.py --dataset folder`` converts: the files ``metadata.csv`` lists."""
    return metadata_index(config["dataset_dir"], str(config.get("task") or ""))[0]


class LabelledFolder:
    """Audio files listed in ``metadata.csv`` with their split and labels (registered as ``folder``).

    ``metadata.csv`` has a ``path`` column (relative to the folder), a ``split`` column (train,
    valid or test) and label columns: a single label per file, or several tags separated by ``;``.
    An optional ``dataset.json`` names each label column's type and class list (as the synthetic
    dataset writes it); otherwise they are inferred. Files that are missing, empty or unreadable
    are skipped and listed in :attr:`skipped`; every other file keeps its own label.

    Args:
        root: The folder holding ``metadata.csv``.
        task: Label column to use (default: the first task described).
        sample_rate: Target sample rate (to measure lengths).
        audio_length: Crop length; with ``pad_short`` false, shorter files are skipped.
        pad_short: Keep files shorter than a crop (they are zero-padded).
        workers: Threads for the header scan.
        progress: Show a progress bar while scanning.
        use_processed: Read the copies ``preprocess.py --dataset folder`` converted for this sample
            rate when complete (false: always the originals).

    Attributes:
        index: The metadata as a :class:`~clmr_lib.data.standard.DatasetIndex`.
        skipped: Files left out, with reasons.
        processed: How many files are read from converted copies.
    """

    name = "folder"

    def __init__(self, root: str, task: str = "", sample_rate: int = 22050, audio_length: int = 59049,
                 pad_short: bool = True, workers: int = 4, progress: bool = True, use_processed: bool = True):
        self.index, self.tasks = metadata_index(root, task, self.name)
        self.root = Path(self.index.root)
        self.task, self.task_type, self.class_names = self.index.task, self.index.task_type, self.index.class_names
        self.skipped = SkipReport(self.index.problems)
        usable = locate_files(self.index, sample_rate, 0 if pad_short else audio_length, self.skipped,
                              workers=workers, progress=progress, use_processed=use_processed)
        self.processed = count_converted(self.index, usable)
        self._tracks = {"train": [], "valid": [], "test": []}
        for entry in self.index.entries:
            if entry.relative in usable:
                path, info = usable[entry.relative]
                self._tracks[entry.split].append(Track(path, entry.track_id, entry.label, group=entry.group,
                                                       extra={"info": info}))

    def tracks(self, split: str) -> list[Track]:
        """Tracks of a split (``train``, ``valid`` or ``test``) with their labels."""
        key = SPLIT_NAMES.get(split)
        if key is None:
            raise UserError(f"unknown split '{split}'; use train, valid or test")
        return list(self._tracks[key])

    @classmethod
    def from_config(cls, config: dict, root: Optional[str] = None) -> "LabelledFolder":
        """Build from a configuration dict (``dataset_dir``, ``task``, ``sample_rate``, ...)."""
        return cls(root or config["dataset_dir"], task=config.get("task", ""), sample_rate=config["sample_rate"],
                   audio_length=config["audio_length"], pad_short=config.get("pad_short", True),
                   workers=max(int(config.get("workers", 0)), 4), progress=config.get("progress", True),
                   use_processed=config.get("use_processed", True))


def dataset_root(dataset_dir: str, name: str, marker: str) -> str:
    """The dataset folder: ``dataset_dir`` itself if it holds ``marker``, else ``dataset_dir/name``.

    CLMR keeps each dataset in a subfolder named after it under ``--dataset_dir`` (``./data``);
    pointing ``--dataset_dir`` straight at the dataset's own folder works too.
    """
    if os.path.exists(os.path.join(dataset_dir, marker)):
        return dataset_dir
    return os.path.join(dataset_dir, name)


def from_config(config: dict) -> LabelledFolder:
    """The registry's constructor."""
    return LabelledFolder.from_config(config)
