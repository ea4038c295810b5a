"""artist20 (dataset ``artist20``): artist identification, album split, or the course layout.

Ellis 2007: 1,413 tracks, 20 artists x 6 albums, mono 16 kHz MP3. Two layouts
(``--artist20_layout auto`` picks ``course`` when ``train.json`` is present, else ``album``):

``album`` — the distribution::

    <dataset_dir>/artist20/                 (or --dataset_dir pointing at this folder)
        mp3s-32k/<artist>/<album>/<track>.mp3

  Album split: per artist, albums sorted by name; 3 train, 1 valid, 2 test (in that order; other
  album counts keep the 3:1:2 proportions). Songs of an album never straddle splits. A CSV given
  as ``--artist20_split_file`` (columns ``path,split``; ``path`` an album ``<artist>/<album>`` or a
  track ``<artist>/<album>/<track>.mp3``, relative to ``mp3s-32k``) overrides the split of what
  it lists.

``course`` — the common course variant::

    <dataset_dir>/artist20/
        train.json  val.json                lists of paths of train_val/<artist>/<album>/<track>.mp3
        train_val/<artist>/<album>/<track>.mp3
        test/<id>.mp3                       unlabelled: label None, track id = file name without extension

  Predictions for ``test/`` are keyed by that id (the course asks for each file's top-3 artists).
"""
from __future__ import annotations

import csv
import json
import os

from clmr_lib.data.audio_io import AUDIO_EXTENSIONS
from clmr_lib.data.standard import DatasetIndex, Entry, StandardDataset, check_task, dataset_from_config, find_root
from clmr_lib.errors import UserError

NAME = "artist20"
ALBUM_FOLDER = "mp3s-32k"
COURSE_FOLDER = "train_val"
LAYOUTS = ("auto", "album", "course")
SPLIT_NAMES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
               "test": "test"}


def _audio_files(folder: str) -> list[str]:
    """Audio files under ``folder``, relative to it with ``/`` separators, sorted; hidden ones skipped."""
    found = []
    for current, subfolders, files in os.walk(folder):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in files:
            if not name.startswith(".") and name.lower().endswith(AUDIO_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(current, name), folder).replace(os.sep, "/"))
    return sorted(found)


def album_split(albums: list[str]) -> dict[str, str]:
    """Split one artist's albums: sorted by name, 3:1:2 into train, valid, test (3/1/2 for six albums)."""
    albums = sorted(albums)
    n = len(albums)
    n_test = round(n * 2 / 6) if n >= 3 else 0
    n_valid = max(round(n / 6), 1) if n >= 3 else 0
    n_train = n - n_valid - n_test
    return {album: "train" if i < n_train else "valid" if i < n_train + n_valid else "test"
            for i, album in enumerate(albums)}


def _read_split_file(path: str) -> dict[str, str]:
    """``path -> split`` from a ``path,split`` CSV (album folders or track files)."""
    if not os.path.isfile(path):
        raise UserError(f"split file {path} does not exist (--artist20_split_file)")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or not {"path", "split"} <= set(rows[0]):
        raise UserError(f"{path} must be a CSV with columns path,split (--artist20_split_file)")
    out = {}
    for line, row in enumerate(rows, start=2):
        split = SPLIT_NAMES.get(row["split"].strip().lower())
        if split is None:
            raise UserError(f"{path} line {line}: unknown split '{row['split']}'; use train, valid or test")
        out[row["path"].strip().strip("/")] = split
    return out


def album_index(root: str, split_file: str) -> tuple[list, list, str]:
    """Entries of the distribution layout, split by album."""
    folder = os.path.join(root, ALBUM_FOLDER)
    files = [f for f in _audio_files(folder) if f.count("/") == 2]
    if not files:
        raise UserError(f"no <artist>/<album>/<track>.mp3 files in {folder}; pass the folder holding mp3s-32k/ as "
                        "--dataset_dir")
    artists = sorted({f.split("/")[0] for f in files})
    albums: dict[str, set] = {}
    for f in files:
        albums.setdefault(f.split("/")[0], set()).add(f.split("/")[1])
    splits = {f"{artist}/{album}": split for artist in artists
              for album, split in album_split(list(albums[artist])).items()}
    overrides = _read_split_file(split_file) if split_file else {}
    entries = []
    for f in files:
        artist, album, _ = f.split("/")
        group = f"{artist}/{album}"
        split = overrides.get(f, overrides.get(group, splits[group]))
        entries.append(Entry(split, f"{ALBUM_FOLDER}/{f}", os.path.splitext(f)[0], artists.index(artist), group))
    return entries, artists, f"{ALBUM_FOLDER}/"


def _course_list(root: str, name: str) -> list[str]:
    """Paths of ``train.json`` / ``val.json``, made relative to ``train_val/``."""
    path = os.path.join(root, name)
    try:
        with open(path, encoding="utf-8") as handle:
            items = json.load(handle)
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path} ({error}); it must be a JSON list of track paths") from None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise UserError(f"{path} must be a JSON list of track paths (train_val/<artist>/<album>/<track>.mp3)")
    out = []
    for item in items:
        parts = [p for p in item.replace("\\", "/").split("/") if p not in ("", ".")]
        if COURSE_FOLDER in parts:  # "./train_val/...", "train_val/..." or an absolute path through it
            parts = parts[len(parts) - parts[::-1].index(COURSE_FOLDER):]
        out.append("/".join(parts))
    return out


def course_index(root: str) -> tuple[list, list, list, str]:
    """Entries of the course layout: labelled train/valid from the JSON lists, unlabelled test folder."""
    lists = {"train": _course_list(root, "train.json"), "valid": _course_list(root, "val.json")}
    artists = sorted({p.split("/")[0] for paths in lists.values() for p in paths if "/" in p})
    entries, problems = [], []
    for split, paths in lists.items():
        for p in paths:
            if p.count("/") < 1:
                problems.append((os.path.join(root, COURSE_FOLDER, p),
                                 f"{'train' if split == 'train' else 'val'}.json: no <artist>/ folder in '{p}'"))
                continue
            artist = p.split("/")[0]
            album = p.split("/")[1] if p.count("/") >= 2 else None
            entries.append(Entry(split, f"{COURSE_FOLDER}/{p}", os.path.splitext(p)[0], artists.index(artist),
                                 f"{artist}/{album}" if album else None))
    test_folder = os.path.join(root, "test")
    for f in _audio_files(test_folder) if os.path.isdir(test_folder) else []:
        entries.append(Entry("test", f"test/{f}", os.path.splitext(f)[0], None))
    return entries, artists, problems, "train.json/val.json"


def build_index(config: dict) -> DatasetIndex:
    """artist20 in either layout (no audio is opened)."""
    check_task(config, NAME, "artist")
    layout = str(config.get("artist20_layout", "auto"))
    if layout not in LAYOUTS:
        raise UserError(f"unknown --artist20_layout '{layout}'; choose one of: {', '.join(LAYOUTS)}")
    dataset_dir = os.path.abspath(os.path.expanduser(str(config["dataset_dir"])))
    if os.path.basename(dataset_dir) == ALBUM_FOLDER:  # --dataset_dir points at mp3s-32k itself
        dataset_dir = os.path.dirname(dataset_dir)
    root = find_root(dataset_dir, (NAME,), (ALBUM_FOLDER, "train.json"),
                     "or get artist20 from LabROSA (it is not openly downloadable)")
    if layout == "auto":
        layout = "course" if os.path.isfile(os.path.join(root, "train.json")) else "album"
    problems = []
    if layout == "course":
        entries, artists, problems, metadata = course_index(root)
    else:
        entries, artists, metadata = album_index(root, str(config.get("artist20_split_file") or ""))
    variant = "course layout" if layout == "course" else ("album split" if not config.get("artist20_split_file")
                                                          else "split file")
    return DatasetIndex(NAME, root, "artist", "multiclass", artists, entries, metadata, problems, variant)


def from_config(config: dict) -> StandardDataset:
    """The registered ``artist20`` dataset."""
    return dataset_from_config(build_index(config), config)
