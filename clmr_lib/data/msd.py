"""Million Song Dataset tagging (dataset ``msd``): user-provided audio with CLMR's split and label files.

The audio is not openly distributed; bring your own 7digital clips. Layout (CLMR's
``million_song_dataset`` folder; the split files are those of Pons et al.'s musicnn-training, made
from the Choi et al. 2016 / Lee et al. 2017 split, 50 Last.fm tags)::

    <dataset_dir>/msd/ or <dataset_dir>/million_song_dataset/    (or --dataset_dir pointing at it)
        processed_annotations/              (or these files directly in the folder)
            train_gt_msd.tsv val_gt_msd.tsv test_gt_msd.tsv     <MSD id><TAB>[50 labels, 0/1]
            index_msd.tsv                   <MSD id><TAB><relative audio path>, e.g. A/A/A/TRAAAAK128F9318786.mp3
            output_labels_msd.txt           optional; 2nd line "MSD_LABELS = [...]" (default: the shipped list)
            MSD_id_to_7D_id.pkl             optional; MSD id -> 7digital id, as CLMR used it
        audio/                              the clips (or directly in the folder)

Audio path of a track: with ``MSD_id_to_7D_id.pkl``, the 7digital layout ``<d>/<d>/<7digital
id>.clip.mp3`` (first two digits as folders); otherwise the path in ``index_msd.tsv``. If that file
is missing, the same name with another audio extension (.wav, .flac, .ogg) is used when present.
The pickle is read without executing anything: only plain dicts, strings and numbers load.
"""
from __future__ import annotations

import ast
import os
import pickle

from clmr_lib.data.audio_io import AUDIO_EXTENSIONS
from clmr_lib.data.standard import (DatasetIndex, Entry, StandardDataset, check_task, dataset_from_config,
                                    find_root, parse_label_list, read_split_file)
from clmr_lib.errors import UserError

NAME = "msd"
GT_FILES = {"train": "train_gt_msd.tsv", "valid": "val_gt_msd.tsv", "test": "test_gt_msd.tsv"}
INDEX = "index_msd.tsv"
LABELS = "output_labels_msd.txt"
ID_MAP = "MSD_id_to_7D_id.pkl"


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles builtin containers, strings and numbers only; any class or function is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def read_id_map(path: str) -> dict:
    """CLMR's ``MSD_id_to_7D_id.pkl`` (a plain dict), loaded without running code."""
    try:
        with open(path, "rb") as handle:
            # latin1: the file was pickled by Python 2, whose str is bytes.
            mapping = _PlainUnpickler(handle, encoding="latin1").load()
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as error:
        raise UserError(f"cannot read {path} ({error}); it must be a plain dict of MSD id -> 7digital id") from None
    if not isinstance(mapping, dict):
        raise UserError(f"{path} does not hold a dict of MSD id -> 7digital id")
    return {str(k): str(v) for k, v in mapping.items()}


def read_labels(folder: str) -> list[str]:
    """Tag names from ``output_labels_msd.txt`` if present, else the shipped list (same order)."""
    path = os.path.join(folder, LABELS)
    text = open(path, encoding="utf-8").read() if os.path.isfile(path) else ""
    start = text.find("[")
    if start < 0:
        return [line for line in read_split_file("msd_top50_tags.txt").splitlines() if line]
    try:
        tags = ast.literal_eval(text[start:text.index("]", start) + 1])
    except (ValueError, SyntaxError):
        raise UserError(f"{path}: expected a line MSD_LABELS = ['tag', ...]; fix or delete the file") from None
    return [str(t) for t in tags]


def _read_tsv(path: str) -> list[tuple[int, str, str]]:
    with open(path, encoding="utf-8") as handle:
        return [(number, *line.rstrip("\n").split("\t", 1)) for number, line in enumerate(handle, start=1)
                if "\t" in line]


def _resolve(root: str, prefix: str, relative: str) -> str:
    """``relative`` under the audio folder; another audio extension of the same name if only that exists."""
    path = prefix + relative
    if os.path.exists(os.path.join(root, path)):
        return path
    stem = os.path.splitext(path)[0]
    for extension in AUDIO_EXTENSIONS:
        if os.path.exists(os.path.join(root, stem + extension)):
            return stem + extension
    return path


def build_index(config: dict) -> DatasetIndex:
    """MSD tagging split and labels from the user's files (no audio is opened)."""
    check_task(config, NAME, "tags")
    markers = ("processed_annotations", INDEX)
    root = find_root(config["dataset_dir"], (NAME, "million_song_dataset"), markers,
                     "with your MSD clips and CLMR's split files in it (see clmr_lib/data/msd.py)")
    folder = os.path.join(root, "processed_annotations")
    folder = folder if os.path.isdir(folder) else root
    for name in (INDEX, *GT_FILES.values()):
        if not os.path.isfile(os.path.join(folder, name)):
            raise UserError(f"{os.path.join(folder, name)} not found; the msd dataset needs {INDEX} and the "
                            f"{', '.join(GT_FILES.values())} split files (see clmr_lib/data/msd.py)")
    tags = read_labels(folder)
    id_map = read_id_map(os.path.join(folder, ID_MAP)) if os.path.isfile(os.path.join(folder, ID_MAP)) else None
    paths = {msd_id: path for _, msd_id, path in _read_tsv(os.path.join(folder, INDEX))}
    prefix = "audio/" if os.path.isdir(os.path.join(root, "audio")) else ""
    entries, problems = [], []
    for split, name in GT_FILES.items():
        for number, msd_id, text in _read_tsv(os.path.join(folder, name)):
            where = f"{name} line {number}"
            if id_map is not None:
                digital = id_map.get(msd_id)
                relative = f"{digital[0]}/{digital[1]}/{digital}.clip.mp3" if digital and len(digital) > 1 else None
            else:
                relative = paths.get(msd_id)
            label = parse_label_list(text)
            if relative is None:
                problems.append((os.path.join(root, prefix + msd_id), f"{where}: no audio path for {msd_id} in "
                                 f"{ID_MAP if id_map is not None else INDEX}"))
            elif label is None or label.shape != (len(tags),):
                problems.append((os.path.join(root, prefix + relative), f"{where}: not {len(tags)} labels"))
            else:
                entries.append(Entry(split, _resolve(root, prefix, relative), msd_id, label))
    return DatasetIndex(NAME, root, "tags", "multilabel", tags, entries, "the MSD split files", problems)


def from_config(config: dict) -> StandardDataset:
    """The registered ``msd`` dataset."""
    return dataset_from_config(build_index(config), config)
