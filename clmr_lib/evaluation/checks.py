"""Linear evaluation settings checked before any encoder runs: one-line errors naming the flag and the fix."""
from __future__ import annotations

import os
from pathlib import Path

from clmr_lib.data import DATASETS, get_dataset
from clmr_lib.errors import UserError
from clmr_lib.evaluation.embeddings import chunk_hop
from clmr_lib.evaluation.linear_evaluation import cache_dir, encoder_names, probe_names
from clmr_lib.training.checks import _number
from clmr_lib.training.trainer import devices_for
from clmr_lib.utils.precision import check_precision


def validate_evaluation(config: dict) -> None:
    """Refuse settings that cannot work, before checkpoints are loaded, data scanned or embeddings extracted.

    Checks the dataset name and folder, that there is an encoder to evaluate, the probe and batch
    settings, ``--chunk_hop``, ``--gpus`` against this machine and that the results folder can be
    written (creating nothing). Checkpoint files are checked when they are loaded, which comes
    before any data are read too.

    Args:
        config: The merged configuration of ``linear_evaluation.py``.

    Raises:
        UserError: The first problem found, naming the flag and a value that works.
    """
    if config["dataset"] not in DATASETS:
        get_dataset(config)  # raises the registry's one-line error, listing the datasets
    if not str(config.get("dataset_dir", "")).strip():
        raise UserError("--dataset_dir is empty; pass the folder that holds the dataset")
    encoder_names(config)
    probe_names(config)
    _number(config, "finetuner_batch_size", int, 1, " (CLMR: 256)")
    _number(config, "finetuner_max_epochs", int, 1, " (CLMR: 200)")
    if _number(config, "finetuner_learning_rate", float) <= 0:
        raise UserError(f"--finetuner_learning_rate {config['finetuner_learning_rate']} must be positive; CLMR uses "
                        "0.001")
    _number(config, "embedding_batch_size", int, 1, " (default 64)")
    _number(config, "sample_rate", int, 1, " (Hz; CLMR: 22050)")
    _number(config, "audio_length", int, 1, " (samples; CLMR: 59049)")
    _number(config, "workers", int, 0)
    _number(config, "seed", int, 0)
    for k in config.get("retrieval_k") or ():
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise UserError(f"--retrieval_k {config['retrieval_k']} must list positive integers, e.g. "
                            "--retrieval_k \"[1, 2, 4, 8]\"")
    chunk_hop(config, 1)
    gpus = _number(config, "gpus", int)
    check_precision(config.get("precision", "32-true"), gpus)
    devices_for(gpus)
    if config.get("output_dir"):
        check_writable(Path(config["output_dir"]), "--output_dir")
    else:
        check_writable(Path(config.get("log_dir") or "runs") / "evaluation", "--output_dir (or --log_dir)")
    cache = cache_dir(config)
    if cache is not None:
        check_writable(cache, "--embedding_cache_dir (or --embedding_cache_dir none)")


def check_writable(folder: Path, flag: str) -> None:
    """Check that ``folder`` can be created (when missing) and written in, without creating anything.

    Raises:
        UserError: ``folder`` or the nearest existing folder above it is a file or is not writable.
    """
    existing = folder.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"cannot write to {folder}: {existing} is a file, not a folder; choose a writable {flag}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to {folder}: {existing} is not writable; choose a writable {flag}")
