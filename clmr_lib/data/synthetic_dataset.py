"""The registered ``synthetic`` dataset: generated on first use, then read as a labelled folder."""
from __future__ import annotations

import os
from typing import Optional

from clmr_lib.data.labelled_folder import LabelledFolder, dataset_root, metadata_index
from clmr_lib.data.standard import DatasetIndex


def synthetic_root(config: dict) -> str:
    """The generated dataset's folder (``<dataset_dir>/synthetic`` or ``dataset_dir``), generated if missing."""
    from clmr_lib.data.synthetic import SYNTHETIC_DEFAULTS, generate_synthetic

    root = dataset_root(config["dataset_dir"], "synthetic", "dataset.json")
    if not os.path.exists(os.path.join(root, "dataset.json")):
        options = {k: config[f"synthetic_{k}"] for k in SYNTHETIC_DEFAULTS if f"synthetic_{k}" in config}
        generate_synthetic(root, progress=config.get("progress", True), **options)
    return root


class SyntheticDataset(LabelledFolder):
    """The embedded default data (:mod:`clmr_lib.data.synthetic`) as a labelled folder.

    The dataset is generated under ``<dataset_dir>/synthetic`` (or ``dataset_dir`` itself when it
    already holds a generated ``dataset.json``) the first time it is used, offline and
    deterministically from ``synthetic_seed``. Tasks: ``tags`` (multi-label), ``genre``, ``artist``.
    """

    name = "synthetic"

    @classmethod
    def from_config(cls, config: dict, root: Optional[str] = None) -> "SyntheticDataset":
        """Generate the data if missing, then read it like any labelled folder."""
        return super().from_config(config, root=root or synthetic_root(config))


def build_index(config: dict) -> DatasetIndex:
    """What ``preprocess.py --dataset synthetic`` converts (e.g. to another ``--sample_rate``)."""
    return metadata_index(synthetic_root(config), str(config.get("task") or ""), "synthetic")[0]


def from_config(config: dict) -> SyntheticDataset:
    """The registry's constructor."""
    return SyntheticDataset.from_config(config)
