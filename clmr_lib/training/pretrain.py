"""Contrastive pretraining from a config dict: data, module, trainer, resume and the skipped-file report."""
from __future__ import annotations

import json
from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from clmr_lib.checkpoints import atomic_write_bytes
from clmr_lib.data import get_dataset
from clmr_lib.data.crops import RandomCrops, worker_init
from clmr_lib.data.report import SkipReport
from clmr_lib.errors import UserError
from clmr_lib.training.contrastive import ContrastiveLearning
from clmr_lib.training.trainer import build_trainer, checkpoint_callbacks, resume_checkpoint, run_directory

AUGMENTATION_KEYS = ("polarity", "noise", "gain", "filters", "delay", "pitch", "reverb")


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
    """DataLoader of random crops: the workers only decode and crop; augmentation runs in the module."""
    batch_size = int(config["batch_size"])
    workers = int(config.get("workers", 0))
    dataset = RandomCrops(tracks, int(config["sample_rate"]), int(config["audio_length"]), n_views=n_views,
                          num_classes=num_classes)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                      drop_last=shuffle and len(dataset) > batch_size, worker_init_fn=worker_init,
                      persistent_workers=workers > 0, pin_memory=False)


def validate(config: dict) -> None:
    """One-line errors for settings that cannot work, before any data is read."""
    if int(config["batch_size"]) < 2:
        raise UserError(f"--batch_size {config['batch_size']}: contrastive learning needs at least 2 tracks per "
                        "batch; use --batch_size 2 or more (CLMR: 48)")
    if int(config["audio_length"]) <= 0 or int(config["sample_rate"]) <= 0:
        raise UserError("--audio_length and --sample_rate must be positive")


def write_skip_report(report: SkipReport, run_dir: Path) -> None:
    """Print and save (``skipped_files.json``) the files a run could not use."""
    if len(report):
        print(report.summary())
        report.to_json(run_dir / "skipped_files.json")


def run_pretraining(config: dict) -> Path:
    """Pretrain an encoder with CLMR and return the path of the final checkpoint.

    Checkpoints (``last.ckpt`` every ``checkpoint_every_n_steps`` steps and periodic ones) and
    TensorBoard/CSV logs go to ``<log_dir>/<run_name>/``; ``resume`` continues from ``last.ckpt``.
    """
    validate(config)
    L.seed_everything(int(config["seed"]), workers=True)
    run_dir = run_directory(config)
    checkpoint_dir = run_dir / "checkpoints"
    ckpt_path = resume_checkpoint(config, checkpoint_dir)
    if ckpt_path is None and (checkpoint_dir / "last.ckpt").exists():
        raise UserError(f"{run_dir} already holds a run; pass --resume to continue it, or a new --run_name")

    dataset = get_dataset(config)
    train_tracks, valid_tracks = dataset.tracks("train"), dataset.tracks("valid")
    if not train_tracks:
        raise UserError(f"no readable audio in the training split of {config['dataset_dir']}; check --dataset_dir")
    module = build_module(config)
    trainer = build_trainer(config, run_dir, callbacks=checkpoint_callbacks(
        checkpoint_dir, config.get("checkpoint_every_n_steps", 100), config.get("checkpoint_every_n_epochs", 10)),
        limit_val_batches=1.0 if valid_tracks else 0, num_sanity_val_steps=0)
    atomic_write_bytes(json.dumps(config, indent=2, default=str).encode(), run_dir / "config.json")
    valid_loader = crop_loader(valid_tracks, config, shuffle=False) if valid_tracks else None
    trainer.fit(module, crop_loader(train_tracks, config, shuffle=True), valid_loader, ckpt_path=ckpt_path)
    final = checkpoint_dir / "last.ckpt"
    trainer.save_checkpoint(final, weights_only=False)

    report = SkipReport()
    report.merge(dataset.skipped)
    for split, tracks in (("train", train_tracks), ("valid", valid_tracks)):
        for index in sorted(module.failed_indices[split]):
            report.add(tracks[index].path, "could not be decoded during training")
    write_skip_report(report, run_dir)
    return final
