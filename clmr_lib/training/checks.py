"""Pretraining settings checked before any work starts: one-line errors naming the flag and the fix."""
from __future__ import annotations

import math
import os
from typing import Any

from clmr_lib.errors import UserError
from clmr_lib.training.optim import OPTIMIZERS
from clmr_lib.utils.precision import check_precision

AUGMENTATION_KEYS = ("polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")


#: Defaults of keys newer than some saved configurations.
NEW_KEY_DEFAULTS = {"cpu_processes": 1, "max_nonfinite_steps": 10, "sync_batchnorm": False, "deterministic": False,
                    "progress": True, "max_steps": -1, "checkpoint_every_n_steps": 100,
                    "checkpoint_every_n_epochs": 10, "check_val_every_n_epoch": 1, "workers": 0, "num_nodes": 1,
                    "gpus": 0, "log_every_n_steps": 10, "reuse_memory": True}


def _number(config: dict, key: str, kind: type, minimum: Any = None, hint: str = "") -> Any:
    value = config.get(key)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        number = kind(value)
        if kind is int and number != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise UserError(f"--{key} {value!r} is not {'an integer' if kind is int else 'a number'}; "
                        f"pass e.g. --{key} {minimum if minimum is not None else 1}") from None
    if not math.isfinite(number):
        raise UserError(f"--{key} {value} is not a finite number; pass e.g. --{key} "
                        f"{minimum if minimum is not None else 1}")
    if minimum is not None and number < minimum:
        raise UserError(f"--{key} {value} must be at least {minimum}{hint}")
    return number


def _int_list(config: dict, key: str) -> list[int]:
    value = config.get(key)
    if not isinstance(value, (list, tuple)) or not value or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise UserError(f"--{key} {value!r} must be a list of positive integers, e.g. --{key} \"[3, 3, 3]\"")
    return list(value)


def multi_node_launcher_found() -> bool:
    """Whether this process was started by something that tells it about the other nodes."""
    env = os.environ
    return ("SLURM_NTASKS" in env or "TORCHELASTIC_RUN_ID" in env or "LSB_JOBID" in env
            or ("NODE_RANK" in env and "MASTER_ADDR" in env))


def validate_pretraining(config: dict) -> None:
    """Refuse settings that cannot work, before any data is read or process started.

    Checks types and ranges of the numeric flags, the optimiser and precision names, the
    SampleCNN layout against ``audio_length``, and that a multi-node run has a launcher.

    Args:
        config: The merged configuration.

    Raises:
        UserError: The first problem found, naming the flag and a value that works.
    """
    config = {**NEW_KEY_DEFAULTS, **config}
    batch_size = _number(config, "batch_size", int)
    if batch_size < 2:
        raise UserError(f"--batch_size {config['batch_size']}: contrastive learning needs at least 2 tracks per "
                        "batch; use --batch_size 2 or more (CLMR: 48)")
    _number(config, "sample_rate", int, 1, " (Hz)")
    audio_length = _number(config, "audio_length", int, 1, " (samples)")
    max_epochs = _number(config, "max_epochs", int)
    max_steps = _number(config, "max_steps", int)
    if max_epochs < 1 and max_steps < 1:
        raise UserError(f"--max_epochs {max_epochs} and --max_steps {max_steps} leave nothing to train; "
                        "use --max_epochs 1 or more")
    _number(config, "seed", int, 0)
    if int(config["seed"]) >= 2**32:
        raise UserError(f"--seed {config['seed']} is too large; use a seed below 2**32")
    _number(config, "workers", int, 0)
    _number(config, "gpus", int, 0, "; use --gpus 0 for the CPU")
    _number(config, "num_nodes", int, 1)
    _number(config, "cpu_processes", int, 1)
    _number(config, "max_nonfinite_steps", int, 1)
    _number(config, "checkpoint_every_n_steps", int, 1)
    _number(config, "checkpoint_every_n_epochs", int, 0, "; 0 keeps no periodic checkpoints")
    _number(config, "check_val_every_n_epoch", int, 1)
    _number(config, "log_every_n_steps", int, 1)
    _number(config, "projection_dim", int, 1)
    if _number(config, "temperature", float) <= 0:
        raise UserError(f"--temperature {config['temperature']} must be positive; CLMR uses 0.5")
    if _number(config, "learning_rate", float) <= 0:
        raise UserError(f"--learning_rate {config['learning_rate']} must be positive; CLMR uses 0.0003")
    _number(config, "weight_decay", float, 0)
    for key in AUGMENTATION_KEYS:
        p = _number(config, f"transforms_{key}", float)
        if not 0.0 <= p <= 1.0:
            raise UserError(f"--transforms_{key} {config[f'transforms_{key}']} is a probability; use a value "
                            "between 0 and 1")
    if str(config.get("optimizer", "")).lower() not in {name.lower() for name in OPTIMIZERS}:
        raise UserError(f"unknown --optimizer '{config.get('optimizer')}'; choose one of: {', '.join(OPTIMIZERS)}")
    if str(config["optimizer"]).lower() == "lars" and max_epochs < 1:
        raise UserError("--optimizer LARS decays its learning rate over --max_epochs; set --max_epochs 1 or more")
    check_precision(config.get("precision", "32-true"), int(config["gpus"]))
    if not str(config.get("dataset_dir", "")).strip():
        raise UserError("--dataset_dir is empty; pass the folder that holds the dataset")
    if config.get("encoder", "sample_cnn") == "sample_cnn":
        _check_sample_cnn(config, audio_length)
    if int(config["num_nodes"]) > 1 and not multi_node_launcher_found():
        raise UserError(f"--num_nodes {config['num_nodes']} needs a launcher that starts the other nodes: run it "
                        "under SLURM (srun) or torchrun --nnodes, or set MASTER_ADDR, MASTER_PORT and NODE_RANK on "
                        "every node (see README, Multi-GPU and multi-node)")
    if int(config["cpu_processes"]) > 1 and int(config["gpus"]) > 0:
        raise UserError(f"--cpu_processes {config['cpu_processes']} is for training on the CPU; with --gpus "
                        f"{config['gpus']} leave it at 1 (each GPU gets one process)")


def _check_sample_cnn(config: dict, audio_length: int) -> None:
    from clmr_lib.models.sample_cnn import minimum_length, output_frames

    channels = _int_list(config, "sample_cnn_channels")
    strides = _int_list(config, "sample_cnn_strides")
    if len(channels) != len(strides) + 2:
        raise UserError(f"--sample_cnn_channels has {len(channels)} values and --sample_cnn_strides {len(strides)}; "
                        f"SampleCNN needs one channel count per block, {len(strides) + 2} for {len(strides)} strides")
    if output_frames(audio_length, strides) < 1:
        raise UserError(f"--audio_length {audio_length} is too short for SampleCNN strides {strides}: it reduces to "
                        f"no frame; use --audio_length {minimum_length(strides)} or more, or fewer strides")
