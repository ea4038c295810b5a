"""GTZAN (dataset ``gtzan``): 10 genres, on the fault-filtered split of Kereliuk, Sturm and Larsen.

Tzanetakis and Cook 2002. Layout, as distributed (``genres.tar.gz``; .au files) or as the common
re-packaging with .wav files::

    <dataset_dir>/gtzan/                    (or --dataset_dir pointing at this folder)
        genres/<genre>/<genre>.000NN.au     or .wav; genres_original/ and Data/genres_original/ work too

The split is the fault-filtered one (443 / 197 / 290 clips; repetitions, distortions and
mislabellings of Sturm 2013 removed) shipped in ``clmr_lib/data/splits/gtzan_filtered.csv``; report
results on it. ``jazz.00054`` is unreadable by some decoders: it is then skipped and reported.
"""
from __future__ import annotations

import csv
import io
import os

from clmr_lib.data.standard import (DatasetIndex, Entry, StandardDataset, check_task, dataset_from_config,
                                    find_root, read_split_file)
from clmr_lib.errors import UserError

NAME = "gtzan"
GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
GENRE_FOLDERS = ("genres", "genres_original", "Data/genres_original")
EXTENSIONS = (".wav", ".au")


def filtered_split() -> list[tuple[str, str]]:
    """``(track_id, split)`` pairs of the fault-filtered split, in the shipped order."""
    reader = csv.DictReader(io.StringIO(read_split_file("gtzan_filtered.csv")))
    return [(row["track_id"], row["split"]) for row in reader]


def _genre_folder(root: str) -> str:
    for folder in GENRE_FOLDERS:
        if os.path.isdir(os.path.join(root, folder)):
            return folder
    raise UserError(f"no GTZAN genre folders in {root} (expected genres/<genre>/<genre>.000NN.wav); pass the "
                    "folder holding genres/ as --dataset_dir, or add --download to preprocess.py")


def _relative(root: str, folder: str, track_id: str) -> str:
    """The clip's file: .wav if present, else .au (the original archive's format), else the .wav name."""
    genre = track_id.split(".")[0]
    for extension in EXTENSIONS:
        relative = f"{folder}/{genre}/{track_id}{extension}"
        if os.path.exists(os.path.join(root, relative)):
            return relative
    return f"{folder}/{genre}/{track_id}{EXTENSIONS[0]}"


def build_index(config: dict) -> DatasetIndex:
    """GTZAN's fault-filtered split with genre labels (no audio is opened)."""
    check_task(config, NAME, "genre")
    dataset_dir = os.path.abspath(os.path.expanduser(str(config["dataset_dir"])))
    if os.path.isdir(os.path.join(dataset_dir, GENRES[0])):
        # --dataset_dir points at the genres folder itself.
        root, folder = os.path.dirname(dataset_dir), os.path.basename(dataset_dir)
        return _index(root, folder)
    root = find_root(config["dataset_dir"], (NAME,), GENRE_FOLDERS,
                     "or download it: python preprocess.py --dataset gtzan --dataset_dir DIR --download")
    return _index(root, _genre_folder(root))


def _index(root: str, folder: str) -> DatasetIndex:
    index = {genre: i for i, genre in enumerate(GENRES)}
    entries = [Entry(split, _relative(root, folder, track_id), track_id, index[track_id.split(".")[0]])
               for track_id, split in filtered_split()]
    return DatasetIndex(NAME, root, "genre", "multiclass", list(GENRES), entries, "the GTZAN filtered split",
                        variant="fault-filtered split")


def download_spec(config: dict):
    """What ``preprocess.py --download`` fetches: ``genres.tar.gz`` (SHA-256 as in torchaudio).

    The original host has been unreachable since 2022; a copy of the same archive on the Hugging
    Face hub is tried next (the checksum guarantees it is the same file).
    """
    from clmr_lib.preprocessing.download import Archive, Download, Remote

    urls = ("http://opihi.cs.uvic.ca/sound/genres.tar.gz",
            "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz")
    archive = Remote("genres.tar.gz", urls, "sha256:24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6")
    return Download(NAME, (archive,), (Archive(("genres.tar.gz",)),))


def from_config(config: dict) -> StandardDataset:
    """The registered ``gtzan`` dataset."""
    return dataset_from_config(build_index(config), config)
