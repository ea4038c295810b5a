"""Contrastive pretraining from a config dict: checks, data, module, trainer, resume and the skipped-file report."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from torch.utils.data import DataLoader

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data import get_dataset
from clmr_lib.data.crops import RandomCrops, worker_init
from clmr_lib.data.report import SkipReport
from clmr_lib.errors import UserError
from clmr_lib.training.checks import AUGMENTATION_KEYS, NEW_KEY_DEFAULTS, validate_pretraining
from clmr_lib.training.contrastive import ContrastiveLearning
from clmr_lib.training.nonfinite import NonFiniteGuard
from clmr_lib.training.resume import ExactResume, checkpoint_files, resume_checkpoint
from clmr_lib.training.sampling import GlobalBatchSampler, SeededItems
from clmr_lib.training.trainer import build_trainer, checkpoint_callbacks, devices_for, ensure_writable, run_directory
from clmr_lib.utils.memory import keep_freed_memory
from clmr_lib.utils.rng import derive_seed


def encoder_kwargs(config: dict) -> dict:
    """Constructor arguments of the configured encoder."""
    if config.get("encoder", "sample_cnn") == "sample_cnn":
        return {"channels": list(config["sample_cnn_channels"]), "strides": list(config["sample_cnn_strides"]),
                "sample_rate": int(config["sample_rate"]), "audio_length": int(config["audio_length"])}
    return {}


def build_module(config: dict) -> ContrastiveLearning:
    """The contrastive LightningModule described by ``config``."""
    return ContrastiveLearning(
        encoder=config.get("encoder", "sample_cnn"), encoder_kwargs=encoder_kwargs(config),
        projection_dim=int(config["projection_dim"]), temperature=float(config["temperature"]),
        optimizer=config["optimizer"], learning_rate=float(config["learning_rate"]),
        weight_decay=float(config["weight_decay"]), batch_size=int(config["batch_size"]),
        max_epochs=int(config["max_epochs"]), sample_rate=int(config["sample_rate"]),
        augmentations={k: float(config[f"transforms_{k}"]) for k in AUGMENTATION_KEYS},
    )


def crop_loader(tracks, config: dict, shuffle: bool, num_classes: int = 0, n_views: int = 2) -> DataLoader:
    """DataLoader of random crops: the workers only decode and crop; augmentation runs in the module.

    The order comes from a :class:`GlobalBatchSampler` (``loader.sampler``): seeded per epoch,
    sharded over the processes of a DDP run, resumable mid-epoch. Crops are drawn per
    ``(seed, epoch, index)`` (:class:`SeededItems`), whatever process or worker reads them.
    """
    batch_size, seed = int(config["batch_size"]), int(config["seed"])
    workers = int(config.get("workers", 0))
    crops = RandomCrops(tracks, int(config["sample_rate"]), int(config["audio_length"]), n_views=n_views,
                        num_classes=num_classes)
    sampler = GlobalBatchSampler(len(crops), batch_size, shuffle=shuffle, seed=seed)
    # Its own generator: creating an iterator must not draw from the global random stream.
    generator = torch.Generator().manual_seed(derive_seed(seed, "loader"))
    return DataLoader(SeededItems(crops, seed), batch_size=batch_size, sampler=sampler, num_workers=workers,
                      worker_init_fn=worker_init, generator=generator, persistent_workers=workers > 0,
                      pin_memory=False)


def validate(config: dict) -> None:
    """One-line errors for settings that cannot work, before any data is read (see :mod:`~clmr_lib.training.checks`)."""
    validate_pretraining(config)


def write_skip_report(report: SkipReport, run_dir: Path) -> None:
    """Print and save (``skipped_files.json``) the files a run could not use."""
    if len(report):
        print(report.summary())
        report.to_json(run_dir / "skipped_files.json")


def run_pretraining(config: dict) -> Path:
    """Pretrain an encoder with CLMR and return the path of the final checkpoint.

    Checkpoints (``last.ckpt`` every ``checkpoint_every_n_steps`` steps and periodic ones) and
    TensorBoard/CSV logs go to ``<log_dir>/<run_name>/``; ``resume`` continues from the newest
    readable checkpoint, exactly (see :class:`~clmr_lib.training.resume.ExactResume`).

    Everything a user can get wrong is checked before the data are scanned or processes
    started, so a mistake costs seconds and gives one line (:class:`UserError`).
    """
    config = {**NEW_KEY_DEFAULTS, **config}
    validate(config)
    if config["reuse_memory"]:
        keep_freed_memory()
    devices = devices_for(config["gpus"], int(config["num_nodes"]), int(config["cpu_processes"]))
    seed = int(config["seed"])
    L.seed_everything(seed, workers=True, verbose=False)
    run_dir = run_directory(config)
    ensure_writable(run_dir)
    checkpoint_dir = run_dir / "checkpoints"
    module = build_module(config)
    ckpt_path = resume_checkpoint(config, checkpoint_dir, module, run_dir)
    if ckpt_path is None and not config.get("resume") and checkpoint_files(checkpoint_dir, run_dir):
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it, or a new --run_name")

    dataset = get_dataset(config)
    train_tracks, valid_tracks = dataset.tracks("train"), dataset.tracks("valid")
    if not train_tracks:
        raise UserError(f"no readable audio in the training split of {config['dataset_dir']}; check --dataset_dir")
    train_loader = crop_loader(train_tracks, config, shuffle=True)
    valid_loader = crop_loader(valid_tracks, config, shuffle=False) if valid_tracks else None
    callbacks = [ExactResume(seed, train_loader.sampler),
                 NonFiniteGuard(int(config["max_nonfinite_steps"]), checkpoint_dir),
                 *checkpoint_callbacks(checkpoint_dir, config["checkpoint_every_n_steps"],
                                       config["checkpoint_every_n_epochs"])]
    try:
        trainer = build_trainer(config, run_dir, callbacks=callbacks, devices=devices,
                                limit_val_batches=1.0 if valid_tracks else 0, num_sanity_val_steps=0,
                                use_distributed_sampler=False)
        atomic_write_bytes(json.dumps(config, indent=2, default=str).encode(), run_dir / "config.json")
        with warnings.catch_warnings():
            # Lightning cannot tell that our sampler resumes mid-epoch (ExactResume restores it).
            warnings.filterwarnings("ignore", message=".*resuming from a checkpoint that ended before the epoch")
            trainer.fit(module, train_loader, valid_loader, ckpt_path=ckpt_path)
    except MisconfigurationException as exc:
        # Lightning's checks of devices, nodes and cluster settings: configuration, not a bug.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{first} (check --gpus, --num_nodes, --cpu_processes and --precision)") from exc
    final = checkpoint_dir / "last.ckpt"
    trainer.save_checkpoint(final, weights_only=False)

    if trainer.is_global_zero:
        report = SkipReport()
        report.merge(dataset.skipped)
        for split, tracks in (("train", train_tracks), ("valid", valid_tracks)):
            for index in sorted(module.failed_indices[split]):
                report.add(tracks[index].path, "could not be decoded during training")
        write_skip_report(report, run_dir)
    return final
