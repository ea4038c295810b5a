"""The embedded default dataset (``--dataset synthetic``): labelled music generated offline from a seed."""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from collections import Counter
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from clmr_lib.data.synth.layout import (FLAC_EVERY, SPLITS, TEMP_SUFFIX, assign_artists, assign_splits,
                                        atomic_write_bytes, metadata_csv, readme, stale_audio, write_piece)
from clmr_lib.data.synth.render import PEAK_DBFS
from clmr_lib.data.synth.styles import ARTISTS, GENRES, TAGS, TEMPO_CLASSES
from clmr_lib.errors import UserError

GENERATOR_VERSION = 1
# Keyword defaults of generate_synthetic (config keys synthetic_<name> override them).
SYNTHETIC_DEFAULTS = {"seed": 0, "num_pieces": 400, "seconds": 8.0, "sample_rate": 16000, "workers": 2}
_OUR_ENTRIES = {"audio", "metadata.csv", "README.md", "dataset.json"}

__all__ = ["ARTISTS", "GENRES", "GENERATOR_VERSION", "SYNTHETIC_DEFAULTS", "TAGS", "generate_synthetic", "main"]


def generation_params(seed: int, num_pieces: int, seconds: float, sample_rate: int) -> dict:
    """Every parameter the generated files depend on (the worker count and progress bar do not)."""
    return {
        "seed": int(seed),
        "num_pieces": int(num_pieces),
        "seconds": float(seconds),
        "sample_rate": int(sample_rate),
        "splits": dict(SPLITS),
        "flac_every": FLAC_EVERY,
        "peak_dbfs": PEAK_DBFS,
        "tempo_classes": {name: [low, high if high != float("inf") else None] for name, low, high in TEMPO_CLASSES},
        "artists": {slug: artist.genre for slug, artist in ARTISTS.items()},
    }


def _validate(num_pieces: int, seconds: float, sample_rate: int, workers: int) -> None:
    if int(num_pieces) < 1:
        raise UserError(f"num_pieces must be at least 1, got {num_pieces} (--num_pieces / synthetic_num_pieces)")
    if not 0 < float(seconds) <= 600:
        raise UserError(f"seconds must be in (0, 600], got {seconds} (--seconds / synthetic_seconds)")
    if int(sample_rate) < 8000:
        raise UserError(f"sample_rate must be at least 8000 Hz, got {sample_rate} "
                        "(--sample_rate / synthetic_sample_rate)")
    if int(workers) < 1:
        raise UserError(f"workers must be at least 1, got {workers} (--workers / synthetic_workers)")


def _existing(root: Path, params: dict) -> Optional[dict]:
    """The complete dataset already in ``root`` if it has ``params``; None if there is none."""
    info_path = root / "dataset.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text(encoding="utf-8"))
        if info.get("generator_version") == GENERATOR_VERSION and info.get("params") == params:
            return info
        raise UserError(f"{root} already holds a synthetic dataset made with other parameters or generator "
                        f"version ({info_path}); choose another root or delete that folder to regenerate")
    if root.is_dir():
        foreign = sorted(p.name for p in root.iterdir()
                         if p.name not in _OUR_ENTRIES and not p.name.endswith(TEMP_SUFFIX))
        if foreign:
            raise UserError(f"{root} is not empty ({', '.join(foreign[:3])}) and holds no synthetic dataset; "
                            "choose an empty or new folder as its root")
    return None


def _render_all(jobs: list, workers: int, progress: bool) -> list:
    """Metadata rows of all pieces in index order, rendered in ``workers`` processes."""
    rows = []
    with tqdm(total=len(jobs), desc="synthetic dataset", unit="piece", disable=not progress) as bar:
        if workers <= 1 or len(jobs) < 2:
            for job in jobs:
                rows.append(write_piece(job))
                bar.update()
            return rows
        # fork where available (as torch's DataLoader does): a spawned worker would re-import the
        # clmr_lib package and with it torch, seconds per worker; forked ones run numpy only.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(min(workers, len(jobs))) as pool:
            for row in pool.imap(write_piece, jobs, chunksize=4):
                rows.append(row)
                bar.update()
    return rows


def generate_synthetic(root: str, seed: int = 0, num_pieces: int = 400, seconds: float = 8.0,
                       sample_rate: int = 16000, workers: int = 2, progress: bool = True) -> dict:
    """Generate the synthetic dataset into ``root`` (or find it there already).

    Pieces are composed by artist personas of six genres and rendered with synthetic instruments
    (see :mod:`clmr_lib.data.synth`), labelled with tags, genre and artist, and written in the
    labelled-folder layout that :class:`~clmr_lib.data.labelled_folder.LabelledFolder` reads::

        audio/<artist>/<piece>.wav|flac   16-bit PCM, every 4th piece FLAC
        metadata.csv                      path,split,piece,tags,genre,artist,tempo_bpm,key,mode
        dataset.json                      parameters and tasks; written last, marks completion
        README.md                         what the folder holds and how it was made

    Each piece draws from its own generator seeded by (seed, index), so the files are
    byte-identical for the same parameters and library versions, whatever the number of workers.
    Every file is written atomically. If ``root`` already holds a complete dataset with the same
    parameters nothing is done; with other parameters a :class:`~clmr_lib.errors.UserError` is
    raised and nothing is overwritten (choose another root, or delete the folder to regenerate).
    A folder left by an interrupted run (no ``dataset.json``) is completed from scratch.

    Args:
        root: Dataset folder; created if missing. It must be empty, hold an interrupted run of
            this generator, or hold a complete dataset with the same parameters.
        seed: Seed of everything random.
        num_pieces: Number of pieces (one clip each).
        seconds: Clip length in seconds.
        sample_rate: Sample rate in Hz (at least 8000).
        workers: Rendering processes (the output does not depend on it).
        progress: Show a progress bar.

    Returns:
        The content of ``dataset.json``.

    Raises:
        UserError: Bad parameters, a folder holding other files, or a dataset generated with
            different parameters.
    """
    _validate(num_pieces, seconds, sample_rate, workers)
    root_path = Path(root)
    params = generation_params(seed, num_pieces, seconds, sample_rate)
    existing = _existing(root_path, params)
    if existing is not None:
        return existing
    root_path.mkdir(parents=True, exist_ok=True)
    artists = assign_artists(params["seed"], params["num_pieces"])
    splits = assign_splits(params["seed"], artists)
    jobs = [(str(root_path), params["seed"], i, artists[i], splits[i], params["seconds"], params["sample_rate"])
            for i in range(params["num_pieces"])]
    rows = _render_all(jobs, int(workers), progress)
    for stale in stale_audio(root_path, {row["path"] for row in rows}):
        stale.unlink()
    atomic_write_bytes(root_path / "metadata.csv", metadata_csv(rows))
    info = {
        "name": "synthetic",
        "generator_version": GENERATOR_VERSION,
        "seed": params["seed"],
        "sample_rate": params["sample_rate"],
        "params": params,
        "tasks": {
            "tags": {"type": "multilabel", "column": "tags", "classes": sorted(TAGS)},
            "genre": {"type": "multiclass", "column": "genre", "classes": sorted(GENRES)},
            "artist": {"type": "multiclass", "column": "artist", "classes": sorted(ARTISTS)},
        },
        "num_pieces": params["num_pieces"],
        "seconds": params["seconds"],
    }
    counts = {"tags": Counter(t for row in rows for t in row["tags"].split(";") if t),
              "artist": Counter(row["artist"] for row in rows)}
    atomic_write_bytes(root_path / "README.md", readme(info, counts).encode("utf-8"))
    # Last: its presence means the dataset is complete.
    atomic_write_bytes(root_path / "dataset.json", (json.dumps(info, indent=2) + "\n").encode("utf-8"))
    return info


def main(argv: Optional[list] = None) -> int:
    """Command line: ``python -m clmr_lib.data.synthetic --root DIR [--seed N ...]``."""
    parser = argparse.ArgumentParser(description="Generate the synthetic music dataset of clmr_lib.")
    parser.add_argument("--root", required=True, help="dataset folder to create")
    for name, default in SYNTHETIC_DEFAULTS.items():
        parser.add_argument(f"--{name}", type=type(default), default=default, help=f"default: {default}")
    parser.add_argument("--no_progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in SYNTHETIC_DEFAULTS}
    try:
        info = generate_synthetic(args.root, progress=not args.no_progress, **options)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{args.root}: {info['num_pieces']} pieces x {info['seconds']:g} s at {info['sample_rate']} Hz; "
          f"tasks: {', '.join(info['tasks'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
