"""FMA (dataset ``fma``): the small or medium subset, official split, ``genre_top`` labels.

Defferrard et al. 2017. Layout, as distributed (``fma_metadata.zip`` + ``fma_small.zip`` or
``fma_medium.zip``)::

    <dataset_dir>/fma/                      (or --dataset_dir pointing at this folder)
        fma_metadata/tracks.csv             header rows: (group, field), then "track_id"
        fma_small/<first 3 digits>/<6-digit track id>.mp3      or fma_medium/ (holds small too)

``--fma_subset small``: 8,000 tracks, 8 balanced genres; ``medium``: 25,000 tracks (small
included, as FMA defines it), 16 unbalanced genres. Split from ``('set', 'split')``
(training / validation / test), label from ``('track', 'genre_top')``. Some listed files have no
audio (e.g. 099134, 108925, 133297) and some are shorter than 30 s: they are reported or padded
like any faulty file.
"""
from __future__ import annotations

import csv
import os

from clmr_lib.data.standard import DatasetIndex, Entry, StandardDataset, check_task, dataset_from_config, find_root
from clmr_lib.errors import UserError

NAME = "fma"
TRACKS = "fma_metadata/tracks.csv"
SUBSETS = {"small": ("small",), "medium": ("small", "medium")}
# Audio folders holding every track of a subset: larger subsets contain the smaller ones
# (fma_full is left out: its tracks are untrimmed, not the 30 s clips the subsets are made of).
AUDIO_FOLDERS = {"small": ("fma_small", "fma_medium", "fma_large"), "medium": ("fma_medium", "fma_large")}
SPLIT_NAMES = {"training": "train", "validation": "valid", "test": "test"}
COLUMNS = {"split": ("set", "split"), "subset": ("set", "subset"), "genre_top": ("track", "genre_top")}


def read_tracks(path: str) -> dict[str, dict[str, str]]:
    """Track id -> ``{"split", "subset", "genre_top"}`` from FMA's ``tracks.csv``.

    The file has two header rows (``group``, ``field``) and a third naming the index column, as
    ``pandas.read_csv(path, index_col=0, header=[0, 1])`` expects. Only the three columns needed
    are kept (the file holds ~106,000 tracks with free-text fields).
    """
    import pandas as pd

    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            groups, fields = next(reader, []), next(reader, [])
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot read {path} ({error}); download fma_metadata.zip again") from None
    positions = {}
    for key, column in COLUMNS.items():
        matches = [i for i, pair in enumerate(zip(groups, fields)) if pair == column]
        if not matches:
            raise UserError(f"{path} has no column {column}; it is not FMA's tracks.csv — download fma_metadata.zip "
                            "again")
        positions[key] = matches[0]
    # read_csv returns the used columns in file order, whatever the order of usecols: name them so.
    order = sorted(positions, key=positions.get)
    table = pd.read_csv(path, header=None, skiprows=2, usecols=[0, *positions.values()], dtype=str,
                        keep_default_na=False)
    table.columns = ["track_id", *order]
    table = table[table["track_id"].str.fullmatch(r"\d+")]
    return {track_id: dict(split=split, subset=subset, genre_top=genre)
            for track_id, split, subset, genre in table[["track_id", *COLUMNS]].itertuples(index=False, name=None)}


def _audio_folder(root: str, subset: str) -> str:
    for folder in AUDIO_FOLDERS[subset]:
        if os.path.isdir(os.path.join(root, folder)):
            return folder
    raise UserError(f"no {AUDIO_FOLDERS[subset][0]}/ folder in {root}; unzip fma_{subset}.zip there, pass the "
                    "folder holding it as --dataset_dir, or add --download to preprocess.py")


def build_index(config: dict) -> DatasetIndex:
    """The FMA subset's official split with ``genre_top`` labels (no audio is opened)."""
    check_task(config, NAME, "genre")
    subset = str(config.get("fma_subset", "small"))
    if subset not in SUBSETS:
        raise UserError(f"unknown --fma_subset '{subset}'; choose one of: {', '.join(SUBSETS)}")
    root = find_root(config["dataset_dir"], (NAME,), ("fma_metadata",),
                     "or download it: python preprocess.py --dataset fma --dataset_dir DIR --download")
    tracks_csv = os.path.join(root, *TRACKS.split("/"))
    if not os.path.isfile(tracks_csv):
        raise UserError(f"{tracks_csv} not found; unzip fma_metadata.zip in {root}")
    folder = _audio_folder(root, subset)
    rows = [(int(track_id), row) for track_id, row in read_tracks(tracks_csv).items()
            if row["subset"] in SUBSETS[subset]]
    if not rows:
        raise UserError(f"{tracks_csv} lists no track of the {subset} subset; it is not FMA's tracks.csv")
    genres = sorted({row["genre_top"] for _, row in rows if row["genre_top"]})
    index = {genre: i for i, genre in enumerate(genres)}
    entries, problems = [], []
    for number, row in sorted(rows):
        track_id = f"{number:06d}"
        relative = f"{folder}/{track_id[:3]}/{track_id}.mp3"
        split = SPLIT_NAMES.get(row["split"])
        if split is None or not row["genre_top"]:
            problems.append((os.path.join(root, relative),
                             f"tracks.csv: track {track_id} has no genre_top or an unknown split '{row['split']}'"))
            continue
        entries.append(Entry(split, relative, track_id, index[row["genre_top"]]))
    return DatasetIndex(NAME, root, "genre", "multiclass", genres, entries, "tracks.csv", problems,
                        f"{subset} subset")


# SHA-1 checksums published in the FMA README (github.com/mdeff/fma).
DOWNLOADS = {"metadata": ("fma_metadata.zip", "sha1:f0df49ffe5f2a6008d7dc83c6915b31835dfe733"),
             "small": ("fma_small.zip", "sha1:ade154f733639d52e35e32f5593efe5be76c6d70"),
             "medium": ("fma_medium.zip", "sha1:c67b69ea232021025fca9231fc1c7c1a063ab50b")}


def download_spec(config: dict):
    """What ``preprocess.py --download`` fetches: the metadata (342 MiB) and the subset's audio (7.2 / 22 GiB)."""
    from clmr_lib.preprocessing.download import Archive, Download, Remote

    subset = str(config.get("fma_subset", "small"))
    if subset not in SUBSETS:
        raise UserError(f"unknown --fma_subset '{subset}'; choose one of: {', '.join(SUBSETS)}")
    files = tuple(Remote(name, (f"https://os.unil.cloud.switch.ch/fma/{name}",), checksum)
                  for name, checksum in (DOWNLOADS["metadata"], DOWNLOADS[subset]))
    return Download(NAME, files, tuple(Archive((remote.name,)) for remote in files))


def from_config(config: dict) -> StandardDataset:
    """The registered ``fma`` dataset."""
    return dataset_from_config(build_index(config), config)
