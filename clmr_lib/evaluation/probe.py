"""Linear and MLP probes on frozen embeddings (CLMR's linear evaluation), trained with Lightning."""
from __future__ import annotations

import logging
from typing import Optional, Sequence

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from clmr_lib.models.heads import ProbeHead


class Probe(L.LightningModule):
    """A probe on standardised embeddings: ``head((x - mean) / std)``.

    Loss: binary cross-entropy for multi-label tasks, cross-entropy for single-label ones. Adam with
    weight decay, learning rate reduced by 10× after 5 epochs without validation improvement
    (CLMR's linear evaluation defaults).

    Args:
        in_dim: Embedding size.
        n_classes: Number of classes.
        task_type: ``"multilabel"`` or ``"multiclass"``.
        mlp: One hidden layer of ``hidden_dim`` units instead of a linear map.
        hidden_dim: Hidden units of the MLP probe.
        learning_rate: Adam learning rate.
        weight_decay: Adam weight decay.
    """

    def __init__(self, in_dim: int, n_classes: int, task_type: str, mlp: bool = False, hidden_dim: int = 512,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-6):
        super().__init__()
        self.save_hyperparameters()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("std", torch.ones(in_dim))
        self.model = ProbeHead(in_dim, n_classes, mlp=mlp, hidden_dim=hidden_dim)
        self.loss_fn = nn.BCEWithLogitsLoss() if task_type == "multilabel" else nn.CrossEntropyLoss()

    def set_normalisation(self, embeddings: torch.Tensor) -> None:
        """Standardise inputs with the training embeddings' per-dimension statistics."""
        self.mean.copy_(embeddings.mean(0))
        self.std.copy_(embeddings.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)

    def probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """Sigmoid (multi-label) or softmax (single-label) of the logits."""
        logits = self(x)
        return torch.sigmoid(logits) if self.hparams.task_type == "multilabel" else torch.softmax(logits, dim=-1)

    def _loss(self, batch):
        x, y = batch
        target = y if self.hparams.task_type == "multilabel" else y.argmax(dim=-1)
        return self.loss_fn(self(x), target)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, on_epoch=True, on_step=False, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("valid/loss", self._loss(batch), on_epoch=True, prog_bar=True)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.hparams.learning_rate,
                                     weight_decay=self.hparams.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": "valid/loss"}}


def chunk_arrays(embeddings: Sequence, labels: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-track chunk embeddings into one chunk-level dataset; each chunk carries its track's label."""
    xs, ys = [], []
    for emb, label in zip(embeddings, labels):
        if emb is None or len(emb) == 0:
            continue
        xs.append(emb)
        ys.append(np.repeat(label[None], len(emb), axis=0))
    return torch.from_numpy(np.concatenate(xs)).float(), torch.from_numpy(np.concatenate(ys)).float()


def fit_probe(train: tuple[torch.Tensor, torch.Tensor], valid: Optional[tuple[torch.Tensor, torch.Tensor]],
              task_type: str, mlp: bool = False, max_epochs: int = 200, batch_size: int = 256,
              learning_rate: float = 1e-3, weight_decay: float = 1e-6, patience: int = 10, seed: int = 42,
              progress: bool = False, logger=False) -> Probe:
    """Train a probe on chunk embeddings; early stopping on the validation loss (CLMR: patience 10)."""
    L.seed_everything(seed, workers=True, verbose=False)
    x, y = train
    probe = Probe(x.shape[1], y.shape[1], task_type, mlp=mlp, learning_rate=learning_rate, weight_decay=weight_decay)
    probe.set_normalisation(x)
    train_loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    valid_loader = DataLoader(TensorDataset(*valid), batch_size=1024) if valid is not None and len(valid[0]) else None
    callbacks = [EarlyStopping("valid/loss", patience=patience, mode="min")] if valid_loader is not None else []
    trainer = L.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, logger=logger, callbacks=callbacks,
                        enable_checkpointing=False, enable_progress_bar=progress, enable_model_summary=False,
                        num_sanity_val_steps=0, limit_val_batches=1.0 if valid_loader is not None else 0,
                        log_every_n_steps=1, deterministic=True)
    # Lightning's per-fit banner (devices, model summary) would repeat for every probe.
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    lightning_log.setLevel(logging.WARNING)
    try:
        trainer.fit(probe, train_loader, valid_loader)
    finally:
        lightning_log.setLevel(level)
    probe.eval()
    return probe


@torch.no_grad()
def track_predictions(probe: Probe, embeddings: Sequence) -> list[Optional[np.ndarray]]:
    """Track-level predictions: the mean of the chunk probabilities (CLMR's evaluation)."""
    out = []
    for emb in embeddings:
        if emb is None or len(emb) == 0:
            out.append(None)
            continue
        out.append(probe.probabilities(torch.from_numpy(emb).float()).mean(0).numpy())
    return out
