"""Datasets: ``DATASETS`` maps a ``--dataset`` name to a constructor taking the config dict."""
from __future__ import annotations

import importlib

from clmr_lib.data.track import Track
from clmr_lib.errors import UserError


def _registered(module: str):
    """Factory of a dataset module ``clmr_lib/data/<module>.py`` (imported on first use).

    The module has ``from_config(config)``, the dataset, and ``build_index(config)``, its metadata
    as a :class:`~clmr_lib.data.standard.DatasetIndex`, which ``preprocess.py`` converts;
    ``factory.module`` names it.
    """
    module = f"clmr_lib.data.{module}"

    def factory(config: dict):
        return importlib.import_module(module).from_config(config)

    factory.module = module
    return factory


DATASETS = {
    "audio": _registered("audio_folder"),
    "folder": _registered("labelled_folder"),
    "synthetic": _registered("synthetic_dataset"),
    "magnatagatune": _registered("magnatagatune"),
    "gtzan": _registered("gtzan"),
    "fma": _registered("fma"),
    "artist20": _registered("artist20"),
    "msd": _registered("msd"),
}


def get_dataset(config: dict):
    """Build the dataset named by ``config["dataset"]``; unknown names get a one-line error."""
    name = config["dataset"]
    if name not in DATASETS:
        raise UserError(f"unknown dataset '{name}' (--dataset); choose one of: {', '.join(sorted(DATASETS))}")
    return DATASETS[name](config)


__all__ = ["DATASETS", "get_dataset", "Track"]
