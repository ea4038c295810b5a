"""MagnaTagATune (dataset ``magnatagatune``): top-50 tags, the Pons (default) or the Won split.

Law et al. 2009. Layout, as distributed (``mp3.zip.001``-``003`` + ``annotations_final.csv``)::

    <dataset_dir>/magnatagatune/            (or --dataset_dir pointing at this folder)
        annotations_final.csv               tab-separated: clip_id, 188 tag columns (0/1), mp3_path
        0/ ... 9/ a/ ... f/                 the clips, e.g. f/<artist>-<album>-<nr>-<title>-30-59.mp3
        binary.npy tags.npy train.npy valid.npy test.npy     (optional, Won's own files for won2020)

``--mtt_split pons2017`` (CLMR's default): Pons et al.'s split, made from ``annotations_final.csv``
by the shipped rule (``clmr_lib/data/splits/mtt_pons2017.json``) with the shipped 50 tags in
Pons's label order. If the folder also holds Pons's own ``train_gt_mtt.tsv``, ``val_gt_mtt.tsv``,
``test_gt_mtt.tsv`` (and ``index_mtt.tsv``), as CLMR downloaded them, those files are read
instead. ``--mtt_split won2020``: the split of Won et al. 2020 (minzwon/sota-music-tagging-models), which
is Lee et al.'s 2017 split: the same folders as Pons's, keeping the clips with at least one of the
50 tags and more than 29.1 s of audio, 15,244 / 1,529 / 4,332 clips, shipped as
``clmr_lib/data/splits/mtt_won2020.txt`` with the tag order of ``mtt_won2020_tags.txt``. If the
folder holds Won's five ``.npy`` files (``binary.npy``, ``tags.npy``, ``train.npy``, ``valid.npy``,
``test.npy``, read without unpickling), those are read instead. PR-AUC differs by about 10 points
between the Pons and Won splits: always name the split.
"""
from __future__ import annotations

import csv
import json
import os
import re

import numpy as np

from clmr_lib.data.standard import (DatasetIndex, Entry, StandardDataset, check_task, dataset_from_config,
                                    find_root, parse_label_list, read_split_file)
from clmr_lib.errors import UserError

NAME = "magnatagatune"
ANNOTATIONS = "annotations_final.csv"
MTT_SPLITS = ("pons2017", "won2020")
PONS_FILES = {"train": "train_gt_mtt.tsv", "valid": "val_gt_mtt.tsv", "test": "test_gt_mtt.tsv"}
WON_FILES = {"train": "train.npy", "valid": "valid.npy", "test": "test.npy"}
# Clips of one song share the mp3 name up to the clip's "-<start>-<end>" seconds.
_CLIP_SUFFIX = re.compile(r"-\d+-\d+\.mp3$")


def top50_tags() -> list[str]:
    """The 50 tags of the Pons split, in its label order (shipped list)."""
    return [line for line in read_split_file("mtt_top50_tags.txt").splitlines() if line]


def read_annotations(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of ``annotations_final.csv`` (tab-separated, values in double quotes)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle, delimiter="\t", quotechar='"')
            header = next(reader, [])
            rows = [row for row in reader if row]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot read {path} ({error}); download annotations_final.csv again") from None
    if not header or header[0] != "clip_id" or header[-1] != "mp3_path":
        raise UserError(f"{path} is not MagnaTagATune's annotations_final.csv (expected tab-separated columns "
                        "clip_id, the tags, mp3_path); download it again")
    return header, rows


def _song(mp3_path: str) -> str:
    return _CLIP_SUFFIX.sub("", mp3_path)


def _audio_prefix(root: str, mp3_paths: list[str]) -> str:
    """Folder under the root holding the 16 clip folders: the root itself, or ``mp3/`` or ``raw/``."""
    first = next((p.split("/")[0] for p in mp3_paths if "/" in p), "0")
    for prefix in ("", "mp3/", "raw/"):
        if os.path.isdir(os.path.join(root, prefix + first)):
            return prefix
    return ""


def _pons_rule() -> tuple[dict, dict]:
    """The shipped Pons rule: its spec and clip folder -> split (the won2020 split uses the same folders)."""
    spec = json.loads(read_split_file("mtt_pons2017.json"))
    return spec, {folder: split for split, folders in spec["folders"].items() for folder in folders}


def pons_entries(root: str, header: list[str], rows: list[list[str]], tags: list[str]) -> tuple[list, list]:
    """Entries of the Pons split from ``annotations_final.csv`` and the shipped rule."""
    spec, folder_split = _pons_rule()
    missing = [t for t in tags if t not in header]
    if missing:
        raise UserError(f"{os.path.join(root, ANNOTATIONS)} has no column for tag(s) {', '.join(missing[:3])}; "
                        "it is not the original annotations_final.csv — download it again")
    columns = [header.index(t) for t in tags]
    prefix = _audio_prefix(root, [row[-1] for row in rows])
    entries, problems = [], []
    for row in rows:
        clip_id, mp3_path = row[0], row[-1]
        if clip_id in spec["excluded_clip_ids"]:
            continue
        split = folder_split.get(mp3_path.split("/")[0]) if "/" in mp3_path else None
        if split is None or len(row) != len(header):
            problems.append((os.path.join(root, mp3_path or clip_id),
                             f"{ANNOTATIONS}: clip {clip_id} has no valid mp3_path or a wrong number of columns"))
            continue
        label = np.array([row[c] == "1" for c in columns], dtype=np.float32)
        entries.append(Entry(split, prefix + mp3_path, clip_id, label, _song(mp3_path)))
    return entries, problems


def _pons_tsv_folder(root: str) -> str:
    """Where Pons's own split files are, if the user has them: the root or ``processed_annotations/``."""
    for folder in (root, os.path.join(root, "processed_annotations")):
        if all(os.path.isfile(os.path.join(folder, name)) for name in PONS_FILES.values()):
            return folder
    return ""


def pons_tsv_entries(root: str, folder: str, rows: list[list[str]], tags: list[str]) -> tuple[list, list]:
    """Entries from Pons's ``*_gt_mtt.tsv`` files (``clip_id<TAB>[50 labels]``), as CLMR read them."""
    paths = {row[0]: row[-1] for row in rows}
    index_file = os.path.join(folder, "index_mtt.tsv")
    if os.path.isfile(index_file):
        with open(index_file, encoding="utf-8") as handle:
            paths.update(line.rstrip("\n").split("\t", 1) for line in handle if "\t" in line)
    prefix = _audio_prefix(root, list(paths.values()))
    entries, problems = [], []
    for split, name in PONS_FILES.items():
        with open(os.path.join(folder, name), encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                clip_id, _, text = line.rstrip("\n").partition("\t")
                label = parse_label_list(text)
                mp3_path = paths.get(clip_id)
                where = f"{name} line {number}"
                if label is None or label.shape != (len(tags),):
                    problems.append((os.path.join(root, mp3_path or clip_id), f"{where}: not {len(tags)} labels"))
                elif mp3_path is None:
                    problems.append((os.path.join(root, clip_id), f"{where}: clip {clip_id} is not in {ANNOTATIONS}"))
                else:
                    entries.append(Entry(split, prefix + mp3_path, clip_id, label, _song(mp3_path)))
    return entries, problems


def _load_npy(path: str) -> np.ndarray:
    """A NumPy file of plain numbers or strings; object arrays are refused (unpickling could run code)."""
    if not os.path.isfile(path):
        raise UserError(f"{path} not found: Won's own split files are binary.npy, tags.npy, train.npy, valid.npy "
                        f"and test.npy together next to {ANNOTATIONS}; add the missing one, or remove them all to "
                        "use the shipped won2020 split")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:
        if "allow_pickle" in str(error):
            raise UserError(f"{path} holds Python objects, which clmr_lib does not unpickle (it could run code); "
                            "save it as a string array: np.save(p, np.load(p, allow_pickle=True).astype(str))") \
                from None
        raise UserError(f"{path} is not a valid .npy file ({error}); download it again") from None


def won_clips() -> list[tuple[str, str]]:
    """``(split, mp3_path)`` of every clip of the shipped won2020 split, in list order."""
    folder_split = _pons_rule()[1]
    clips = []
    for line in read_split_file("mtt_won2020.txt").splitlines():
        if line and not line.startswith("#"):
            song, _, starts = line.partition("\t")
            split = folder_split[song.split("/")[0]]
            clips += [(split, f"{song}-{start}-{int(start) + 29}.mp3") for start in starts.split()]
    return clips


def won_tags() -> list[str]:
    """The 50 tags in the label order of Won et al.'s ``tags.npy`` (Lee et al.'s ``top50_tags.txt``)."""
    return [line for line in read_split_file("mtt_won2020_tags.txt").splitlines() if line]


def won_shipped_entries(root: str, header: list[str], rows: list[list[str]]) -> tuple[list, list, list]:
    """Entries of the shipped won2020 split, labelled from ``annotations_final.csv``."""
    tags = won_tags()
    missing = [t for t in tags if t not in header]
    if missing:
        raise UserError(f"{os.path.join(root, ANNOTATIONS)} has no column for tag(s) {', '.join(missing[:3])}; "
                        "it is not the original annotations_final.csv — download it again")
    columns = [header.index(t) for t in tags]
    by_path = {row[-1]: row for row in rows if len(row) == len(header)}
    prefix = _audio_prefix(root, list(by_path))
    entries, problems = [], []
    for split, mp3_path in won_clips():
        row = by_path.get(mp3_path)
        if row is None:
            problems.append((os.path.join(root, prefix + mp3_path),
                             f"in the won2020 split but without a valid row in {ANNOTATIONS}"))
            continue
        label = np.array([row[c] == "1" for c in columns], dtype=np.float32)
        entries.append(Entry(split, prefix + mp3_path, row[0], label, _song(mp3_path)))
    return entries, problems, tags


def _has_won_files(root: str) -> bool:
    return any(os.path.isfile(os.path.join(root, name)) for name in ("binary.npy", *WON_FILES.values()))


def won_entries(root: str, rows: list[list[str]]) -> tuple[list, list, list]:
    """Entries of Won et al.'s split: ``"<row><TAB><subdir>/<file>.mp3"`` strings, labels ``binary[row]``."""
    binary = _load_npy(os.path.join(root, "binary.npy"))
    tags = [str(t) for t in _load_npy(os.path.join(root, "tags.npy")).tolist()]
    if binary.ndim != 2 or binary.shape[1] != len(tags):
        raise UserError(f"{os.path.join(root, 'binary.npy')} has shape {binary.shape} but tags.npy names {len(tags)} "
                        "tags; download both again")
    prefix = _audio_prefix(root, [row[-1] for row in rows])
    entries, problems = [], []
    for split, name in WON_FILES.items():
        for item in _load_npy(os.path.join(root, name)).tolist():
            text = item.decode() if isinstance(item, bytes) else str(item)
            number, _, mp3_path = text.partition("\t")
            if not number.isdigit() or int(number) >= binary.shape[0] or not mp3_path:
                problems.append((os.path.join(root, mp3_path or text), f"{name}: malformed entry {text!r}"))
                continue
            row = int(number)
            clip_id = rows[row][0] if row < len(rows) else number
            entries.append(Entry(split, prefix + mp3_path, clip_id, binary[row].astype(np.float32), _song(mp3_path)))
    return entries, problems, tags


def build_index(config: dict) -> DatasetIndex:
    """Read MagnaTagATune's metadata and the chosen split (no audio is opened)."""
    check_task(config, NAME, "tags")
    split = str(config.get("mtt_split", "pons2017"))
    if split not in MTT_SPLITS:
        raise UserError(f"unknown --mtt_split '{split}'; choose pons2017 (Pons et al., CLMR's default) or won2020 "
                        "(Won et al.)")
    root = find_root(config["dataset_dir"], (NAME,), (ANNOTATIONS,),
                     "or download it: python preprocess.py --dataset magnatagatune --dataset_dir DIR --download")
    header, rows = read_annotations(os.path.join(root, ANNOTATIONS))
    metadata = ANNOTATIONS
    if split == "won2020" and _has_won_files(root):
        entries, problems, tags = won_entries(root, rows)
        metadata = "the won2020 split files"
    elif split == "won2020":
        entries, problems, tags = won_shipped_entries(root, header, rows)
        metadata = "the won2020 split"
    else:
        tags = top50_tags()
        tsv_folder = _pons_tsv_folder(root)
        if tsv_folder:
            entries, problems = pons_tsv_entries(root, tsv_folder, rows, tags)
            metadata = "the Pons *_gt_mtt.tsv files"
        else:
            entries, problems = pons_entries(root, header, rows, tags)
    return DatasetIndex(NAME, root, "tags", "multilabel", tags, entries, metadata, problems, f"{split} split")


def download_spec(config: dict):
    """What ``preprocess.py --download`` fetches: the three zip parts and the annotations.

    Checksums (MD5 of ``annotations_final.csv`` and of the concatenated ``mp3.zip``) are the ones
    used by public download scripts; the site publishes none.
    """
    from clmr_lib.preprocessing.download import Archive, Download, Remote

    mirrors = ("https://mirg.city.ac.uk/datasets/magnatagatune/", "http://mi.soi.city.ac.uk/datasets/magnatagatune/")
    parts = tuple(f"mp3.zip.00{i}" for i in (1, 2, 3))
    files = tuple(Remote(name, tuple(m + name for m in mirrors)) for name in parts)
    files += (Remote(ANNOTATIONS, tuple(m + ANNOTATIONS for m in mirrors), "md5:f04fa01752a8cc64f6e1ca142a0fef1d"),)
    return Download(NAME, files, (Archive(parts, "md5:f12add0eb4cd6c2a3ab7e4afaf7b7467"),))


def from_config(config: dict) -> StandardDataset:
    """The registered ``magnatagatune`` dataset."""
    return dataset_from_config(build_index(config), config)
