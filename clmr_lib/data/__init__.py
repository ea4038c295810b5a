"""Datasets: ``DATASETS`` maps a ``--dataset`` name to a constructor taking the config dict."""
from __future__ import annotations

import importlib

from clmr_lib.data.track import Track
from clmr_lib.errors import UserError


def _audio_folder(config: dict):
    from clmr_lib.data.audio_folder import AudioFolder

    return AudioFolder(config["dataset_dir"], sample_rate=config["sample_rate"], audio_length=config["audio_length"],
                       pad_short=config.get("pad_short", True), valid_fraction=float(config.get("valid_fraction", 0.0)),
                       workers=max(int(config.get("workers", 0)), 4), progress=config.get("progress", True))


def _labelled_folder(config: dict):
    from clmr_lib.data.labelled_folder import LabelledFolder

    return LabelledFolder.from_config(config)


def _synthetic(config: dict):
    from clmr_lib.data.synthetic_dataset import SyntheticDataset

    return SyntheticDataset.from_config(config)


def _standard(name: str):
    """Factory of a standard dataset module ``clmr_lib/data/<name>.py`` (imported on first use).

    ``factory.module`` names the module, whose ``build_index(config)`` preprocess.py converts.
    """
    module = f"clmr_lib.data.{name}"

    def factory(config: dict):
        return importlib.import_module(module).from_config(config)

    factory.module = module
    return factory


DATASETS = {
    "audio": _audio_folder,
    "folder": _labelled_folder,
    "synthetic": _synthetic,
    "magnatagatune": _standard("magnatagatune"),
    "gtzan": _standard("gtzan"),
    "fma": _standard("fma"),
    "artist20": _standard("artist20"),
    "msd": _standard("msd"),
}


def get_dataset(config: dict):
    """Build the dataset named by ``config["dataset"]``; unknown names get a one-line error."""
    name = config["dataset"]
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}' (--dataset); choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](config)


__all__ = ["DATASETS", "get_dataset", "Track"]
