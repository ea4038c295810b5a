"""The supervised baseline: SampleCNN trained end to end on the labelled training split (CLMR's --supervised)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader

from clmr_lib.checkpoints import atomic_save, safe_load
from clmr_lib.data.crops import RandomCrops, TrackChunks, worker_init
from clmr_lib.errors import UserError
from clmr_lib.evaluation.cache import file_stamp
from clmr_lib.evaluation.probe import History, quiet_lightning
from clmr_lib.models.sample_cnn import SampleCNN


class SupervisedLearning(L.LightningModule):
    """SampleCNN with a classification layer, trained from scratch on labelled crops.

    As CLMR's supervised baseline: dropout 0.5 before ``fc``, one random crop per track and epoch,
    binary cross-entropy (multi-label) or cross-entropy (single-label), Adam. The validation loss
    is measured on every non-overlapping chunk of every validation track (deterministic, unlike
    random crops), drives the plateau schedule (÷10 after 5 epochs) and early stopping.

    Args:
        n_classes: Number of classes.
        task_type: ``"multilabel"`` or ``"multiclass"``.
        encoder_kwargs: SampleCNN layout (``channels``, ``strides``, ``sample_rate``, ``audio_length``).
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
        dropout: Dropout before the classification layer.
        monitor: Metric the plateau schedule watches (``train/loss`` without a validation split).
    """

    def __init__(self, n_classes: int, task_type: str, encoder_kwargs: dict, learning_rate: float = 3e-4,
                 weight_decay: float = 1e-6, dropout: float = 0.5, monitor: str = "valid/loss"):
        super().__init__()
        self.save_hyperparameters()
        self.encoder = SampleCNN(**encoder_kwargs, n_classes=n_classes, dropout=dropout)
        self.loss_fn = nn.BCEWithLogitsLoss() if task_type == "multilabel" else nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``(batch, samples)`` crops."""
        return self.encoder(x)

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        target = labels if self.hparams.task_type == "multilabel" else labels.argmax(dim=-1)
        return self.loss_fn(logits.float(), target)

    def training_step(self, batch, batch_idx):
        audio, labels, _, ok = batch
        if not bool(ok.any()):  # every file of the batch unreadable: a zero loss keeps the loop going
            return self(audio[:1, 0]).sum() * 0.0
        audio, labels = audio[ok][:, 0], labels[ok]
        loss = self._loss(self(audio), labels)
        self.log("train/loss", loss, on_epoch=True, on_step=False, prog_bar=True, batch_size=len(audio))
        return loss

    def validation_step(self, batch, batch_idx):
        chunks, label, _, ok = batch  # one track: all of its chunks
        if not ok or len(chunks) == 0:
            return None
        loss = self._loss(self(chunks), label[None].expand(len(chunks), -1))
        self.log("valid/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(chunks))
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate,
                                     weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.hparams.monitor}}


def encoder_kwargs(config: dict) -> dict:
    """The SampleCNN layout of the config."""
    return {"channels": [int(c) for c in config["sample_cnn_channels"]],
            "strides": [int(s) for s in config["sample_cnn_strides"]],
            "sample_rate": int(config["sample_rate"]), "audio_length": int(config["audio_length"])}


def training_settings(config: dict) -> dict:
    """The settings a supervised model depends on (besides its data)."""
    return {"max_epochs": int(config["supervised_max_epochs"]), "batch_size": int(config["supervised_batch_size"]),
            "learning_rate": float(config["supervised_learning_rate"]), "patience": int(config["supervised_patience"]),
            "weight_decay": float(config.get("weight_decay", 1e-6)), "seed": int(config["seed"]),
            "precision": str(config.get("precision", "32-true"))}


def _labelled(tracks) -> list:
    return [t for t in tracks if t.label is not None]


def model_path(config: dict, dataset) -> Path:
    """Where the supervised model of this dataset, task, layout and settings is kept.

    ``<log_dir>/supervised/<dataset>_<task>_<hash>.ckpt``; the hash covers the training and
    validation tracks (path, file size and date, label), the class list, the layout and the
    training settings, so a rerun of the same comparison reuses the model and any change retrains.
    """
    digest = hashlib.sha256()
    for split in ("train", "valid"):
        for track in _labelled(dataset.tracks(split)):
            label = np.asarray(track.label_array(len(dataset.class_names))).tolist()
            digest.update(json.dumps([split, track.path, file_stamp(track.path), label]).encode())
    digest.update(json.dumps([list(dataset.class_names), dataset.task_type, encoder_kwargs(config),
                              training_settings(config)], sort_keys=True).encode())
    task = getattr(dataset, "task", "") or "task"
    name = f"{config['dataset']}_{task}_{digest.hexdigest()[:12]}.ckpt"
    return Path(config.get("log_dir", "runs")) / "supervised" / name


def train_supervised(config: dict, dataset, progress: bool = True) -> tuple[Path, dict]:
    """Train (or reuse) the supervised SampleCNN of ``dataset``'s task; returns its checkpoint and curves.

    The checkpoint holds ``state_dict`` (``encoder.sequential.*`` and ``encoder.fc.*``) and
    ``hyper_parameters`` with ``encoder_kwargs``, so :func:`clmr_lib.checkpoints.load_encoder`
    reads its encoder like any other; the weights of the best validation epoch are kept.

    Args:
        config: ``supervised_*`` settings, the SampleCNN layout, ``seed``, ``workers``, ``log_dir``.
        dataset: A labelled dataset (``task_type``, ``class_names``, ``tracks(split)``).
        progress: Show Lightning's progress bar.
    """
    path = model_path(config, dataset)
    if path.is_file():
        if progress:
            print(f"supervised baseline: reusing {path} (same data and settings)")
        return path, safe_load(path).get("history", {})
    train, valid = _labelled(dataset.tracks("train")), _labelled(dataset.tracks("valid"))
    if not train:
        raise UserError(f"--checkpoint supervised needs labelled training tracks; dataset '{config['dataset']}' has "
                        "none in its train split (check --dataset_dir)")
    settings = training_settings(config)
    L.seed_everything(settings["seed"], workers=True, verbose=False)
    n_classes = len(dataset.class_names)
    module = SupervisedLearning(n_classes, dataset.task_type, encoder_kwargs(config),
                                learning_rate=settings["learning_rate"], weight_decay=settings["weight_decay"],
                                monitor="valid/loss" if valid else "train/loss")
    workers = int(config.get("workers", 0))
    crops = RandomCrops(train, int(config["sample_rate"]), int(config["audio_length"]), n_views=1,
                        num_classes=n_classes)
    train_loader = DataLoader(crops, batch_size=settings["batch_size"], shuffle=True, num_workers=workers,
                              drop_last=len(crops) > settings["batch_size"], worker_init_fn=worker_init,
                              persistent_workers=workers > 0)
    valid_loader = None
    if valid:
        chunks = TrackChunks(valid, int(config["sample_rate"]), int(config["audio_length"]), num_classes=n_classes)
        valid_loader = DataLoader(chunks, batch_size=None, num_workers=workers, worker_init_fn=worker_init,
                                  persistent_workers=workers > 0)
    history = History("valid/loss" if valid else "train/loss")
    callbacks = [history] + ([EarlyStopping("valid/loss", patience=settings["patience"], mode="min")] if valid else [])
    if progress:
        print(f"supervised baseline: training SampleCNN on {len(train)} tracks, early stopping on {len(valid)}")
    accelerator = "gpu" if int(config.get("gpus", 0) or 0) > 0 and torch.cuda.is_available() else "cpu"
    with quiet_lightning():
        trainer = L.Trainer(max_epochs=settings["max_epochs"], accelerator=accelerator, devices=1, logger=False,
                            callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=progress,
                            enable_model_summary=False, num_sanity_val_steps=0,
                            limit_val_batches=1.0 if valid else 0, precision=settings["precision"],
                            deterministic=True)
        trainer.fit(module, train_loader, valid_loader)
    curves = history.as_dict()
    atomic_save({"state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
                 "hyper_parameters": {"encoder": "sample_cnn", "encoder_kwargs": encoder_kwargs(config),
                                      "n_classes": n_classes, "task_type": dataset.task_type,
                                      "class_names": list(dataset.class_names), "supervised": settings,
                                      "sample_rate": int(config["sample_rate"]),
                                      "audio_length": int(config["audio_length"])},
                 "history": curves}, path)
    return path, curves


class EndToEndHead:
    """The supervised model's own classification layer applied to its chunk embeddings.

    In eval mode SampleCNN's output is ``fc(embedding)`` (dropout is off), so applying ``fc`` to
    the cached chunk embeddings gives exactly the end-to-end model's chunk predictions; track
    predictions then average them like every probe's.

    Args:
        weight: ``fc.weight`` ``(n_classes, dim)``.
        bias: ``fc.bias`` ``(n_classes,)``.
        task_type: ``"multilabel"`` (sigmoid) or ``"multiclass"`` (softmax).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, task_type: str):
        self.weight, self.bias, self.task_type = weight.float(), bias.float(), task_type

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> "EndToEndHead":
        """The head of a checkpoint written by :func:`train_supervised`."""
        saved = safe_load(path)
        state = saved["state_dict"]
        return cls(state["encoder.fc.weight"], state["encoder.fc.bias"], saved["hyper_parameters"]["task_type"])

    @torch.no_grad()
    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Chunk probabilities from ``(n_chunks, dim)`` embeddings."""
        logits = torch.from_numpy(np.asarray(x, dtype=np.float32)) @ self.weight.T + self.bias
        probabilities = torch.sigmoid(logits) if self.task_type == "multilabel" else torch.softmax(logits, dim=-1)
        return probabilities.numpy()
